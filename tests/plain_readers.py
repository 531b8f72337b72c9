"""Reading rhoflow's outputs with plain zarr and xarray (no rhoflow import on this path), and
checking the values equal what rhoflow's readers give."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr


def plain_density(store: Path, i: int) -> tuple[str, np.ndarray]:
    """Molecule ``i`` of a density shard store: its id and float32 density [nx, ny, nz]."""
    g = zarr.open_group(store, mode="r")
    lo, hi = g["point_offset"][i : i + 2]
    return str(g["ids"][i]), g["density"][lo:hi].reshape(g["grid_shape"][i])


def plain_row(group: Path, name: str, i: int) -> tuple[str, np.ndarray]:
    """Row ``i`` of array ``name`` of a representation group, with its id."""
    g = zarr.open_group(group, mode="r")
    return str(g["ids"][i]), g[name][i]


def check_plain_readers(results: Path, engine: str, shard: str) -> None:
    """Plain zarr reads of one density molecule, voxel grid, image set and point cloud equal
    rhoflow's readers; ``xarray.open_zarr`` opens every kind of group; nothing warns."""
    from rhoflow.pointclouds import open_pointclouds
    from rhoflow.render import open_images
    from rhoflow.store import open_store
    from rhoflow.voxels import open_voxels

    density = results / "density" / engine / f"{shard}.zarr"
    groups = {
        "voxels": (results / "voxels" / f"{shard}.zarr", open_voxels),
        "points": (results / "pointclouds" / f"{shard}.zarr", open_pointclouds),
        "density_images": (results / "render" / f"{shard}.zarr", open_images),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mol_id, rho = plain_density(density, 1)
        assert rho.dtype == np.float32
        np.testing.assert_array_equal(rho, open_store(density).values(mol_id))
        for name, (path, reader) in groups.items():
            mol_id, row = plain_row(path, name, 1)
            np.testing.assert_array_equal(row, reader(path)[mol_id][name])
            if name == "density_images":
                assert row.dtype == np.uint8 and row.shape[:2] == (6, 4)
        for path in [density, *(p for p, _ in groups.values())]:
            ds = xr.open_zarr(path)
            assert ds.sizes["molecule"] == zarr.open_group(path, mode="r")["ids"].shape[0]
