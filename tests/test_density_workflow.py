"""The density rules through snakemake: a job killed mid-shard never leaves a complete-looking
store, and a rerun with --rerun-incomplete completes the shard, whose store and representations
plain zarr and xarray read (no rhoflow on that path) as rhoflow's readers do."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr
from conftest import FAST_CONFORMERS, snakemake_command, snakemake_env

from rhoflow.ledger import read_ledger
from rhoflow.store import IncompleteStoreError, open_dataset, open_store

pytestmark = pytest.mark.workflow

SMILES = "O water\nC methane\nC=O formaldehyde\nN ammonia\nCO methanol\n"


def write_config(workdir, engines, **engine_settings):
    (workdir / "mols.smi").write_text(SMILES)
    config = {
        "sources": [{"name": "t", "format": "smiles", "path": "mols.smi"}],
        "shards": {"shard_size": 10, "threads": 1},
        "conformers": FAST_CONFORMERS,
        "density": {"engines": engines, "threads": 1, "workers": 1, **engine_settings},
        "voxels": {"engine": engines[0], "edge_angstrom": 12.0},
        "pointclouds": {"engine": engines[0], "n_points": 64},
        "render": {"engine": engines[0], "size": 32},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


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


def snakemake_cmd(workdir, *args):
    return snakemake_command(workdir, "--cores", "1", *args)


def test_sigkill_mid_shard_then_rerun_incomplete(tmp_path):
    # pyscf on a 48^3 box with 6-31G*: about a second per molecule, slow enough to kill mid-way
    write_config(
        tmp_path,
        ["pyscf"],
        pyscf={"basis": "6-31g*", "grid": "box", "box_points": 48, "esp": "none"},
    )
    store = tmp_path / "results/density/pyscf/t-00000.zarr"
    log = tmp_path / "logs/density/pyscf/t-00000.log"
    proc = subprocess.Popen(
        snakemake_cmd(tmp_path),
        env=snakemake_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        # wait until the density job has stored at least one molecule, then kill everything
        while not re.search(
            r"pyscf densities: .*\b[1-4]/5 ", log.read_text() if log.exists() else ""
        ):
            assert proc.poll() is None, "snakemake ended before the density job was killed"
            assert time.monotonic() < deadline, "density job never made progress"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not store.exists() or pytest.raises(IncompleteStoreError, open_store, store)
    leftovers = [p.name for p in store.parent.iterdir() if p.name.startswith(".")]
    assert leftovers, "the killed writer's hidden temporary store should be what remains"

    # what a user does after a node died: unlock the working directory, rerun the incomplete job
    subprocess.run(
        snakemake_cmd(tmp_path, "--unlock"), env=snakemake_env(), check=True, capture_output=True
    )
    rerun = subprocess.run(
        snakemake_cmd(tmp_path, "--rerun-incomplete"),
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert len(open_store(store)) == 5
    assert not [p for p in store.parent.iterdir() if p.name.startswith(".")]  # temp cleaned
    assert read_ledger(tmp_path / "results/density/pyscf/t-00000.ledger.tsv") == []
    dataset = open_dataset(tmp_path / "results/density/pyscf/index.parquet")
    water = dataset.get("t:water")
    assert water.shape == (48, 48, 48)
    assert water.attrs["checks"]["n_electrons_dm"] == pytest.approx(10.0, abs=1e-6)
    voxels = zarr.open_group(tmp_path / "results/voxels/t-00000.zarr", mode="r")
    assert voxels["voxels"].shape == (5, 11, 24, 24, 24) and voxels["voxels"].dtype == "float16"
    points = zarr.open_group(tmp_path / "results/pointclouds/t-00000.zarr", mode="r")
    assert points["points"].shape == (5, 64, 4)
    images = zarr.open_group(tmp_path / "results/render/t-00000.zarr", mode="r")
    assert images["density_images"].shape == (5, 6, 4, 32, 32)
    assert images["structure_images"].shape == (5, 4, 3, 32, 32)
    gallery = sorted(p.name for p in (tmp_path / "results/render/gallery").glob("*.png"))
    assert "t_water_density_0_depth.png" in gallery and len(gallery) == 2 * (6 * 2 + 4)
    for stage in ("voxels", "pointclouds", "render"):
        assert read_ledger(tmp_path / f"results/{stage}/t-00000.ledger.tsv") == []
    summary = (tmp_path / "results/summary/stages.tsv").read_text().splitlines()
    for stage in ("density_pyscf", "voxels", "pointclouds", "render"):
        assert f"{stage}\tmolecules\tout\t5" in summary, summary
    check_plain_readers(tmp_path / "results", "pyscf", "t-00000")
