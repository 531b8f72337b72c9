"""The DataModule of a density representation: voxels, point clouds, density images or
per-molecule feature vectors (a features group, :mod:`rhoflow.features`: the VQ-GAN's
embeddings) of a split file's molecules with one or more targets of a labels table.

Inputs are read through the representation's reader (:func:`rhoflow.voxels.open_voxels`,
:func:`rhoflow.pointclouds.open_pointclouds`, :func:`rhoflow.render.open_images`): one
inner-chunk read per molecule, groups opened lazily in each DataLoader worker, values exactly
as stored except that float16 voxels become float32 and a voxel mode keeps only its channels.
An item is ``{"x": array, "y": float64 [T] or scalar, "index": int, "id": str}``; a batch
stacks them (``x`` [B, C, D, D, D] float32 voxels, [B, P, F] float32 points or
[B, V, C, S, S] uint8 images, [B, F] float32 features).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, default_collate

from rhoflow.splits import SPLITS
from rhoflow.train.data import SplitDataModule

REPRESENTATIONS: dict[str, str] = {
    "voxels": "voxels",
    "pointclouds": "points",
    "images": "density_images",
    "features": "features",
}
"""Each representation's array in its groups."""

MODES: dict[str, tuple[str, ...]] = {
    "atoms": ("H", "C", "N", "O", "F", "S", "Cl", "other"),
    "density": ("density",),
    "gradient": ("density_gradient_norm",),
    "density+gradient": ("density", "density_gradient_norm"),
    "shape": ("vdw_shape",),
}
"""Voxel input modes ("Beyond Atoms"): the stored channels each one feeds the model."""


def open_groups(representation: str, groups: Sequence[str | Path]) -> Any:
    """The reader of a representation's groups (one or several shards)."""
    from rhoflow.features import FeatureTable
    from rhoflow.pointclouds import open_pointclouds
    from rhoflow.render import open_images
    from rhoflow.voxels import open_voxels

    readers: dict[str, Callable[..., Any]] = {
        "voxels": open_voxels,
        "pointclouds": open_pointclouds,
        "images": open_images,
        "features": FeatureTable,  # small: read whole, not one chunk per molecule
    }
    return readers[representation]([Path(g) for g in groups])


def mode_channels(stored: Sequence[str], mode: str) -> np.ndarray:
    """Positions in the stored ``channels`` of a voxel mode's channels (:data:`MODES`)."""
    missing = [c for c in MODES[mode] if c not in stored]
    if missing:
        raise ValueError(f"voxel mode {mode!r} needs channels {missing}; stored: {list(stored)}")
    return np.array([list(stored).index(c) for c in MODES[mode]], dtype=np.int64)


class RepresentationDataset(Dataset):
    """One split's molecules of a representation (``channels``: voxel channels to keep)."""

    def __init__(
        self,
        groups: Any,
        array: str,
        ids: Sequence[str],
        y: np.ndarray,
        channels: np.ndarray | None = None,
    ) -> None:
        self.groups, self.array, self.ids = groups, array, np.asarray(ids, dtype=object)
        self.y, self.channels = np.asarray(y, dtype=np.float64), channels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = self.groups.read(self.ids[i], self.array)
        if self.channels is not None:
            x = x[self.channels]
        if x.dtype == np.float16:
            x = x.astype(np.float32)
        return {"x": x, "y": self.y[i], "index": i, "id": self.ids[i]}


class RepresentationDataModule(SplitDataModule):
    """A representation's groups as train / val / test data of one or more targets.

    Args:
        representation: ``voxels``, ``pointclouds``, ``images`` or ``features``
            (:data:`REPRESENTATIONS`).
        groups: the representation's shard groups.
        mode: voxels only, the input mode (:data:`MODES`); None keeps every channel.
        *args, **kwargs: as :class:`rhoflow.train.data.SplitDataModule` (labels, split,
            target(s), batch_size, num_workers, seed, train_fraction).
    """

    collate = staticmethod(default_collate)
    drop_last = True  # every model here has BatchNorm

    def __init__(
        self,
        representation: str,
        groups: Sequence[str | Path],
        *args: Any,
        mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if representation not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {representation!r}")
        if mode is not None and representation != "voxels":
            raise ValueError("an input mode selects voxel channels: voxels only")
        self.representation, self.mode = representation, mode
        self.groups = [Path(g) for g in groups]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "representation": self.representation,
            "mode": self.mode,
            "groups": [str(g) for g in self.groups],
        }

    def load_inputs(
        self, ids: dict[str, list[str]], y: dict[str, np.ndarray]
    ) -> dict[str, RepresentationDataset]:
        groups = open_groups(self.representation, self.groups)
        channels = None
        if self.mode is not None:
            channels = mode_channels(groups.attrs["channels"], self.mode)
        out = {}
        for name in SPLITS:
            have = np.array([i in groups for i in ids[name]], dtype=bool)
            kept = [i for i, h in zip(ids[name], have, strict=True) if h]
            out[name] = RepresentationDataset(
                groups, REPRESENTATIONS[self.representation], kept, y[name][have], channels
            )
        return out
