"""Statistics and checks of a whole density dataset: one dask task per shard store.

Each task reads its shard's densities and recomputes, per molecule, what the engine stored as
checks when it wrote them (:mod:`rhoflow.density.checks`): the grid sum Σ ρ · dV (e), ``rho_min``
and ``rho_max`` (e/bohr³). The tasks run on the current scheduler (a
:func:`rhoflow.cluster.dask_client`, else dask's threads) and give the same result on any.

:func:`dataset_stats` returns (JSON-ready):

``molecules``, ``shards``, ``with_esp``
    counts over the dataset
``density_points``
    stored density grid values
``checks``
    ``{name: {"min", "mean", "max"}}`` over the molecules of the stored checks
    (``captured_fraction`` (1), ``grid_sum_electrons`` (e), ``rho_min``/``rho_max``
    (e/bohr³)) and of ``n_electrons_dm_error`` = tr(DS) − expected electrons (e)
``mismatched``
    ids (sorted) whose recomputed grid sum, ``rho_min`` or ``rho_max`` differ from the stored
    checks (relative ``rtol``): the stored values are not those the checks were made on
``electron_count_errors``
    ids (sorted) with |tr(DS) − expected| > ``dm_tolerance_electrons``
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.store.reader import open_store

SUMMARISED = ("captured_fraction", "grid_sum_electrons", "rho_min", "rho_max")
"""Stored checks summarised over the dataset (with ``n_electrons_dm_error``)."""


def _shard_stats(shard: str, rtol: float, dm_tolerance_electrons: float) -> dict[str, Any]:
    """Partial statistics of one shard store (combined by :func:`dataset_stats`)."""
    store = open_store(shard)
    values: dict[str, list[float]] = {name: [] for name in (*SUMMARISED, "n_electrons_dm_error")}
    mismatched, count_errors = [], []
    for pos, (mol_id, meta) in enumerate(zip(store.ids, store.all_metadata(), strict=True)):
        checks = meta.get("checks") or {}
        grid = store.grid(pos)
        rho = grid.values
        recomputed = {
            "grid_sum_electrons": float(rho.sum(dtype=np.float64)) * grid.voxel_volume_bohr3,
            "rho_min": float(rho.min()),
            "rho_max": float(rho.max()),
        }
        if any(
            name in checks and not np.isclose(value, checks[name], rtol=rtol, atol=1e-10)
            for name, value in recomputed.items()
        ):
            mismatched.append(mol_id)
        for name in SUMMARISED:
            if checks.get(name) is not None:
                values[name].append(float(checks[name]))
        if "n_electrons_dm" in checks and "n_electrons_expected" in checks:
            error = float(checks["n_electrons_dm"]) - float(checks["n_electrons_expected"])
            values["n_electrons_dm_error"].append(error)
            if not abs(error) <= dm_tolerance_electrons:
                count_errors.append(mol_id)
    return {
        "molecules": len(store),
        "with_esp": int(store.has_esp.sum()),
        "density_points": int(np.prod(store.shape.astype(np.int64), axis=1).sum()),
        "values": {name: np.asarray(v, dtype=np.float64) for name, v in values.items()},
        "mismatched": mismatched,
        "electron_count_errors": count_errors,
    }


def dataset_stats(
    shards: Iterable[str | Path], rtol: float = 1e-5, dm_tolerance_electrons: float = 1e-4
) -> dict[str, Any]:
    """Statistics and checks of the density shard stores ``shards`` (module docstring).

    Args:
        shards: finished shard stores (``Dataset.shards`` of an index).
        rtol: relative tolerance of a recomputed check against the stored one (float32 values
            against the engine's float64 checks agree to ~1e-7).
        dm_tolerance_electrons: largest accepted |tr(DS) − expected| (e), the engines' own
            ``rhoflow.density.checks.DM_TOLERANCE``.
    """
    import dask

    paths = [str(Path(s).absolute()) for s in shards]
    parts = dask.compute(
        *[dask.delayed(_shard_stats, pure=True)(p, rtol, dm_tolerance_electrons) for p in paths]
    )
    checks: dict[str, dict[str, float | None]] = {}
    for name in (*SUMMARISED, "n_electrons_dm_error"):
        v = np.concatenate([p["values"][name] for p in parts]) if parts else np.empty(0)
        checks[name] = (
            {"min": float(v.min()), "mean": float(v.mean()), "max": float(v.max())}
            if len(v)
            else {"min": None, "mean": None, "max": None}
        )
    return {
        "molecules": sum(p["molecules"] for p in parts),
        "shards": len(paths),
        "with_esp": sum(p["with_esp"] for p in parts),
        "density_points": sum(p["density_points"] for p in parts),
        "checks": checks,
        "mismatched": sorted(i for p in parts for i in p["mismatched"]),
        "electron_count_errors": sorted(i for p in parts for i in p["electron_count_errors"]),
    }
