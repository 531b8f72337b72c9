"""EDG's DataModules, over the data layer's readers.

:class:`ImageDataModule`: images of a split file's molecules, from the render stage's image
groups, for ImageED and the teacher: uint8 arrays as stored (the models normalise), batched by
``default_collate``. An item is ``{"images": uint8 [V, C, S, S], "index": int, "id": str}`` plus
``"features"`` float32 [F] (the ImageED features the teacher learns) when a features group is
given; a batch stacks them (``images`` [B, V, C, S, S]).

:class:`EDGDataModule`: the students' geometry data, whose molecules carry the teacher's
features (``features`` [B, F] in a batch; NaN rows for molecules without).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, default_collate

from rhoflow.features import features_by_id
from rhoflow.splits import SPLITS
from rhoflow.train.data import GeometryDataModule, GeometryDataset, SplitLoaders

log = logging.getLogger(__name__)


class ImageDataset(Dataset):
    """One image array (``density_images`` or ``structure_images``) of molecules ``ids``."""

    def __init__(
        self, images: Any, array: str, ids: Sequence[str], features: np.ndarray | None = None
    ) -> None:
        self.images, self.array, self.ids, self.features = images, array, list(ids), features

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"images": self.images.read(self.ids[i], self.array), "index": i, "id": self.ids[i]}
        if self.features is not None:
            item["features"] = self.features[i]
        return item


class ImageDataModule(SplitLoaders):
    """The molecules of a split file that have images (and features, when given).

    Args:
        groups: image groups of the render stage (``results/render/<shard>.zarr``).
        array: ``density_images`` (ImageED) or ``structure_images`` (the teacher).
        split: the source's split file: train trains, val selects the checkpoint, test is held
            out.
        features: a features group (:mod:`rhoflow.edg.features`) whose rows are the targets;
            molecules without one are left out.
        batch_size, num_workers, seed: as :class:`rhoflow.train.data.SplitLoaders`.
    """

    collate = staticmethod(default_collate)

    def __init__(
        self,
        groups: Sequence[str | Path],
        array: str,
        split: str | Path,
        features: str | Path | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.groups, self.array = [Path(g) for g in groups], array
        self.split_path = Path(split)
        self.features_path = None if features is None else Path(features)

    def describe(self) -> dict[str, Any]:
        """The inputs, as recorded in config.json."""
        return {
            "groups": [str(g) for g in self.groups],
            "array": self.array,
            "split": str(self.split_path),
            "features": None if self.features_path is None else str(self.features_path),
            "sizes": {name: len(d) for name, d in self.datasets.items()},
        }

    def setup(self, stage: str | None = None) -> None:
        """Read the split and the image groups' ids (once)."""
        if self.datasets:
            return
        from rhoflow.render import open_images
        from rhoflow.splits import read_splits

        images = open_images(self.groups)
        split = read_splits(self.split_path)["split"]
        for name in SPLITS:
            ids = [i for i in split.index[split == name] if i in images]
            features = None
            if self.features_path is not None:
                features = features_by_id(self.features_path, ids)
                have = np.isfinite(features).all(axis=1)
                ids, features = [i for i, h in zip(ids, have, strict=True) if h], features[have]
            log.info(
                "%s: %d of %d %s molecules have %s",
                self.split_path.name,
                len(ids),
                int((split == name).sum()),
                name,
                self.array,
            )
            if not ids:
                raise ValueError(f"no {name} molecule of {self.split_path} has {self.array}")
            self.datasets[name] = ImageDataset(images, self.array, ids, features)


class EDGDataModule(GeometryDataModule):
    """:class:`rhoflow.train.data.GeometryDataModule` whose molecules carry the teacher's
    features (``features`` [F] per item; NaN for a molecule the group lacks).

    Args:
        features: the dataset's teacher features group (``teacher_features``).
        *args, **kwargs: as :class:`GeometryDataModule`.
    """

    def __init__(self, features: str | Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.features_path = Path(features)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "teacher_features": str(self.features_path)}

    def load_inputs(
        self, ids: dict[str, list[str]], y: dict[str, np.ndarray]
    ) -> dict[str, GeometryDataset]:
        out = super().load_inputs(ids, y)
        for name in SPLITS:
            d = out[name]
            out[name] = GeometryDataset(
                d.geometries, d.y, features_by_id(self.features_path, d.ids)
            )
        return out
