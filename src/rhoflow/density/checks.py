"""Physical sanity checks stored with every density (``DensityResult.checks``).

=======================  ===================================================================
key                      meaning
=======================  ===================================================================
n_electrons_expected     electrons the density must hold: Σ Z − charge (all-electron
                         engines) or the valence electron count (xtb)
n_electrons_dm           tr(D S) from the engine's converged density matrix; must equal
                         ``n_electrons_expected`` (checked, |Δ| ≤ :data:`DM_TOLERANCE`)
grid_sum_electrons       Σ ρ · dV over the grid (e); a plain sum misses part of the core
                         cusps and the tails outside the box, so it is reported, not asserted
captured_fraction        grid_sum_electrons / n_electrons_expected
rho_min, rho_max         extreme grid values (e/bohr³); rho_min < 0 only by round-off
=======================  ===================================================================
"""

from __future__ import annotations

import numpy as np

from rhoflow.parallel import StageFailure
from rhoflow.result import Grid

DM_TOLERANCE = 1e-4
"""Largest accepted |tr(DS) − N| (electrons)."""


def check_electron_count(n_dm: float, n_expected: float, tolerance: float = DM_TOLERANCE) -> None:
    """Fail the molecule (``engine_error``) when tr(DS) differs from the expected count."""
    if not np.isfinite(n_dm) or abs(n_dm - n_expected) > tolerance:
        raise StageFailure(
            "engine_error",
            f"density matrix holds {n_dm:.6f} electrons, expected {n_expected:g}",
        )


def density_checks(density: Grid, n_expected: float, n_dm: float | None) -> dict[str, float]:
    """The check values of the table above for one density grid (e/bohr³)."""
    values = density.values
    grid_sum = float(values.sum(dtype=np.float64) * density.voxel_volume_bohr3)
    checks = {
        "n_electrons_expected": float(n_expected),
        "grid_sum_electrons": grid_sum,
        "captured_fraction": grid_sum / float(n_expected) if n_expected else float("nan"),
        "rho_min": float(values.min()),
        "rho_max": float(values.max()),
    }
    if n_dm is not None:
        checks["n_electrons_dm"] = float(n_dm)
    return checks
