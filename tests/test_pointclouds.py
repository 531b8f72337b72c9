"""Point clouds: thresholding, farthest-point sampling, padding, shapes, shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from rhoflow import pointclouds as P
from rhoflow.cli import main
from rhoflow.config import ConfigError, section_settings
from rhoflow.result import Grid

REPO = Path(__file__).resolve().parents[1]
A = P.ANGSTROM_PER_BOHR


def completed(**given) -> dict:
    """Settings as ``rhoflow pointclouds`` hands them on: defaults filled, no ``engine``."""
    settings = section_settings("pointclouds", given)
    del settings["engine"]
    return settings


def blob_grid(n: int = 40, spacing: float = 0.25, width: float = 1.0) -> Grid:
    """A 10-electron Gaussian (σ = ``width`` bohr) centred at (1, -2, 0.5) bohr."""
    centre = np.array([1.0, -2.0, 0.5])
    origin = centre - spacing * (n - 1) / 2
    axes = [origin[d] + spacing * np.arange(n) for d in range(3)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    r2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
    values = 10.0 * np.exp(-r2 / (2 * width**2)) / (2 * np.pi * width**2) ** 1.5
    return Grid(origin, np.full(3, spacing), values.astype(np.float32))


def test_fps_is_deterministic_for_a_seed() -> None:
    points = np.random.default_rng(0).normal(size=(3000, 3))
    a = P.farthest_point_sampling(points, 64, 5)
    b = P.farthest_point_sampling(points, 64, np.random.default_rng(5))
    c = P.farthest_point_sampling(points, 64, 6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a[0] == np.random.default_rng(5).integers(len(points))
    assert len(set(a.tolist())) == 64


def test_fps_picks_the_farthest_point_each_time() -> None:
    points = np.random.default_rng(1).uniform(size=(500, 3))
    chosen = P.farthest_point_sampling(points, 20, 0)
    for i in range(1, len(chosen)):
        dist = np.min(np.linalg.norm(points[:, None] - points[chosen[:i]][None], axis=2), axis=1)
        assert chosen[i] == int(np.argmax(dist))


def test_point_cloud_thresholds_shapes_and_units() -> None:
    grid = blob_grid()
    settings = completed(threshold=0.05, n_points=256)
    cloud = P.point_cloud(grid, settings)
    assert cloud.shape == (256, 4) and cloud.dtype == np.float32
    assert (cloud[:, 3] > 0.05).all()
    assert len(np.unique(cloud[:, :3], axis=0)) == 256
    # every point is a native grid point above the threshold, in Å
    ijk = (cloud[:, :3] / A - grid.origin_bohr) / grid.spacing_bohr
    np.testing.assert_allclose(ijk, np.rint(ijk), atol=1e-3)
    idx = np.rint(ijk).astype(int)
    np.testing.assert_allclose(cloud[:, 3], grid.values[idx[:, 0], idx[:, 1], idx[:, 2]])
    # the cloud lies around the blob centre (Å)
    np.testing.assert_allclose(cloud[:, :3].mean(axis=0), np.array([1.0, -2.0, 0.5]) * A, atol=0.2)
    np.testing.assert_array_equal(cloud, P.point_cloud(grid, settings))  # seed from settings
    assert not np.array_equal(cloud, P.point_cloud(grid, {**settings, "seed": 1}))


def test_few_points_are_padded_cyclically() -> None:
    values = np.random.default_rng(2).uniform(size=(12, 12, 12)).astype(np.float32)
    grid = Grid(np.zeros(3), np.full(3, 0.5), values)
    threshold = float(np.sort(values.reshape(-1))[-11])  # exactly 10 points above
    cloud = P.point_cloud(grid, completed(threshold=threshold, n_points=25))
    assert cloud.shape == (25, 4)
    assert len(np.unique(cloud, axis=0)) == 10
    np.testing.assert_array_equal(cloud[10:20], cloud[:10])
    np.testing.assert_array_equal(cloud[20:], cloud[:5])
    with pytest.raises(ValueError, match="above"):
        P.point_cloud(grid, completed(threshold=1.5))


def test_the_command_fills_and_checks_the_settings(tiny_store: Path, tmp_path: Path) -> None:
    assert completed() == {"threshold": 0.05, "n_points": 1024, "seed": 0}
    out = tmp_path / "pc.zarr"
    assert main(["pointclouds", "--settings", '{"n_points": 8}', str(tiny_store), str(out)]) == 0
    assert zarr.open_group(str(out), mode="r").attrs["settings"] == completed(n_points=8)
    for given, message in (({"points": 3}, "unknown config key 'pointclouds.points'"),
                           ({"n_points": 0}, "'pointclouds.n_points'")):  # fmt: skip
        bad = tmp_path / "bad.zarr"
        with pytest.raises(ConfigError, match=message):
            main(["pointclouds", "--settings", json.dumps(given), str(tiny_store), str(bad)])
        assert not bad.exists()


def test_build_shard_ledgers_a_molecule_without_points(tiny_store: Path, tmp_path: Path) -> None:
    from rhoflow.store.reader import open_store

    settings = {"n_points": 128, "threshold": 0.05, "seed": 3}
    failures = P.build_shard(tiny_store, tmp_path / "pc.zarr", settings)
    assert [(f.id, f.stage, f.reason) for f in failures] == [
        ("t:empty", "pointclouds", "representation_error")
    ]
    assert "no grid point has density above" in failures[0].message
    store = open_store(tiny_store)
    group = zarr.open_group(str(tmp_path / "pc.zarr"), mode="r")
    points = group["points"][...]
    assert points.dtype == np.float32 and points.shape == (2, 128, 4)
    assert [str(x) for x in group["ids"][...]] == ["t:h2o", "t:h2co"]
    assert group.attrs["features"] == list(P.FEATURES)
    assert group.attrs["settings"] == settings
    assert (points[..., 3] > 0.05).all()
    P.build_shard(tiny_store, tmp_path / "pc2.zarr", settings)
    again = zarr.open_group(str(tmp_path / "pc2.zarr"), mode="r")["points"][...]
    np.testing.assert_array_equal(again, points)
    reader = P.open_pointclouds([tmp_path / "pc.zarr"])
    np.testing.assert_array_equal(reader["t:h2co"]["points"], points[1])
    for row, mol_id in enumerate(["t:h2o", "t:h2co"]):  # points near the atoms (Å)
        _, coords = store.atoms(store.ids.index(mol_id))
        dist = np.linalg.norm(points[row, :, None, :3] - coords[None] * A, axis=2).min(axis=1)
        assert dist.max() < 2.5
