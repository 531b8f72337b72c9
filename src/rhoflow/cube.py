"""Read and write Gaussian cube files (volumetric data on a regular grid).

The format, line by line (whitespace-separated fields):

1. comment (free text)
2. comment (free text)
3. ``natoms  ox  oy  oz`` — number of atoms and the position of grid point (0, 0, 0). A
   negative ``natoms`` means the file holds orbital data and a "data set ids" record follows
   the atoms (see below).
4. ``nx  ax  ay  az`` — number of points along the first (slowest) axis and its step vector
5. ``ny  bx  by  bz`` — the same for the second axis
6. ``nz  cx  cy  cz`` — the same for the third (fastest) axis.
   A **positive** count means that the origin, the step vectors and the atom positions are in
   **bohr**; a **negative** count means they are in **Å** (only the sign of the counts tells).
7. one line per atom: ``Z  charge  x  y  z`` (charge is usually 0.0 or Z and is not used)
8. only when ``natoms < 0``: ``m  id1 … idm`` — the number of values per grid point and their
   orbital indices (may wrap over several lines)
9. the values: x slowest, then y, then z fastest; Gaussian writes each z-column starting on a
   new line, six values per line in ``E13.5`` format. Readers must only rely on the order of
   whitespace-separated numbers (psi4 does not break lines at z-column ends).

This module handles axis-aligned grids (diagonal step vectors) with one value per point,
which is what :class:`rhoflow.result.Grid` describes. :func:`write_cube` writes bohr,
the Gaussian layout and ``E13.5`` numbers (six significant digits), which PyMOL, VMD and
Avogadro read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rhoflow.io import atomic_path
from rhoflow.result import Grid
from rhoflow.units import ANGSTROM_PER_BOHR

VALUES_PER_LINE = 6


def _floats(line: str, count: int, what: str) -> list[float]:
    fields = line.split()
    if len(fields) < count:
        raise ValueError(f"cube {what} line needs {count} fields, got {line!r}")
    return [float(x) for x in fields[:count]]


def _read_header(lines: list[str]) -> tuple[int, np.ndarray, list[int], np.ndarray]:
    """(natoms as written, origin, signed counts, 3×3 step vectors) from lines 3–6."""
    first = _floats(lines[2], 4, "atom count/origin")
    natoms = int(first[0])
    origin = np.array(first[1:4])
    counts: list[int] = []
    steps = np.zeros((3, 3))
    for axis in range(3):
        fields = _floats(lines[3 + axis], 4, f"axis {axis}")
        counts.append(int(fields[0]))
        steps[axis] = fields[1:4]
    return natoms, origin, counts, steps


def _check_axes(counts: list[int], steps: np.ndarray) -> None:
    if any(c == 0 for c in counts) or len({c > 0 for c in counts}) != 1:
        raise ValueError(f"cube voxel counts must be all positive or all negative: {counts}")
    if np.any(np.abs(steps - np.diag(np.diag(steps))) > 1e-12):
        raise ValueError("cube step vectors are not axis-aligned; only orthogonal grids supported")
    if np.any(np.diag(steps) <= 0):
        raise ValueError(f"cube steps must be positive, got {np.diag(steps).tolist()}")


def read_cube(path: str | Path) -> tuple[np.ndarray, np.ndarray, Grid]:
    """Read a cube file → ``(atomic_numbers [n], coords_bohr [n, 3], Grid)``.

    Everything is returned in bohr, whatever the file's unit. Grid values keep the file's unit
    (e/bohr³ for densities, Hartree/e for potentials). Raises ``ValueError`` on malformed files
    (truncated, not text, non-finite header numbers, non-integer atomic numbers), non-orthogonal
    grids and multi-valued (several orbitals) data.
    """
    with open(path) as fh:
        text = fh.read()
    lines = text.split("\n", 6)
    if len(lines) < 7:
        raise ValueError(f"{path}: too short for a cube file")
    natoms, origin, counts, steps = _read_header(lines)
    _check_axes(counts, steps)
    rest = lines[6].split("\n", abs(natoms))
    if len(rest) <= abs(natoms):
        raise ValueError(f"{path}: expected {abs(natoms)} atom lines")
    atoms = np.array([_floats(line, 5, "atom") for line in rest[: abs(natoms)]]).reshape(-1, 5)
    if not (np.isfinite(origin).all() and np.isfinite(steps).all() and np.isfinite(atoms).all()):
        raise ValueError(f"{path}: non-finite number in the header or the atom lines")
    if np.any((atoms[:, 0] < 0) | (atoms[:, 0] != np.round(atoms[:, 0]))):
        raise ValueError(f"{path}: atomic numbers {atoms[:, 0].tolist()} are not all integers ≥ 0")
    tokens = rest[abs(natoms)].split()
    if natoms < 0:
        if not tokens:
            raise ValueError(f"{path}: no data set ids after the atoms")
        n_sets = int(tokens[0])
        if n_sets != 1:
            raise ValueError(f"{path}: {n_sets} values per point; only single-valued cubes read")
        tokens = tokens[1 + n_sets :]
    shape = tuple(abs(c) for c in counts)
    values = np.array(tokens, dtype=np.float64)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {values.size} values, header says {shape}")
    scale = 1.0 if counts[0] > 0 else 1.0 / ANGSTROM_PER_BOHR
    grid = Grid(
        origin_bohr=origin * scale,
        spacing_bohr=np.diag(steps) * scale,
        values=values.reshape(shape),
    )
    return atoms[:, 0].astype(np.int64), atoms[:, 2:5] * scale, grid


def _format_values(values: np.ndarray, rows_per_chunk: int = 1024) -> Iterator[str]:
    """Values in Gaussian layout: each z-column starts a line, six ``E13.5`` per line."""
    nx, ny, nz = values.shape
    rows = np.asarray(values, dtype=np.float64).reshape(nx * ny, nz)
    full, rem = divmod(nz, VALUES_PER_LINE)
    row_fmt = ("%13.5E" * VALUES_PER_LINE + "\n") * full + ("%13.5E" * rem + "\n" if rem else "")
    for start in range(0, len(rows), rows_per_chunk):
        chunk = rows[start : start + rows_per_chunk]
        yield (row_fmt * len(chunk)) % tuple(chunk.ravel().tolist())


def write_cube(
    path: str | Path,
    atomic_numbers: np.ndarray,
    coords_bohr: np.ndarray,
    grid: Grid,
    comment: str = "",
) -> None:
    """Write ``grid`` (axis-aligned, bohr) with its molecule as a cube file, atomically.

    ``comment`` fills the two comment lines (newlines beyond the first are folded to spaces).
    Values are written with six significant digits.
    """
    numbers = np.asarray(atomic_numbers, dtype=np.int64).ravel()
    coords = np.asarray(coords_bohr, dtype=np.float64).reshape(-1, 3)
    if len(numbers) != len(coords):
        raise ValueError(f"{len(numbers)} atomic numbers but {len(coords)} coordinates")
    if grid.values.ndim != 3:
        raise ValueError(f"grid values must be 3-D, got shape {grid.values.shape}")
    first, _, second = (comment or "rhoflow cube").partition("\n")
    header = [first.strip() or "rhoflow cube", " ".join(second.split())]
    origin = np.asarray(grid.origin_bohr, dtype=np.float64)
    header.append(f"{len(numbers):5d}{origin[0]:12.6f}{origin[1]:12.6f}{origin[2]:12.6f}")
    for axis, (n, step) in enumerate(zip(grid.shape, grid.spacing_bohr, strict=True)):
        vec = np.zeros(3)
        vec[axis] = step
        header.append(f"{n:5d}{vec[0]:12.6f}{vec[1]:12.6f}{vec[2]:12.6f}")
    for z, (x, y, zc) in zip(numbers, coords, strict=True):
        header.append(f"{z:5d}{float(z):12.6f}{x:12.6f}{y:12.6f}{zc:12.6f}")
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write("\n".join(header) + "\n")
        fh.writelines(_format_values(grid.values))
