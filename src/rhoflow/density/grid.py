"""Where the density is sampled: regular axis-aligned grids in bohr.

Two constructions, chosen by the engine setting ``grid`` (the grid settings, their defaults and
units: ``$defs/density_engine`` in ``src/rhoflow/schemas/config.schema.yaml``):

``cubeprop`` (spacing + overage, the psi4/EDBench grid)
    psi4 1.3.2 ``CubicScalarGrid::build_grid`` reproduced exactly, per axis k: take the
    atoms' bounding box ``[xmin, xmax]`` (bohr), ``extent = xmax - xmin + 2 * overage``,
    ``N = int(extent / spacing)``, ``N += 1`` if ``N * spacing < extent`` (i.e. ceil),
    ``origin = xmin - (N * spacing - (xmax - xmin)) / 2`` and ``N + 1`` points. The grid is
    centred on the bounding box and reaches at least ``overage`` beyond the outermost atoms;
    the shape differs per axis and per molecule.

``box`` (fixed n³, e.g. 128³ for the VQ-GAN)
    ``n`` points per axis over a cube of edge ``L`` centred on the atoms' bounding box, so the
    spacing is ``L / (n - 1)`` on every axis and the first and last points lie on the faces.
    ``L = box_edge_bohr`` when set (the same physical resolution for every molecule; a molecule
    whose extent plus ``box_margin_bohr`` on each side exceeds it is rejected: an atom near a
    face would lose part of its density, a silent crop), else
    ``max_k(xmax_k - xmin_k) + 2 * box_margin_bohr``.

Points are enumerated in cube-file order (x slowest, z fastest) and produced in blocks so no
engine holds all coordinates of a 128³ grid at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rhoflow.result import Grid


@dataclass(frozen=True)
class GridSpec:
    """Geometry of a regular grid: origin and spacing (bohr) and points per axis."""

    origin_bohr: tuple[float, float, float]
    spacing_bohr: tuple[float, float, float]
    shape: tuple[int, int, int]

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    def axes_bohr(self) -> list[np.ndarray]:
        """Coordinates of the points along x, y, z (bohr)."""
        return [self.origin_bohr[d] + np.arange(self.shape[d]) * self.spacing_bohr[d]
                for d in range(3)]

    def points(self, start: int, stop: int) -> np.ndarray:
        """Coordinates [stop - start, 3] (bohr) of flat points ``start..stop`` (x slowest)."""
        flat = np.arange(start, min(stop, self.n_points))
        ny, nz = self.shape[1], self.shape[2]
        index = np.stack([flat // (ny * nz), (flat // nz) % ny, flat % nz], axis=1)
        return np.asarray(self.origin_bohr) + index * np.asarray(self.spacing_bohr)

    def blocks(self, size: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, coords [stop - start, 3])`` covering every point once."""
        for start in range(0, self.n_points, size):
            stop = min(start + size, self.n_points)
            yield start, stop, self.points(start, stop)

    def to_grid(self, values: np.ndarray) -> Grid:
        """Wrap flat or shaped values (cube order) as a :class:`Grid`."""
        return Grid(
            origin_bohr=np.array(self.origin_bohr, dtype=np.float64),
            spacing_bohr=np.array(self.spacing_bohr, dtype=np.float64),
            values=np.asarray(values).reshape(self.shape),
        )

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for provenance (bohr)."""
        return {
            "origin_bohr": [float(x) for x in self.origin_bohr],
            "spacing_bohr": [float(x) for x in self.spacing_bohr],
            "shape": [int(n) for n in self.shape],
        }


def cubeprop_grid(coords_bohr: np.ndarray, spacing_bohr: float, overage_bohr: float) -> GridSpec:
    """psi4 1.3.2's cubeprop grid for atoms at ``coords_bohr`` (see module docstring)."""
    if spacing_bohr <= 0 or overage_bohr < 0:
        raise ValueError("spacing_bohr must be > 0 and overage_bohr >= 0")
    xyz = np.asarray(coords_bohr, dtype=np.float64).reshape(-1, 3)
    origin, shape = [], []
    for k in range(3):
        xmin, xmax = float(xyz[:, k].min()), float(xyz[:, k].max())
        extent = xmax - xmin + 2.0 * overage_bohr
        n = int(extent / spacing_bohr)
        if spacing_bohr * n < extent:
            n += 1
        origin.append(xmin - (spacing_bohr * n - (xmax - xmin)) / 2.0)
        shape.append(n + 1)
    return GridSpec(tuple(origin), (spacing_bohr,) * 3, tuple(shape))  # type: ignore[arg-type]


def box_grid(
    coords_bohr: np.ndarray, points: int, edge_bohr: float | None, margin_bohr: float
) -> GridSpec:
    """An n³ cube centred on the atoms' bounding box (see module docstring)."""
    if points < 2:
        raise ValueError(f"box_points must be >= 2, got {points}")
    xyz = np.asarray(coords_bohr, dtype=np.float64).reshape(-1, 3)
    low, high = xyz.min(axis=0), xyz.max(axis=0)
    extent = float((high - low).max())
    needed = extent + 2.0 * margin_bohr
    edge = needed if edge_bohr is None else float(edge_bohr)
    if edge < needed or edge <= 0:
        raise ValueError(
            f"molecule extent {extent:.3f} bohr + 2 x {margin_bohr:g} bohr margin does not fit "
            f"a {edge:.3f} bohr box"
        )
    spacing = edge / (points - 1)
    centre = (low + high) / 2.0
    origin = centre - edge / 2.0
    return GridSpec(tuple(float(x) for x in origin), (spacing,) * 3, (points,) * 3)  # type: ignore[arg-type]


def grid_for(coords_bohr: np.ndarray, settings: dict[str, Any]) -> GridSpec:
    """The grid completed engine settings ask for (``grid``: ``cubeprop`` or ``box``, and its
    keys)."""
    if settings["grid"] == "box":
        return box_grid(coords_bohr, settings["box_points"], settings["box_edge_bohr"],
                        settings["box_margin_bohr"])
    return cubeprop_grid(coords_bohr, settings["spacing_bohr"], settings["overage_bohr"])
