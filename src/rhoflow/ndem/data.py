"""Frames of one trajectory by a split file, as a DataModule for energy + force training.

The trajectory store is read once, at setup (:func:`rhoflow.md.read_trajectory`); energies and
forces are converted to the papers' units here, once: kcal/mol and kcal/mol/Å. A batch:

=======  ==============  =============================================================
key      type            meaning
=======  ==============  =============================================================
z        long [N]        atomic numbers of all atoms of the batch's frames
pos      float32 [N, 3]  coordinates (Å)
batch    long [N]        frame of each atom within the batch, 0 … B-1, sorted
energy   float64 [B]     energy (kcal/mol)
forces   float32 [N, 3]  forces (kcal/mol/Å)
index    long [B]        position of each frame in its split
ids      list[str]       frame ids (``<trajectory>:<frame>``)
features float32 [B, F]  with a features group: the EDG teacher's features of each frame's
                         structure images (NaN rows for frames without)
=======  ==============  =============================================================
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rhoflow.features import features_by_id
from rhoflow.md import frame_ids, read_trajectory
from rhoflow.md.frames import ENERGY_UNITS, FORCE_UNITS
from rhoflow.splits import SPLITS, read_splits
from rhoflow.train import SplitLoaders

log = logging.getLogger(__name__)

KCAL = ENERGY_UNITS["kcal_per_mol"]
KCAL_PER_ANGSTROM = FORCE_UNITS["kcal_per_mol_per_angstrom"]


class Frames(Dataset):
    """Frames of one molecule: z [A], positions [F, A, 3] Å, energy [F] kcal/mol, forces
    [F, A, 3] kcal/mol/Å, ids [F]."""

    def __init__(self, z: np.ndarray, pos: np.ndarray, energy: np.ndarray, forces: np.ndarray,
                 ids: list[str], features: np.ndarray | None = None) -> None:  # fmt: skip
        self.z, self.pos, self.energy, self.forces, self.ids = z, pos, energy, forces, ids
        self.features = features

    def __len__(self) -> int:
        return len(self.energy)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"pos": self.pos[i], "energy": self.energy[i], "forces": self.forces[i],
                "index": i, "id": self.ids[i], "z": self.z}  # fmt: skip
        if self.features is not None:
            item["features"] = self.features[i]
        return item


def collate_frames(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch (module docstring) from :class:`Frames` items."""
    n = len(items[0]["z"])
    batch = {
        "z": torch.from_numpy(np.tile(items[0]["z"], len(items))),
        "pos": torch.from_numpy(np.concatenate([it["pos"] for it in items]).astype(np.float32)),
        "batch": torch.arange(len(items)).repeat_interleave(n),
        "energy": torch.tensor([it["energy"] for it in items], dtype=torch.float64),
        "forces": torch.from_numpy(
            np.concatenate([it["forces"] for it in items]).astype(np.float32)
        ),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "ids": [it["id"] for it in items],
    }
    if "features" in items[0]:
        batch["features"] = torch.from_numpy(np.stack([it["features"] for it in items]))
    return batch


class FrameDataModule(SplitLoaders):
    """Train / val / test frames of one trajectory of a store, by a split file of frame ids.

    Args:
        store: trajectory store (``rhoflow md``).
        trajectory: the trajectory's id in the store.
        split: split file of its frame ids (``rhoflow md split``).
        batch_size, num_workers, seed: as :class:`~rhoflow.train.SplitLoaders`.
        features: a features group by frame id (the EDG teacher's), served as ``features``.
    """

    collate = staticmethod(collate_frames)

    def __init__(self, store: str | Path, trajectory: str, split: str | Path,
                 batch_size: int = 32, num_workers: int = 0, seed: int = 0,
                 features: str | Path | None = None) -> None:  # fmt: skip
        super().__init__(batch_size, num_workers, seed)
        self.store, self.trajectory, self.split = Path(store), trajectory, Path(split)
        self.features = None if features is None else Path(features)

    def setup(self, stage: str | None = None) -> None:
        """Read the frames and the split (once)."""
        if self.datasets:
            return
        t = read_trajectory(self.store, self.trajectory)
        row = {frame: k for k, frame in enumerate(frame_ids(t.id, len(t)))}
        split = read_splits(self.split)["split"]
        for name in SPLITS:
            ids = [i for i in split.index[split == name] if i in row]
            rows = np.array([row[i] for i in ids], dtype=np.int64)
            self.datasets[name] = Frames(
                t.atomic_numbers.astype(np.int64),
                t.positions[rows],
                t.energy[rows] * KCAL,
                t.forces[rows] * KCAL_PER_ANGSTROM,
                ids,
                None if self.features is None else features_by_id(self.features, ids),
            )
        sizes = {name: len(d) for name, d in self.datasets.items()}
        if not sizes["train"] or not sizes["val"]:
            raise ValueError(f"{self.split}: no train or val frames of {self.trajectory} ({sizes})")
        log.info("%s: frames %s", self.trajectory, sizes)

    def normalisation(self) -> dict[str, float]:
        """Energy mean and std (kcal/mol) and the RMS of the force components (kcal/mol/Å) of
        the train frames: targets are trained as (E − mean) / std and F / rms."""
        train = self.datasets["train"]
        return {
            "energy_mean": float(train.energy.mean()),
            "energy_std": float(max(train.energy.std(), 1e-6)),
            "force_rms": float(np.sqrt((train.forces**2).mean())),
        }

    def describe(self) -> dict[str, Any]:
        described = {"store": str(self.store), "trajectory": self.trajectory,
                     "split": str(self.split), "atoms": int(len(self.datasets["train"].z)),
                     "sizes": {name: len(d) for name, d in self.datasets.items()}}  # fmt: skip
        if self.features is not None:
            described["features"] = str(self.features)
        return described
