"""Gaussian cube files: round trip, units, layouts of other writers, malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from rhoflow.cube import ANGSTROM_PER_BOHR, read_cube, write_cube
from rhoflow.result import Grid

NUMBERS = np.array([8, 1, 1])
COORDS = np.array([[0.0, 0.0, 0.2217], [0.0, 1.4309, -0.8867], [0.0, -1.4309, -0.8867]])


def _grid(shape=(3, 4, 7), seed=0) -> Grid:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=-3.0, sigma=3.0, size=shape) * rng.choice([-1, 1], size=shape)
    return Grid(np.array([-4.0, -5.6, -4.93]), np.array([0.4, 0.3, 0.2]), values)


def test_round_trip_keeps_geometry_and_six_significant_digits(tmp_path):
    grid = _grid()
    path = tmp_path / "x.cube"
    write_cube(path, NUMBERS, COORDS, grid, comment="density\nsecond line")
    numbers, coords, back = read_cube(path)
    assert numbers.tolist() == NUMBERS.tolist()
    np.testing.assert_allclose(coords, COORDS, atol=1e-6)
    np.testing.assert_allclose(back.origin_bohr, grid.origin_bohr, atol=1e-6)
    np.testing.assert_allclose(back.spacing_bohr, grid.spacing_bohr, atol=1e-6)
    assert back.shape == grid.shape
    np.testing.assert_allclose(back.values, grid.values, rtol=5e-6, atol=0)


def test_written_layout_is_gaussian_standard(tmp_path):
    path = tmp_path / "x.cube"
    write_cube(path, NUMBERS, COORDS, _grid(shape=(2, 2, 7)), comment="one")
    lines = path.read_text().splitlines()
    assert lines[0] == "one"
    assert lines[2].split()[0] == "3" and lines[3].split()[0] == "2"
    assert [ln.split()[0] for ln in lines[3:6]] == ["2", "2", "7"]
    data = lines[9:]
    # each z-column of 7 values: a line of 6 and a line of 1, in E13.5 format
    assert [len(ln.split()) for ln in data] == [6, 1] * 4
    assert all(len(ln) == 13 * len(ln.split()) for ln in data)
    assert "E" in data[0]


def test_reads_angstrom_units_from_negative_counts(tmp_path):
    text = "\n".join([
        "c1", "c2",
        f"    1 {1.0:12.6f} {0.0:12.6f} {0.0:12.6f}",
        f"   -2 {0.5:12.6f} {0.0:12.6f} {0.0:12.6f}",
        f"   -1 {0.0:12.6f} {0.5:12.6f} {0.0:12.6f}",
        f"   -2 {0.0:12.6f} {0.0:12.6f} {0.5:12.6f}",
        f"    1 {1.0:12.6f} {0.0:12.6f} {0.0:12.6f} {0.52917721:12.6f}",
        " 1.0 2.0 3.0 4.0",
    ])
    path = tmp_path / "a.cube"
    path.write_text(text + "\n")
    numbers, coords, grid = read_cube(path)
    assert grid.shape == (2, 1, 2)
    np.testing.assert_allclose(grid.origin_bohr, [1.0 / ANGSTROM_PER_BOHR, 0, 0])
    np.testing.assert_allclose(grid.spacing_bohr, [0.5 / ANGSTROM_PER_BOHR] * 3)
    np.testing.assert_allclose(coords[0, 2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(grid.values.ravel(), [1, 2, 3, 4])


def test_reads_psi4_stream_layout_and_single_orbital_cubes(tmp_path):
    values = np.arange(1, 13, dtype=float).reshape(2, 2, 3)
    tokens = [f"{v:12.5E}" for v in values.ravel()]  # psi4: 6 per line, no z-column breaks
    stream = " ".join(tokens[:6]) + "\n" + " ".join(tokens[6:])
    header = ["Psi4 Gaussian Cube File.", "Property: Dt",
              "    -1  -1.000000  -1.000000  -1.000000",
              "     2   0.400000   0.000000   0.000000",
              "     2   0.000000   0.400000   0.000000",
              "     3   0.000000   0.000000   0.400000",
              "  1   0.000000   0.000000   0.000000   0.000000",
              "    1    5"]
    path = tmp_path / "p.cube"
    path.write_text("\n".join(header) + "\n" + stream + "\n")
    numbers, _, grid = read_cube(path)
    assert numbers.tolist() == [1]
    np.testing.assert_array_equal(grid.values, values)


@pytest.mark.parametrize(
    ("axis_line", "message"),
    [("     2   0.400000   0.100000   0.000000", "axis-aligned"),
     ("    -2   0.400000   0.000000   0.000000", "all positive or all negative")],
)
def test_rejects_unsupported_axes(tmp_path, axis_line, message):
    lines = ["a", "b", "    1   0.0 0.0 0.0", axis_line,
             "     1   0.000000   0.400000   0.000000", "     1   0.000000   0.000000   0.400000",
             "  1   0.0   0.0   0.0   0.0", "1.0 2.0"]
    path = tmp_path / "bad.cube"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        read_cube(path)


def test_rejects_wrong_value_count_and_mismatched_atoms(tmp_path):
    path = tmp_path / "x.cube"
    write_cube(path, NUMBERS, COORDS, _grid(shape=(2, 2, 2)))
    path.write_text(path.read_text() + " 1.0\n")
    with pytest.raises(ValueError, match="values"):
        read_cube(path)
    with pytest.raises(ValueError, match="atomic numbers"):
        write_cube(tmp_path / "y.cube", NUMBERS[:2], COORDS, _grid())
