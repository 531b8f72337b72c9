"""Rendering: density/ESP images with a ray-marched depth channel, structural images, image
shards and PNG export (headless PyMOL)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymol2")
PIL = pytest.importorskip("PIL.Image")

from scipy.ndimage import binary_fill_holes  # noqa: E402

from rhoflow.cli import main  # noqa: E402
from rhoflow.config import section_settings  # noqa: E402
from rhoflow.render.depth import depth_to_uint8, march_depth  # noqa: E402
from rhoflow.render.pymol_scene import (  # noqa: E402
    pymol_session,
    render_density_views,
    render_structure_views,
    setup_density_scene,
)
from rhoflow.render.store import build_shard, export_pngs, open_images  # noqa: E402
from rhoflow.result import Grid  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPACING = 0.2  # bohr


def blob_grid(centres_bohr: np.ndarray, widths_bohr: np.ndarray, n: int = 41) -> Grid:
    """Sum of Slater blobs 0.5·exp(-r/w) (e/bohr³) on a cube of n points per axis (bohr)."""
    origin = np.full(3, -(n - 1) * SPACING / 2)
    axis = origin[0] + np.arange(n) * SPACING
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    values = np.zeros((n, n, n))
    for c, w in zip(centres_bohr, widths_bohr, strict=True):
        r = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
        values += 0.5 * np.exp(-r / w)
    return Grid(origin, np.full(3, SPACING), values.astype(np.float32))


def constant_like(grid: Grid, value: float) -> Grid:
    return Grid(grid.origin_bohr, grid.spacing_bohr, np.full_like(grid.values, value))


@pytest.fixture(scope="module")
def cmd():
    with pymol_session() as c:
        yield c


def silhouette_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pixels at least half-way from white to the surface colour, holes (highlights) filled."""
    return binary_fill_holes((255 - rgb.astype(int)).max(axis=-1) > 64)


def settings(**given) -> dict:
    """The config's render section with ``given`` and the defaults, as the CLI completes it."""
    return section_settings("render", given)


ONE_VIEW = settings(size=96, density_views=[["x", 0]], zoom_buffer=0.0)


@pytest.mark.parametrize("ortho", [False, True])
def test_one_atom_depth_relief_and_silhouette(cmd, ortho: bool) -> None:
    rho = blob_grid(np.zeros((1, 3)), np.array([1.0]))
    img = render_density_views(
        cmd, np.array([8]), np.zeros((1, 3)), rho, constant_like(rho, 0.2),
        {**ONE_VIEW, "orthoscopic": ortho},
    )
    assert img.shape == (1, 4, 96, 96) and img.dtype == np.uint8
    rgb, depth = img[0, :3].transpose(1, 2, 0), img[0, 3]
    fg = depth > 0
    centre = depth[44:52, 44:52].astype(float).mean()
    rim = depth[fg][depth[fg] < np.percentile(depth[fg], 10)].mean()
    assert centre > 240 and rim < centre - 100
    sil = silhouette_rgb(rgb)
    iou = (sil & fg).sum() / (sil | fg).sum()
    assert iou >= 0.95, iou
    # positive ESP everywhere → blue surface
    r, g, b = rgb[fg].astype(float).mean(axis=0)
    assert b > r + 60 and b > g + 60


def test_negative_esp_renders_red(cmd) -> None:
    rho = blob_grid(np.zeros((1, 3)), np.array([1.0]))
    img = render_density_views(
        cmd, np.array([8]), np.zeros((1, 3)), rho, constant_like(rho, -0.2), ONE_VIEW
    )
    rgb = img[0, :3].transpose(1, 2, 0)
    r, g, b = rgb[img[0, 3] > 0].astype(float).mean(axis=0)
    assert r > b + 60 and r > g + 60


def test_legend_hidden_and_ramp_defined(cmd) -> None:
    rho = blob_grid(np.zeros((1, 3)), np.array([1.0]))
    with tempfile.TemporaryDirectory() as tmp:
        setup_density_scene(
            cmd, Path(tmp), np.array([8]), np.zeros((1, 3)), rho, constant_like(rho, 0.0), ONE_VIEW
        )
        assert "esp_ramp" in cmd.get_names("objects")
        assert "esp_ramp" not in cmd.get_names("objects", enabled_only=1)
        assert "iso" in cmd.get_names("objects", enabled_only=1)
        assert cmd.get("surface_color", "iso") == "esp_ramp"
    cmd.reinitialize()


def test_six_views_distinct_for_asymmetric_molecule(cmd) -> None:
    centres = np.array([[0.0, 0.0, 0.0], [2.2, 0.3, 0.0], [-0.6, 1.9, 0.8], [-0.9, -0.7, -1.7]])
    numbers = np.array([6, 8, 1, 9])
    rho = blob_grid(centres, np.array([0.9, 0.8, 0.5, 0.7]), n=51)
    esp = Grid(rho.origin_bohr, rho.spacing_bohr, (rho.values - 0.3).astype(np.float32))
    img = render_density_views(cmd, numbers, centres, rho, esp, settings(size=64))
    assert img.shape == (6, 4, 64, 64) and img.dtype == np.uint8
    flat = img.reshape(6, -1).astype(int)
    for i in range(6):
        assert (img[i, 3] > 0).sum() > 200  # every view sees the surface
        for j in range(i + 1, 6):
            assert np.abs(flat[i] - flat[j]).mean() > 1.0, (i, j)


def test_structure_views(cmd) -> None:
    centres = np.array([[0.0, 0.0, 0.0], [2.6, 0.0, 0.0], [-1.0, 1.8, 0.0]])
    img = render_structure_views(cmd, np.array([6, 8, 1]), centres, settings(size=48))
    assert img.shape == (4, 3, 48, 48) and img.dtype == np.uint8
    assert (img < 200).any()  # something drawn on the white background
    assert (img[:, :, 0, 0] == 255).all()  # white corners


def test_depth_conventions() -> None:
    dist = np.array([[np.nan, 10.0], [12.0, 11.0]])
    out = depth_to_uint8(dist)
    assert out.tolist() == [[0, 255], [1, 128]]
    assert depth_to_uint8(np.full((2, 2), np.nan)).sum() == 0
    # straight down −z through a blob at the origin 15 Å away: hit near 15 − radius
    rho = blob_grid(np.zeros((1, 3)), np.array([1.0]))
    view = (1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, -15, 0, 0, 0, 10, 20, -20)
    d = march_depth(view, rho, 0.05, 9, 9)
    radius_a = np.log(10.0) * 0.529177210903
    assert abs(d[4, 4] - (15 - radius_a)) < 0.02
    assert np.isnan(d[0, 0])


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ('{"sise": 64}', "unknown config key 'render.sise'"),
        ('{"depth_mode": "fog"}', "'render.depth_mode'"),
        ('{"structure_views": [["w", 90]]}', r"'render.structure_views\[0\]\[0\]'"),
        ('{"ramp_colors": ["red", "blue"]}', "'render.ramp_colors'"),
    ],
)
@pytest.mark.parametrize("command", ["build", "structures"])
def test_render_commands_check_settings_before_rendering(tmp_path, command, given, key) -> None:
    out = tmp_path / "images.zarr"
    with pytest.raises(ValueError, match=key):
        main(["render", command, "--settings", given, str(tmp_path / "in"), str(out)])
    assert not out.exists()


def test_alpha_depth_mode(cmd) -> None:
    rho = blob_grid(np.zeros((1, 3)), np.array([1.0]))
    img = render_density_views(
        cmd, np.array([8]), np.zeros((1, 3)), rho, None, {**ONE_VIEW, "depth_mode": "alpha"}
    )
    alpha = img[0, 3]
    assert alpha[0, 0] == 0 and alpha[48, 48] > 0


def test_build_shard_ledgers_no_surface_and_exports(tiny_store: Path, tmp_path: Path) -> None:
    import zarr

    out = tmp_path / "images.zarr"
    failures = build_shard(tiny_store, out, settings(size=32))
    assert [(f.id, f.stage, f.reason) for f in failures] == [
        ("t:empty", "render", "representation_error")
    ]
    assert "never reaches the isosurface level" in failures[0].message
    group = zarr.open_group(str(out), mode="r")
    assert group.attrs["complete"] is True
    assert [str(x) for x in group["ids"][...]] == ["t:h2o", "t:h2co"]
    assert group.attrs["settings"]["size"] == 32
    dens, struct = group["density_images"], group["structure_images"]
    assert dens.shape == (2, 6, 4, 32, 32) and dens.dtype == np.uint8
    assert struct.shape == (2, 4, 3, 32, 32) and struct.dtype == np.uint8
    assert (np.asarray(dens[:, :, 3]) > 0).any(axis=(2, 3)).all()  # every view has a surface
    images = open_images(out)["t:h2co"]
    np.testing.assert_array_equal(images["density_images"], dens[1])
    np.testing.assert_array_equal(images["structure_images"], struct[1])
    paths = export_pngs(out, "t:h2co", tmp_path / "png")
    assert len(paths) == 6 * 2 + 4
    names = {p.name for p in paths}
    assert "t_h2co_density_0_rgb.png" in names
    assert "t_h2co_density_5_depth.png" in names
    with PIL.open(tmp_path / "png" / "t_h2co_density_0_rgb.png") as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    with PIL.open(tmp_path / "png" / "t_h2co_density_0_depth.png") as im:
        assert im.mode == "L"
    with pytest.raises(KeyError):
        export_pngs(out, "t:empty", tmp_path / "png")


def test_structure_shard_needs_only_coordinates(tiny_store: Path, tmp_path: Path) -> None:
    """Structure views from a molecule table (no density): the same images as the density
    store's path gives for the same atoms; a molecule without coordinates is a ledger row."""
    from rdkit import Chem

    from rhoflow.molecule import from_rdkit, write_molecules
    from rhoflow.render import build_structure_shard
    from rhoflow.store.reader import open_store
    from rhoflow.units import ANGSTROM_PER_BOHR

    store = open_store(tiny_store)
    numbers, coords_bohr = store.atoms(store.ids.index("t:h2co"))
    mol = Chem.AddHs(Chem.MolFromSmiles("C=O"))  # no conformer: no coordinates
    placed = from_rdkit("t:h2co", mol)
    placed.atomic_numbers = np.asarray(numbers)  # the store's atoms, in Å
    placed.coords_angstrom = np.asarray(coords_bohr) * ANGSTROM_PER_BOHR
    missing = from_rdkit("t:nocoords", mol)
    table = tmp_path / "t.parquet"
    write_molecules(table, [missing, placed])
    out = tmp_path / "structures.zarr"
    failures = build_structure_shard(table, out, settings(size=32))
    assert [(f.id, f.stage) for f in failures] == [("t:nocoords", "render_structures")]
    images = open_images(out)
    assert images.ids == ["t:h2co"] and "density_images" not in images["t:h2co"]
    reference = build_shard(tiny_store, tmp_path / "full.zarr", settings(size=32))
    assert reference  # t:empty
    np.testing.assert_array_equal(
        images["t:h2co"]["structure_images"],
        open_images(tmp_path / "full.zarr")["t:h2co"]["structure_images"],
    )
