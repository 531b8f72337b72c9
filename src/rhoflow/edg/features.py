"""Per-molecule feature vectors keyed by id: ImageED's ED features and the teacher's outputs.

A features group (``results/edg/imageed_features.zarr``, ``results/edg/teacher_features/
<source>.zarr``) is a per-molecule group (:class:`rhoflow.zarrgroup.MoleculeGroupWriter`,
format ``rhoflow-features``): ``ids`` [molecule] and ``features`` float32 [molecule, feature]
(dimensionless network activations), with the model file and inputs it was computed from in
the attributes. Plain zarr reads it: ``g = zarr.open_group(p); g["ids"][:], g["features"][:]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rhoflow.edg.modelfile import load_model
from rhoflow.zarrgroup import MoleculeGroupWriter, open_finished_group

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


@torch.no_grad()
def compute_features(
    network: Callable[[Tensor], Tensor],
    groups: Sequence[str | Path],
    array: str,
    batch_size: int = 32,
) -> tuple[list[str], np.ndarray]:
    """``network(images)`` [B, F] of every molecule of the image ``groups`` (array ``array``),
    in group order: ids and float32 [M, F]."""
    from tqdm import tqdm

    from rhoflow.render import open_images

    images = open_images([Path(g) for g in groups])
    ids = list(images.ids)
    rows = []
    for lo in tqdm(range(0, len(ids), batch_size), desc=f"features of {array}", unit="batch"):
        batch = np.stack([images.read(i, array) for i in ids[lo : lo + batch_size]])
        rows.append(network(torch.from_numpy(batch)).float().numpy())
    width = rows[0].shape[1] if rows else 0
    return ids, np.concatenate(rows) if rows else np.zeros((0, width), np.float32)


def write_model_features(
    model_file: str | Path, groups: Sequence[str | Path], out: str | Path, batch_size: int = 32
) -> int:
    """The features group ``out`` of every molecule of ``groups``: ImageED's ED feature (mean
    encoder token, unmasked) of the density images, or the teacher's EDP(teacher(S)) of the
    structure images, by the model file's kind. Returns the number of molecules."""
    network, meta = load_model(model_file)
    if meta["model"] == "imageed":
        ids, features = compute_features(network.features, groups, "density_images", batch_size)
    else:
        ids, features = compute_features(network, groups, "structure_images", batch_size)
    attributes = {
        "model": str(model_file),
        "kind": meta["model"],
        "groups": [str(g) for g in groups],
    }
    write_features(out, ids, features, attributes)
    return len(ids)
