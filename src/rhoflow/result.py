"""What a density engine returns for one molecule, and what the density store keeps.

Grids are axis-aligned and regular, as in Gaussian cube files: point ``(i, j, k)`` sits at
``origin_bohr + (i, j, k) * spacing_bohr`` (bohr). ``values`` has shape ``(nx, ny, nz)`` with
x slowest, as cube files list them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Grid:
    """A regular axis-aligned grid of values. Origin and spacing in bohr."""

    origin_bohr: np.ndarray  # [3]
    spacing_bohr: np.ndarray  # [3]
    values: np.ndarray  # [nx, ny, nz]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.values.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_bohr3(self) -> float:
        return float(np.prod(self.spacing_bohr))

    def axes_bohr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates of the grid points along x, y, z (bohr)."""
        return tuple(  # type: ignore[return-value]
            self.origin_bohr[d] + np.arange(self.values.shape[d]) * self.spacing_bohr[d]
            for d in range(3)
        )


@dataclass
class DensityResult:
    """One molecule's density (e/bohr³), optional ESP (Hartree/e) on the same grid, labels
    (energies in Hartree, keys with units), physical checks and provenance."""

    id: str
    atomic_numbers: np.ndarray  # [n_atoms]
    coords_bohr: np.ndarray  # [n_atoms, 3]
    density: Grid
    esp: Grid | None = None
    labels: dict[str, float | None] = field(default_factory=dict)
    checks: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
