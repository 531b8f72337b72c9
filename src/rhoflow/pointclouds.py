"""Point-cloud representation of a density (EDG Table 4 / EDBench style).

One molecule is ``[P, 4]`` float32, one row per point: ``x, y, z`` in Å (the store's own
Cartesian frame, i.e. the frame of the atom coordinates, not re-centred) and ``ρ`` in e/bohr³
(the store's density unit). A shard is ``[N, P, 4]``. Points are the native grid points with
``ρ > threshold`` (e/bohr³; default 0.05, a contour inside the molecular surface commonly drawn
at 0.001–0.002, so the cloud keeps the bonding and core regions), reduced to ``n_points``
(default 1024) by farthest-point sampling (FPS) in Euclidean distance: the first point is
drawn by the seeded generator, each next one is the candidate farthest from all chosen so far
(ties: lowest grid index, C order). Candidates fewer than ``n_points``: all of them, in FPS
order, repeated cyclically to length ``n_points`` (row ``i`` is FPS point ``i mod M``). No
point above the threshold raises ``ValueError``.

:func:`build_shard` seeds each molecule with ``(seed, crc32(id))`` so its cloud does not
depend on the shard layout, and writes one per-molecule group
(:class:`rhoflow.zarrgroup.MoleculeGroupWriter`) with ``points`` float32 ``[molecule, point,
feature]`` (one molecule per inner chunk) and attributes ``features``, ``units``, ``settings``
and ``source``; :func:`open_pointclouds` reads it back.

Every function takes the completed ``pointclouds`` settings of
``rhoflow/schemas/config.schema.yaml`` (less ``engine``), filled and checked once where the
command enters the library (``rhoflow pointclouds``); nothing here checks them again.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.ledger import LedgerRow, each_molecule
from rhoflow.result import Grid
from rhoflow.units import ANGSTROM_PER_BOHR
from rhoflow.zarrgroup import (
    MoleculeGroup,
    MoleculeGroups,
    MoleculeGroupWriter,
    open_representation,
)

FORMAT = "rhoflow-pointclouds"

FEATURES: tuple[str, ...] = ("x", "y", "z", "density")
"""Columns of each point."""

UNITS: dict[str, str] = {"x": "angstrom", "y": "angstrom", "z": "angstrom", "density": "e/bohr^3"}
"""Units of :data:`FEATURES`."""


def farthest_point_sampling(
    points: np.ndarray, n: int, rng: np.random.Generator | int | None
) -> np.ndarray:
    """Indices [min(n, M)] of ``n`` farthest-point-sampled rows of ``points`` [M, 3]; the first
    is ``rng.integers(M)``. O(n·M) time, O(M) memory (one running min-distance vector)."""
    pts = np.asarray(points, dtype=np.float64)
    m = len(pts)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    n = min(int(n), m)
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = int(np.random.default_rng(rng).integers(m))
    dist = np.sum((pts - pts[chosen[0]]) ** 2, axis=1)
    for i in range(1, n):
        chosen[i] = int(np.argmax(dist))
        np.minimum(dist, np.sum((pts - pts[chosen[i]]) ** 2, axis=1), out=dist)
    return chosen


def point_cloud(
    density: Grid,
    settings: Mapping[str, Any],
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """``[n_points, 4]`` float32 point cloud (x, y, z in Å; ρ in e/bohr³) of a density grid
    (bohr geometry, e/bohr³); see the module docstring. ``rng`` defaults to ``seed``."""
    values = np.asarray(density.values)
    above = np.flatnonzero(values.reshape(-1) > float(settings["threshold"]))
    if above.size == 0:
        raise ValueError(f"no grid point has density above {settings['threshold']} e/bohr^3")
    ijk = np.stack(np.unravel_index(above, values.shape), axis=1)  # [M, 3]
    xyz_bohr = np.asarray(density.origin_bohr) + ijk * np.asarray(density.spacing_bohr)
    chosen = farthest_point_sampling(
        xyz_bohr, int(settings["n_points"]), settings["seed"] if rng is None else rng
    )
    rows = chosen[np.arange(int(settings["n_points"])) % len(chosen)]  # cyclic padding
    out = np.empty((len(rows), 4), dtype=np.float32)
    out[:, :3] = xyz_bohr[rows] * ANGSTROM_PER_BOHR
    out[:, 3] = values.reshape(-1)[above[rows]]
    return out


def molecule_seed(seed: int, mol_id: str) -> np.random.Generator:
    """The generator :func:`build_shard` uses for one molecule: ``(seed, crc32(id))``."""
    return np.random.default_rng([int(seed), zlib.crc32(mol_id.encode())])


def build_shard(
    store_path: str | Path, out_path: str | Path, settings: Mapping[str, Any]
) -> list[LedgerRow]:
    """Point clouds of every molecule of the density shard store ``store_path`` in one Zarr v3
    group at ``out_path`` (written atomically): ``points`` float32 [N, P, 4], ``ids`` [N].

    A molecule without a cloud (e.g. no grid point above the threshold) is left out and
    returned as a ledger row."""
    from rhoflow.store.reader import open_store

    store = open_store(store_path)
    p = int(settings["n_points"])
    failures: list[LedgerRow] = []

    def compute(pos: int) -> np.ndarray:
        seed = molecule_seed(int(settings["seed"]), store.ids[pos])
        return point_cloud(store.grid(pos, "density"), settings, seed)

    attributes = {"features": list(FEATURES), "units": UNITS, "settings": dict(settings),
                  "source": str(store_path)}
    with MoleculeGroupWriter(out_path, FORMAT, attributes) as out:
        out.array(
            "points",
            (p, len(FEATURES)),
            "float32",
            ("molecule", "point", "feature"),
            "x, y, z: angstrom; density: e/bohr^3",
            features=list(FEATURES),
        )
        for _, mol_id, cloud in each_molecule(store.ids, "pointclouds", compute, failures):
            out.add(mol_id, points=cloud)
    return failures


def open_pointclouds(path: str | Path | list[str | Path]) -> MoleculeGroup | MoleculeGroups:
    """Point-cloud groups written by :func:`build_shard` (one path or a list of shards):
    ``open_pointclouds(path)[id]["points"]`` is the float32 ``[P, 4]`` cloud of one molecule."""
    return open_representation(path, FORMAT)
