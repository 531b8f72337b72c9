"""Voxel representation: atom-channel integrals, density resampling, rotation, shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from rhoflow import voxels as V
from rhoflow.cli import main
from rhoflow.config import ConfigError, section_settings
from rhoflow.result import Grid

REPO = Path(__file__).resolve().parents[1]
A = V.ANGSTROM_PER_BOHR


def completed(**given) -> dict:
    """Voxel settings as ``rhoflow voxels`` hands them on: defaults filled, no ``engine``."""
    settings = section_settings("voxels", given)
    del settings["engine"]
    return settings


DEFAULTS = completed()
SMALL = completed(edge_angstrom=16.0)  # 32³ voxels: faster, still room for the molecules below

# chloro-fluoro-ethanol-like geometry (Å) with an iodine for the "other" channel
NUMBERS = np.array([6, 6, 8, 1, 1, 1, 1, 1, 9, 17, 16, 7, 53])
COORDS_ANGSTROM = np.array(
    [
        [0.0, 0.0, 0.0],
        [1.5, 0.0, 0.0],
        [2.0, 1.3, 0.0],
        [-0.4, 1.0, 0.2],
        [-0.4, -0.5, 0.9],
        [1.9, -0.5, 0.9],
        [2.9, 1.3, 0.3],
        [-0.3, -0.6, -0.9],
        [1.9, -0.6, -1.2],
        [-1.7, 0.2, -1.5],
        [3.5, -1.8, 1.0],
        [-2.0, -2.0, 1.0],
        [0.5, 2.8, -2.0],
    ]
)
COORDS_BOHR = COORDS_ANGSTROM / A


def blob(centre_bohr: np.ndarray, electrons: float = 10.0, width: float = 1.3) -> Grid:
    """A normalised Gaussian density (``electrons`` e, σ = ``width`` bohr) on a native grid
    of 0.3 bohr spacing around ``centre_bohr``."""
    spacing = 0.3
    n = 64
    origin = centre_bohr - spacing * (n - 1) / 2 + 0.11  # off-lattice on purpose
    axes = [origin[d] + spacing * np.arange(n) for d in range(3)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    r2 = (x - centre_bohr[0]) ** 2 + (y - centre_bohr[1]) ** 2 + (z - centre_bohr[2]) ** 2
    values = electrons * np.exp(-r2 / (2 * width**2)) / (2 * np.pi * width**2) ** 1.5
    return Grid(np.asarray(origin), np.full(3, spacing), values.astype(np.float32))


def expected_counts(numbers: np.ndarray) -> np.ndarray:
    return np.bincount(V.element_channel(numbers), minlength=len(V.ELEMENTS)).astype(float)


def test_atom_channels_integrate_to_atom_counts() -> None:
    cube = V.voxelize(NUMBERS, COORDS_BOHR, None, SMALL)
    assert cube.shape == (len(V.CHANNELS), 32, 32, 32) and cube.dtype == np.float32
    sums = cube[: len(V.ELEMENTS)].sum(axis=(1, 2, 3))
    np.testing.assert_allclose(sums, expected_counts(NUMBERS), rtol=0.02, atol=1e-4)
    assert sums[V.ELEMENTS.index("other")] == pytest.approx(1.0, rel=1e-4)  # iodine
    assert not cube[len(V.ELEMENTS) : len(V.ELEMENTS) + 2].any()  # no density given


def test_atom_channel_centre_of_mass_is_the_atom() -> None:
    centre = COORDS_ANGSTROM.mean(axis=0)
    axis = V.box_offsets_angstrom(SMALL)
    for element, z in (("O", 8), ("Cl", 17)):
        channel = V.atom_channels(NUMBERS, COORDS_BOHR, SMALL)[V.ELEMENTS.index(element)]
        weights = [channel.sum(axis=tuple(a for a in range(3) if a != d)) for d in range(3)]
        com = np.array([w @ axis / w.sum() for w in weights]) + centre
        np.testing.assert_allclose(com, COORDS_ANGSTROM[NUMBERS == z][0], atol=0.05)


def test_gridder_batches_match_single_molecules_and_reuse_the_buffer() -> None:
    rng = np.random.default_rng(3)
    molecules = [
        (rng.choice([1, 6, 7, 8, 16, 35], size=k), rng.normal(scale=2.0, size=(k, 3)) + 5.0)
        for k in (5, 12, 1, 30)
    ]
    gridder = V.AtomGridder(SMALL, batch_size=3)
    first = gridder(molecules[:3]).copy()
    second = gridder(molecules[3:]).copy()  # must not keep anything of the first call
    for got, (numbers, coords) in zip([*first, *second], molecules, strict=True):
        want = V.atom_channels(numbers, coords / A, SMALL)
        np.testing.assert_allclose(got, want, atol=1e-6)
        np.testing.assert_allclose(got.sum(axis=(1, 2, 3)), expected_counts(numbers), rtol=1e-4)
    with pytest.raises(ValueError, match="batch size"):
        gridder(molecules)


def test_atoms_outside_the_box_are_dropped() -> None:
    coords = np.array([[0.0, 0, 0], [40.0, 0, 0]])
    cube = V.atom_channels(np.array([6, 6]), coords, DEFAULTS, np.zeros(3))
    assert cube.sum() == pytest.approx(1.0, rel=1e-5)


def test_density_channel_integral_matches_native_grid() -> None:
    grid = blob(COORDS_BOHR.mean(axis=0) + np.array([0.4, -0.3, 0.2]))
    native = grid.values.sum() * grid.voxel_volume_bohr3
    cube = V.voxelize(NUMBERS, COORDS_BOHR, grid, SMALL)
    voxel_bohr3 = (0.5 / A) ** 3
    rho = cube[V.CHANNELS.index("density")]
    assert rho.sum() * voxel_bohr3 == pytest.approx(native, rel=0.02)
    angstrom = V.voxelize(NUMBERS, COORDS_BOHR, grid, {**SMALL, "density_units": "e/angstrom^3"})
    rho_a = angstrom[V.CHANNELS.index("density")]
    assert rho_a.sum() * 0.5**3 == pytest.approx(native, rel=0.02)


@pytest.mark.parametrize(("sampling", "tolerance"), [("interpolate", 0.05), ("deposit", 0.15)])
def test_gradient_channel_is_the_gradient_norm(sampling: str, tolerance: float) -> None:
    """Point samples match the analytic |∇ρ|; the deposit's voxel means are its average over
    the cloud-in-cell kernel (±1 voxel), a little broader."""
    centre = COORDS_BOHR.mean(axis=0)
    width, electrons = 1.3, 10.0
    settings = {**SMALL, "density_sampling": sampling}
    cube = V.voxelize(NUMBERS, COORDS_BOHR, blob(centre, electrons, width), settings)
    axis = V.box_offsets_angstrom(SMALL) / A
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    r2 = x**2 + y**2 + z**2
    rho = electrons * np.exp(-r2 / (2 * width**2)) / (2 * np.pi * width**2) ** 1.5
    analytic = rho * np.sqrt(r2) / width**2  # e/bohr⁴
    got = cube[V.CHANNELS.index("density_gradient_norm")]
    inner = r2 < (3 * width) ** 2
    error = np.linalg.norm(got[inner] - analytic[inner]) / np.linalg.norm(analytic[inner])
    assert error < tolerance


def test_rotation_preserves_integrals_and_is_seeded() -> None:
    grid = blob(COORDS_BOHR.mean(axis=0) + np.array([1.0, 0.0, 0.0]))
    plain = V.voxelize(NUMBERS, COORDS_BOHR, grid, SMALL)
    rotated = V.augment(NUMBERS, COORDS_BOHR, grid, 7, SMALL)
    again = V.augment(NUMBERS, COORDS_BOHR, grid, np.random.default_rng(7), SMALL)
    other = V.augment(NUMBERS, COORDS_BOHR, grid, 8, SMALL)
    np.testing.assert_array_equal(rotated, again)
    assert not np.allclose(rotated, other)
    assert not np.allclose(rotated, plain)
    sums = rotated.sum(axis=(1, 2, 3))
    plain_sums = plain.sum(axis=(1, 2, 3))
    n = len(V.ELEMENTS)
    np.testing.assert_allclose(sums[:n], expected_counts(NUMBERS), rtol=0.02, atol=1e-4)
    np.testing.assert_allclose(sums[n : n + 2], plain_sums[n : n + 2], rtol=0.02)
    assert sums[n + 2] == pytest.approx(plain_sums[n + 2], rel=0.05)  # vdW volume


def test_rotation_moves_atoms_about_the_centroid() -> None:
    rotation = V.random_rotation(11)
    numbers = np.array([8, 1, 1])
    coords = np.array([[0.0, 0.0, 0.0], [1.8, 0.0, 0.0], [0.0, 1.8, 0.0]])  # bohr
    cube = V.voxelize(numbers, coords, None, SMALL, rotation=rotation)
    centre = coords.mean(axis=0)
    moved = (coords[0] - centre) @ rotation.T  # O relative to the centre, bohr
    channel = cube[V.ELEMENTS.index("O")]
    axis = V.box_offsets_angstrom(SMALL)
    weights = [channel.sum(axis=tuple(a for a in range(3) if a != d)) for d in range(3)]
    com = np.array([w @ axis / w.sum() for w in weights])
    np.testing.assert_allclose(com, moved * A, atol=0.05)
    with pytest.raises(ValueError, match="orthogonal"):
        V.voxelize(numbers, coords, None, SMALL, rotation=np.eye(3) * 2)


def test_vdw_shape_is_a_sphere_of_bondi_radius() -> None:
    cube = V.voxelize(np.array([6]), np.zeros((1, 3)), None, SMALL)
    shape = cube[V.CHANNELS.index("vdw_shape")]
    assert set(np.unique(shape)) <= {0.0, 1.0}
    volume = shape.sum() * 0.5**3
    assert volume == pytest.approx(4 / 3 * np.pi * 1.70**3, rel=0.1)
    assert V.vdw_radius_angstrom(1) == 1.20
    assert 1.0 < V.vdw_radius_angstrom(26) < 3.0  # iron: RDKit fallback


def test_box_points_and_units_follow_the_settings() -> None:
    assert V.box_points(DEFAULTS) == 48
    assert V.box_points(completed(edge_angstrom=10.0, resolution_angstrom=1.0)) == 10
    assert V.units(DEFAULTS)["density"] == "e/bohr^3"
    assert V.units(completed(density_units="e/angstrom^3"))["density"] == "e/angstrom^3"


@pytest.mark.parametrize(
    ("given", "message"),
    [({"edge": 3}, "unknown config key 'voxels.edge'"),
     ({"density_units": "e/nm^3"}, "'voxels.density_units'"),
     ({"resolution_angstrom": 0}, "'voxels.resolution_angstrom'")],
)
def test_the_command_checks_the_settings_before_reading(tmp_path: Path, given, message) -> None:
    out = tmp_path / "vox.zarr"
    with pytest.raises(ConfigError, match=message):
        main(["voxels", "--settings", json.dumps(given), str(tmp_path / "no.zarr"), str(out)])
    assert not out.exists()


def test_build_shard_ledgers_a_failing_molecule(
    tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rhoflow.store.reader import open_store

    real = V.voxelize

    def fails_on_empty(numbers, coords, grid, settings):
        if not grid.values.any():
            raise RuntimeError("simulated voxelizer failure")
        return real(numbers, coords, grid, settings)

    monkeypatch.setattr(V, "voxelize", fails_on_empty)
    failures = V.build_shard(tiny_store, tmp_path / "vox.zarr", SMALL)
    assert [(f.id, f.stage, f.reason) for f in failures] == [
        ("t:empty", "voxels", "representation_error")
    ]
    assert "simulated voxelizer failure" in failures[0].message
    store = open_store(tiny_store)
    group = zarr.open_group(str(tmp_path / "vox.zarr"), mode="r")
    voxels = group["voxels"][...]
    assert voxels.dtype == np.float16
    assert voxels.shape == (2, len(V.CHANNELS), 32, 32, 32)
    assert [str(x) for x in group["ids"][...]] == ["t:h2o", "t:h2co"]
    assert group.attrs["channels"] == list(V.CHANNELS)
    assert group.attrs["settings"]["edge_angstrom"] == 16.0
    assert not list(tmp_path.glob(".vox.zarr.tmp-*"))
    reader = V.open_voxels(tmp_path / "vox.zarr")
    assert reader.ids == ["t:h2o", "t:h2co"] and "t:empty" not in reader
    np.testing.assert_array_equal(reader["t:h2co"]["voxels"], voxels[1])
    for row, mol_id in enumerate(["t:h2o", "t:h2co"]):
        numbers, _ = store.atoms(store.ids.index(mol_id))
        sums = voxels[row, : len(V.ELEMENTS)].astype(np.float64).sum(axis=(1, 2, 3))
        np.testing.assert_allclose(sums, expected_counts(numbers), rtol=0.02, atol=1e-3)
        rho = voxels[row, V.CHANNELS.index("density")].astype(np.float64)
        assert rho.min() >= 0 and rho.max() > 0


def test_density_integral_of_a_real_cuspy_density_is_kept(tiny_store: Path) -> None:
    """pyscf water on a 0.4-bohr grid (the nuclear cusps are sharp at 0.5 Å voxels): the
    deposit keeps the grid's electrons; interpolation (point samples) loses ~10 %."""
    from rhoflow.store.reader import open_store

    store = open_store(tiny_store)
    for mol_id in ("t:h2o", "t:h2co"):
        grid = store.grid(mol_id, "density")
        numbers, coords = store.atoms(mol_id)
        native = float(grid.values.sum(dtype=np.float64)) * grid.voxel_volume_bohr3
        voxel_bohr3 = (0.5 / A) ** 3
        for rotation in (None, V.random_rotation(3)):
            cube = V.voxelize(numbers, coords, grid, DEFAULTS, rotation)
            rho = cube[V.CHANNELS.index("density")].astype(np.float64)
            assert rho.sum() * voxel_bohr3 == pytest.approx(native, rel=1e-4)
        point = V.voxelize(numbers, coords, grid, completed(density_sampling="interpolate"))
        lost = point[V.CHANNELS.index("density")].sum() * voxel_bohr3 / native
        assert lost < 0.97  # why deposit is the default for fine native grids
