"""Training data: one split file, one target column of a labels table, and the inputs of a
representation, as a Lightning DataModule.

:class:`SplitDataModule` holds what every representation shares: it reads the split file
(:func:`rhoflow.splits.read_splits`) and the typed labels table (:func:`rhoflow.labels.read_labels`)
once, keeps the molecules that are in the split, have a finite target and have inputs, and
serves train / val / test DataLoaders. A subclass says only how inputs are read
(:meth:`SplitDataModule.load_inputs`), batched (:meth:`SplitDataModule.collate`) and recorded
(:meth:`SplitDataModule.describe`); a dataset whose molecules' atoms are known offers
``element_counts()`` for atomrefs. :class:`GeometryDataModule` is the geometry one; images,
voxels, point clouds and box grids follow the same pattern.

Molecules are taken in split-file order. The train loader shuffles with a
``DistributedSampler`` seeded by (``seed``, epoch): the order of epoch k is the same in an
uninterrupted and in a resumed run, and each DDP rank sees its own share.

A geometry batch is a dict (PyG layout, no ``torch_geometric.data.Data``):

=======  =============  =================================================================
key      type           meaning
=======  =============  =================================================================
z        long [N]       atomic numbers of all atoms of the batch's molecules
pos      float32 [N,3]  coordinates (Å)
batch    long [N]       molecule of each atom within the batch, 0 … B-1, sorted
y        float64 [B]    target, in the label's unit (``unit``)
index    long [B]       position of each molecule in its split's dataset
ids      list[str]      molecule ids
features float32 [B,F]  per-molecule feature vectors when the dataset has them (EDG's
                        teacher features; NaN rows for molecules without)
=======  =============  =================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from rhoflow.splits import SPLITS

log = logging.getLogger(__name__)


class SplitLoaders(L.LightningDataModule):
    """The DataLoaders of ``self.datasets`` (``train``, ``val``, ``test``, filled by a subclass's
    ``setup``) batched by ``collate``: the train loader shuffles with a ``DistributedSampler``
    seeded by (``seed``, epoch), so epoch k has the same order in a resumed run and each DDP
    rank sees its own share.

    Args:
        batch_size: molecules per batch (per device).
        num_workers: DataLoader worker processes.
        seed: seed of the train shuffling.
    """

    drop_last = False
    """Whether the train loader drops an epoch's last incomplete batch (a subclass for models
    with BatchNorm sets it: a batch of one molecule has no batch statistics); its batches are
    then at most the train molecules per device, and at least 2."""

    def __init__(self, batch_size: int = 32, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.datasets: dict[str, Any] = {}

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        """A batch from a list of dataset items."""
        raise NotImplementedError

    def _loader(self, name: str, sampler: Any = None, batch_size: int | None = None) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=batch_size or self.batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=self.drop_last and name == "train",
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        sampler = DistributedSampler(
            self.datasets["train"], num_replicas=replicas, rank=rank, shuffle=True, seed=self.seed
        )
        batch_size = self.batch_size
        if self.drop_last:  # a train set smaller than a batch still makes one batch
            batch_size = min(batch_size, len(sampler))
            if batch_size < 2:
                raise ValueError(
                    f"{len(self.datasets['train'])} training molecules over {replicas} "
                    "device(s): batches with batch statistics need at least 2 per device"
                )
        return self._loader("train", sampler, batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class SplitDataModule(SplitLoaders):
    """Train / val / test data of one target, by a split file; subclasses read the inputs.

    Args:
        labels: typed labels table (.parquet; ``rhoflow labels``).
        split: split file (.parquet; ``rhoflow splits``).
        target: the labels column to learn, e.g. ``source_gap_hartree`` (targets ``y`` [M],
            ``unit`` a string), or a list of columns learnt together (``y`` [M, T], ``unit``
            a list); units come from the table's units. A molecule needs every target.
        batch_size, num_workers, seed: as :class:`SplitLoaders`.
        train_fraction: learn from this fraction of the train molecules
            (:func:`rhoflow.splits.nested_subset` drawn with ``seed``: nested across fractions,
            the same on every machine); val and test stay whole. Default 1.
    """

    def __init__(
        self,
        labels: str | Path,
        split: str | Path,
        target: str | Sequence[str],
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        train_fraction: float = 1.0,
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.labels_path, self.split_path = Path(labels), Path(split)
        self.target = target if isinstance(target, str) else list(target)
        self.train_fraction = train_fraction
        self.unit: str | list[str] | None = None

    def load_inputs(self, ids: dict[str, list[str]], y: dict[str, np.ndarray]) -> dict[str, Any]:
        """The dataset of each split from its ids and targets; a molecule without inputs is
        left out (the dataset says which ids it holds in ``.ids``)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The inputs, as recorded in a run's config.json (a subclass adds its own)."""
        described = {
            "labels": str(self.labels_path),
            "split": str(self.split_path),
            "sizes": {name: len(d) for name, d in self.datasets.items()},
        }
        if self.train_fraction < 1:  # absent when whole: runs of before keep their config
            described["train_fraction"] = self.train_fraction
        return described

    def setup(self, stage: str | None = None) -> None:
        """Read the split, labels and inputs (once; later calls do nothing)."""
        if self.datasets:
            return
        from rhoflow.labels import read_labels
        from rhoflow.splits import nested_subset, read_splits

        labels = read_labels(self.labels_path)
        units = labels.attrs["units"]
        columns = [self.target] if isinstance(self.target, str) else self.target
        missing = [c for c in columns if c not in units]
        if missing:
            raise ValueError(
                f"{self.labels_path}: no label column {', '.join(map(repr, missing))} "
                f"(numeric columns: {', '.join(sorted(units))})"
            )
        self.unit = [units[c] for c in columns]
        if isinstance(self.target, str):
            self.unit = self.unit[0]
        target = labels[columns]
        target = target[np.isfinite(target.to_numpy(np.float64)).all(axis=1)]
        split = read_splits(self.split_path)["split"]
        have = set(target.index)
        ids = {name: [i for i in split.index[split == name] if i in have] for name in SPLITS}
        if self.train_fraction < 1:
            ids["train"] = nested_subset(ids["train"], self.train_fraction, self.seed)
        y = {name: target.loc[ids[name]].to_numpy(np.float64) for name in SPLITS}
        if isinstance(self.target, str):
            y = {name: values[:, 0] for name, values in y.items()}
        self.datasets = self.load_inputs(ids, y)
        for name in SPLITS:
            n_split, n = int((split == name).sum()), len(self.datasets[name])
            log.info(
                "%s: %d of %d %s molecules have %s and inputs",
                self.split_path.name,
                n,
                n_split,
                name,
                ", ".join(columns),
            )
            if n == 0:
                raise ValueError(f"no {name} molecule has {self.target!r} and inputs")


@dataclass
class Geometries:
    """Molecules as flat arrays: molecule i's atoms are ``z[offsets[i]:offsets[i + 1]]``."""

    ids: np.ndarray  # [M] str
    z: np.ndarray  # [N] int8
    pos: np.ndarray  # [N, 3] float32, Å
    offsets: np.ndarray  # [M + 1] int64

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> Geometries:
        """The molecules at ``rows``, in that order."""
        lo, counts = self.offsets[rows], np.diff(self.offsets)[rows]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        atoms = np.arange(offsets[-1]) + np.repeat(lo - offsets[:-1], counts)
        return Geometries(self.ids[rows], self.z[atoms], self.pos[atoms], offsets)

    def element_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Atoms of each element per molecule [M, E] and the elements [E] (atomic numbers)."""
        elements, column = np.unique(self.z, return_inverse=True)
        molecule = np.repeat(np.arange(len(self)), np.diff(self.offsets))
        flat = np.bincount(molecule * len(elements) + column, minlength=len(self) * len(elements))
        return flat.reshape(len(self), len(elements)).astype(np.float64), elements.astype(np.int64)


def read_geometries(tables: Sequence[str | Path], ids: Sequence[str] | None = None) -> Geometries:
    """The geometries of molecule tables (only ``id``, ``atomic_numbers`` and
    ``coords_angstrom`` are read), in table order; only ``ids`` when given. Molecules without
    coordinates are left out."""
    from rhoflow.molecule import SCHEMA

    columns = ["id", "atomic_numbers", "coords_angstrom"]
    wanted = None if ids is None else pa.array(list(ids), pa.string())
    parts = [pa.schema([SCHEMA.field(c) for c in columns]).empty_table()]
    for path in tables:
        table = pq.read_table(path, columns=columns)
        keep = pc.is_valid(table["coords_angstrom"])
        if wanted is not None:
            keep = pc.and_(keep, pc.is_in(table["id"], value_set=wanted))
        parts.append(table.filter(keep))
    table = pa.concat_tables(parts)
    numbers = table["atomic_numbers"].combine_chunks()
    offsets = numbers.offsets.to_numpy().astype(np.int64)
    z = numbers.flatten().to_numpy().astype(np.int8)
    pos = table["coords_angstrom"].combine_chunks().flatten().to_numpy().astype(np.float32)
    if len(pos) != 3 * len(z):
        raise ValueError("coords_angstrom does not hold 3 coordinates per atom")
    ids = np.array(table["id"].to_pylist(), dtype=object)
    return Geometries(ids, z, pos.reshape(-1, 3), offsets - offsets[0])


class GeometryDataset(Dataset):
    """Molecules of one split: atomic numbers, coordinates (Å), the target and, optionally,
    a feature vector per molecule (``features`` [M, F])."""

    def __init__(
        self, geometries: Geometries, y: np.ndarray, features: np.ndarray | None = None
    ) -> None:
        self.geometries, self.y = geometries, np.asarray(y, dtype=np.float64)
        self.ids = geometries.ids
        self.features = features

    def __len__(self) -> int:
        return len(self.geometries)

    def element_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Atoms of each element per molecule [M, E] and the elements [E] (for atomrefs)."""
        return self.geometries.element_counts()

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = self.geometries
        lo, hi = g.offsets[i], g.offsets[i + 1]
        item = {"z": g.z[lo:hi], "pos": g.pos[lo:hi], "y": self.y[i], "index": i, "id": g.ids[i]}
        if self.features is not None:
            item["features"] = self.features[i]
        return item


def collate_geometry(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A PyG-style batch (module docstring) from :class:`GeometryDataset` items."""
    counts = torch.tensor([len(item["z"]) for item in items])
    batch = {
        "z": torch.from_numpy(np.concatenate([item["z"] for item in items]).astype(np.int64)),
        "pos": torch.from_numpy(np.concatenate([item["pos"] for item in items])),
        "batch": torch.repeat_interleave(torch.arange(len(items)), counts),
        "y": torch.tensor([item["y"] for item in items], dtype=torch.float64),
        "index": torch.tensor([item["index"] for item in items], dtype=torch.long),
        "ids": [item["id"] for item in items],
    }
    if "features" in items[0]:
        batch["features"] = torch.from_numpy(np.stack([item["features"] for item in items]))
    return batch


class GeometryDataModule(SplitDataModule):
    """Geometry data (atomic numbers, coordinates in Å, one target) of molecule tables.

    The tables are read once, at setup, into flat arrays (:class:`Geometries`); no JSON or cube
    is parsed at train time. Other arguments as :class:`SplitDataModule`.

    Args:
        tables: molecule tables with coordinates (the conformer stage's shards).
    """

    def __init__(self, tables: Sequence[str | Path], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tables = [Path(t) for t in tables]

    collate = staticmethod(collate_geometry)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tables": [str(t) for t in self.tables]}

    def load_inputs(
        self, ids: dict[str, list[str]], y: dict[str, np.ndarray]
    ) -> dict[str, GeometryDataset]:
        wanted = [i for name in SPLITS for i in ids[name]]
        geometries = read_geometries(self.tables, wanted)
        row = {mol_id: r for r, mol_id in enumerate(geometries.ids)}
        out = {}
        for name in SPLITS:
            have = np.array([i in row for i in ids[name]], dtype=bool)
            rows = np.array([row[i] for i, h in zip(ids[name], have, strict=True) if h], np.int64)
            out[name] = GeometryDataset(geometries.take(rows), y[name][have])
        return out
