"""Box grids of a density store as VQ-GAN training data, by a split file.

The density engine's ``grid: box`` with a fixed ``box_edge_bohr`` samples every molecule on
the same n³ grid of the same spacing (bohr), centred on the molecule's bounding box; a molecule
whose extent plus the margin does not fit is a ledger row of the density stage, never cropped
(:func:`rhoflow.density.grid.box_grid`). :class:`BoxGrids` reads those grids by id through the
store's reader (:func:`rhoflow.store.open_dataset`) and refuses stores whose grids differ in
shape or spacing (a derived edge, or another engine's cubeprop grid), naming the setting.

An item is ``{"x": float32 [1, n, n, n] log(1 + ρ) with ρ in e/bohr³, "index": int, "id":
str}``; a batch stacks them (``x`` [B, 1, n, n, n]).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, default_collate

from rhoflow.splits import SPLITS, read_splits
from rhoflow.store import open_dataset
from rhoflow.train.data import SplitLoaders

log = logging.getLogger(__name__)

RANGE_MOLECULES = 1000
"""Train molecules (the first in split order) whose largest log(1 + ρ) fixes the PSNR range."""


def grid_geometry(stores: Sequence[str | Path], ids: Sequence[str]) -> tuple[int, float]:
    """Points per axis and spacing (bohr) shared by the box grids of ``ids`` in ``stores``;
    raises ``ValueError`` naming a molecule whose grid differs or is not a cube."""
    dataset = open_dataset([Path(s) for s in stores])
    first: tuple[tuple[int, ...], tuple[float, ...]] | None = None
    for mol_id in ids:
        store, pos = dataset.shard_store(mol_id)
        shape = tuple(int(n) for n in store.shape[pos])
        spacing = tuple(round(float(h), 9) for h in store.spacing[pos])
        if first is None:
            first = (shape, spacing)
            if len(set(shape)) != 1 or len(set(spacing)) != 1:
                raise ValueError(f"{mol_id}: grid {shape} at {spacing} bohr is not a cube")
        elif (shape, spacing) != first:
            raise ValueError(
                f"{mol_id}: grid {shape} at {spacing} bohr differs from {first[0]} at "
                f"{first[1]} bohr: the VQ-GAN needs one fixed box (density.<engine>.grid: box "
                "with box_edge_bohr set)"
            )
    if first is None:
        raise ValueError("no molecules")
    return first[0][0], first[1][0]


class BoxGrids(Dataset):
    """log(1 + ρ) box grids [1, n, n, n] of ``ids`` from density ``stores``."""

    def __init__(self, stores: Sequence[str | Path], ids: Sequence[str]) -> None:
        self.stores = [Path(s) for s in stores]
        self.ids = np.asarray(list(ids), dtype=object)
        self._dataset: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open the stores themselves
        return {**self.__dict__, "_dataset": None}

    def _stores(self) -> Any:
        if self._dataset is None:
            self._dataset = open_dataset(self.stores)
        return self._dataset

    def density(self, i: int) -> np.ndarray:
        """Molecule ``i``'s density float32 [n, n, n] (e/bohr³)."""
        return self._stores().values(self.ids[i])

    def electrons(self, i: int) -> float:
        """Molecule ``i``'s electrons (the density engine's expected count)."""
        return float(self._stores().metadata(self.ids[i])["checks"]["n_electrons_expected"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = np.log1p(np.maximum(self.density(i), 0.0, dtype=np.float32))[None]
        return {"x": x, "index": i, "id": self.ids[i]}


class BoxGridDataModule(SplitLoaders):
    """A density store's box grids as train / val / test data, by a split file.

    Args:
        stores: the engine's shard stores.
        split: the source's split file (.parquet).
        batch_size, num_workers, seed: as :class:`rhoflow.train.data.SplitLoaders`.

    After ``setup``: ``points`` (n), ``spacing_bohr``, ``voxel_volume_bohr3``; after
    :meth:`fix_data_range`, ``data_range`` (the largest log(1 + ρ) of the first
    :data:`RANGE_MOLECULES` train molecules: the fixed PSNR / SSIM range of every molecule).
    """

    collate = staticmethod(default_collate)

    def __init__(
        self,
        stores: Sequence[str | Path],
        split: str | Path,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.stores, self.split_path = [Path(s) for s in stores], Path(split)
        self.points, self.spacing_bohr, self.data_range = 0, 0.0, 0.0

    @property
    def voxel_volume_bohr3(self) -> float:
        return self.spacing_bohr**3

    def setup(self, stage: str | None = None) -> None:
        """Read the split and the stores' ids (once) and check the grids."""
        if self.datasets:
            return
        have = set(open_dataset(self.stores).ids)
        split = read_splits(self.split_path)["split"]
        ids = {name: [i for i in split.index[split == name] if i in have] for name in SPLITS}
        for name in SPLITS:
            log.info("%s: %d of %d %s molecules have a density", self.split_path.name,
                     len(ids[name]), int((split == name).sum()), name)  # fmt: skip
        if not ids["train"] or not ids["val"]:
            raise ValueError(f"{self.split_path}: no train or no val molecule has a density")
        every = [i for name in SPLITS for i in ids[name]]
        self.points, self.spacing_bohr = grid_geometry(self.stores, every)
        self.datasets = {name: BoxGrids(self.stores, ids[name]) for name in SPLITS}

    def fix_data_range(self) -> float:
        """Set (and return) ``data_range`` from the train molecules (a run does this once and
        records it in its config.json; evaluation reads it from there)."""
        train = self.datasets["train"]
        self.data_range = max(
            float(train[k]["x"].max()) for k in range(min(len(train), RANGE_MOLECULES))
        )
        return self.data_range

    def describe(self) -> dict[str, Any]:
        """The inputs, as recorded in the run's config.json."""
        return {
            "stores": [str(s) for s in self.stores],
            "split": str(self.split_path),
            "sizes": {name: len(d) for name, d in self.datasets.items()},
            "points": self.points,
            "spacing_bohr": self.spacing_bohr,
            "data_range": self.data_range,
        }
