"""ImageED's ED features and the teacher's outputs of every molecule, as features groups
(:mod:`rhoflow.features`).

A features group (``results/edg/imageed_features.zarr``, ``results/edg/teacher_features/
<source>.zarr``) is a per-molecule group (:class:`rhoflow.zarrgroup.MoleculeGroupWriter`,
format ``rhoflow-features``): ``ids`` [molecule] and ``features`` float32 [molecule, feature]
(dimensionless network activations), with the model file and inputs it was computed from in
the attributes. Plain zarr reads it: ``g = zarr.open_group(p); g["ids"][:], g["features"][:]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rhoflow.edg.modelfile import load_model
from rhoflow.features import write_features


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
