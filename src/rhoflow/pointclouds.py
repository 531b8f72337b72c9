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
depend on the shard layout, and writes one Zarr v3 group with ``points`` float32 [N, P, 4]
(one molecule per chunk), ``ids`` [N] (strings) and attributes ``features``, ``units``,
``settings`` and ``source``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from rhoflow.io import atomic_path
from rhoflow.ledger import LedgerRow, fill_rows
from rhoflow.result import Grid
from rhoflow.units import ANGSTROM_PER_BOHR

FEATURES: tuple[str, ...] = ("x", "y", "z", "density")
"""Columns of each point."""

UNITS: dict[str, str] = {"x": "angstrom", "y": "angstrom", "z": "angstrom", "density": "e/bohr^3"}
"""Units of :data:`FEATURES`."""

DEFAULTS: dict[str, Any] = {"threshold": 0.05, "n_points": 1024, "seed": 0}
"""Settings: density threshold (e/bohr³, points strictly above it), points per molecule,
base seed of the farthest-point sampling."""


def settings_with_defaults(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`DEFAULTS` updated by ``settings``; unknown keys and bad values raise ValueError."""
    merged = dict(DEFAULTS)
    if settings:
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown point-cloud settings {sorted(unknown)}; known {sorted(DEFAULTS)}"
            )
        merged.update(settings)
    if int(merged["n_points"]) < 1:
        raise ValueError(f"n_points must be at least 1, got {merged['n_points']!r}")
    return merged


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
    settings: Mapping[str, Any] | None = None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """``[n_points, 4]`` float32 point cloud (x, y, z in Å; ρ in e/bohr³) of a density grid
    (bohr geometry, e/bohr³); see the module docstring. ``rng`` defaults to ``seed``."""
    s = settings_with_defaults(settings)
    values = np.asarray(density.values)
    above = np.flatnonzero(values.reshape(-1) > float(s["threshold"]))
    if above.size == 0:
        raise ValueError(f"no grid point has density above {s['threshold']} e/bohr^3")
    ijk = np.stack(np.unravel_index(above, values.shape), axis=1)  # [M, 3]
    xyz_bohr = np.asarray(density.origin_bohr) + ijk * np.asarray(density.spacing_bohr)
    chosen = farthest_point_sampling(
        xyz_bohr, int(s["n_points"]), s["seed"] if rng is None else rng
    )
    rows = chosen[np.arange(int(s["n_points"])) % len(chosen)]  # cyclic padding
    out = np.empty((len(rows), 4), dtype=np.float32)
    out[:, :3] = xyz_bohr[rows] * ANGSTROM_PER_BOHR
    out[:, 3] = values.reshape(-1)[above[rows]]
    return out


def molecule_seed(seed: int, mol_id: str) -> np.random.Generator:
    """The generator :func:`build_shard` uses for one molecule: ``(seed, crc32(id))``."""
    return np.random.default_rng([int(seed), zlib.crc32(mol_id.encode())])


def build_shard(
    store_path: str | Path, out_path: str | Path, settings: Mapping[str, Any] | None = None
) -> list[LedgerRow]:
    """Point clouds of every molecule of the density shard store ``store_path`` in one Zarr v3
    group at ``out_path`` (written atomically): ``points`` float32 [N, P, 4], ``ids`` [N].

    A molecule without a cloud (e.g. no grid point above the threshold) is left out and
    returned as a ledger row."""
    from rhoflow.store.reader import open_store

    s = settings_with_defaults(settings)
    store = open_store(store_path)
    n, p = len(store), int(s["n_points"])
    failures: list[LedgerRow] = []

    def compute(pos: int) -> list[np.ndarray]:
        seed = molecule_seed(int(s["seed"]), store.ids[pos])
        return [point_cloud(store.grid(pos, "density"), s, seed)]

    with atomic_path(out_path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        group.attrs.update(
            {
                "format": "rhoflow-pointclouds",
                "features": list(FEATURES),
                "units": UNITS,
                "layout": "points[molecule, point, feature]",
                "settings": dict(s),
                "source": str(store_path),
            }
        )
        points = group.create_array(
            "points", shape=(n, p, len(FEATURES)), dtype="float32", chunks=(1, p, len(FEATURES))
        )
        fill_rows(group, [points], store.ids, "pointclouds", compute, failures)
    return failures
