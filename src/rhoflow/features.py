"""Per-molecule feature vectors keyed by id: a features group.

A features group (EDG's ``results/edg/imageed_features.zarr`` and teacher features, the
VQ-GAN's embeddings ``results/vqgan/<source>/features/<embedding>.zarr``) is a per-molecule
group (:class:`rhoflow.zarrgroup.MoleculeGroupWriter`, format ``rhoflow-features``): ``ids``
[molecule] and ``features`` float32 [molecule, feature] (dimensionless network activations or
pooled densities), with what it was computed from in the attributes. Plain zarr reads it:
``g = zarr.open_group(p); g["ids"][:], g["features"][:]``; :func:`open_features` by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.zarrgroup import (
    MoleculeGroup,
    MoleculeGroups,
    MoleculeGroupWriter,
    open_finished_group,
    open_representation,
)

FORMAT = "rhoflow-features"


def write_features(
    path: str | Path, ids: Sequence[str], features: np.ndarray, attributes: dict[str, Any]
) -> None:
    """Write ``features`` [M, F] of molecules ``ids`` as a features group, atomically."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) != len(ids):
        raise ValueError(f"features {features.shape} do not match {len(ids)} ids")
    with MoleculeGroupWriter(path, FORMAT, attributes) as out:
        out.array("features", features.shape[1:], "float32", ("molecule", "feature"), "1")
        for mol_id, row in zip(ids, features, strict=True):
            out.add(mol_id, features=row)


def read_features(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The ids and features float32 [M, F] of a features group (read whole: they are small)."""
    group = open_finished_group(path, FORMAT)
    return [str(i) for i in group["ids"][...].tolist()], np.asarray(group["features"][...])


def features_by_id(path: str | Path, ids: Sequence[str]) -> np.ndarray:
    """Features float32 [len(ids), F] in the order of ``ids``; NaN rows for ids the group lacks."""
    have, features = read_features(path)
    row = {mol_id: r for r, mol_id in enumerate(have)}
    out = np.full((len(ids), features.shape[1]), np.nan, dtype=np.float32)
    found = [(k, row[i]) for k, i in enumerate(ids) if i in row]
    if found:
        k, r = np.array(found).T
        out[k] = features[r]
    return out


def open_features(path: str | Path | list[str | Path]) -> MoleculeGroup | MoleculeGroups:
    """Features groups by id: ``open_features(p).read(id, "features")`` is float32 [F]."""
    return open_representation(path, FORMAT)


class FeatureTable:
    """Features groups read whole into memory (they are small: one vector per molecule), with
    the per-molecule reader's interface: ``id in table``, ``table.read(id, "features")``."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        ids: list[str] = []
        rows: list[np.ndarray] = []
        self.attrs: dict[str, Any] = {}
        for path in paths:
            more, features = read_features(path)
            ids += more
            rows.append(features)
            self.attrs = self.attrs or dict(open_finished_group(path, FORMAT).attrs)
        self.features = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
        self._row = {mol_id: r for r, mol_id in enumerate(ids)}

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, mol_id: object) -> bool:
        return mol_id in self._row

    def read(self, mol_id: str, name: str = "features") -> np.ndarray:
        """One molecule's float32 [F] vector."""
        if name != "features":
            raise KeyError(f"a features group has no array {name!r}")
        return self.features[self._row[mol_id]]
