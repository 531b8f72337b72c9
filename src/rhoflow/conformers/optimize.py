"""Geometry optimisation shared by the MINDO/3 and GFN2-xTB re-optimisation.

One optimiser for every engine: geomeTRIC (``geometric`` package) in translation-rotation
internal coordinates (TRIC) with a BFGS-updated Hessian and trust radius, driven by an engine's
energy (Hartree) and analytic gradient (Hartree/bohr). Convergence is geomeTRIC's default
(Gaussian-like) set: ΔE < 1e-6 Hartree, RMS/max gradient < 3e-4/4.5e-4 Hartree/bohr, RMS/max
displacement < 1.2e-3/1.8e-3 Å.

Why not Cartesian L-BFGS: on soft torsions (methyl, amide, alkyl chains) it meets a max-force
criterion of 4.5e-4 Hartree/bohr while still a few kcal/mol above the minimum (GFN2-xTB,
N-isopropyl cyclopropanecarboxamide: 2.9 kcal/mol, ~300 gradients to really converge), which
also makes the choice of the lowest of k conformers arbitrary. TRIC converges in 10–30
gradients for 10–30 atoms; its own cost is ~0.1–0.3 s per step, small next to MINDO/3 and
acceptable next to GFN2-xTB.

Coordinates inside are in bohr; :data:`ANGSTROM_PER_BOHR` converts. Nothing is written to disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import geometric.engine
import geometric.internal
import geometric.molecule
import geometric.optimize
import geometric.params
import numpy as np
from geometric.errors import GeomOptNotConvergedError, GeomOptStructureError

from rhoflow.parallel import StageFailure
from rhoflow.units import ANGSTROM_PER_BOHR

MAX_STEPS = 300

EnergyGradient = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""Engine call: coordinates [n, 3] in bohr → (energy in Hartree, gradient [n, 3] Hartree/bohr)."""


@dataclass(frozen=True)
class OptimizationResult:
    """A converged geometry: coordinates in bohr, energy in Hartree."""

    coords_bohr: np.ndarray  # [n_atoms, 3]
    energy_hartree: float
    max_force_hartree_per_bohr: float
    n_steps: int  # optimiser iterations
    n_evaluations: int  # energy + gradient calls


class _Engine(geometric.engine.Engine):
    """geomeTRIC engine around an :data:`EnergyGradient` (no files, no caching)."""

    def __init__(
        self, energy_gradient: EnergyGradient, atomic_numbers: np.ndarray, coords_bohr: np.ndarray
    ) -> None:
        molecule = geometric.molecule.Molecule()
        molecule.elem = [geometric.molecule.Elements[int(z)] for z in atomic_numbers]
        molecule.xyzs = [coords_bohr * ANGSTROM_PER_BOHR]  # geomeTRIC molecules hold Å
        super().__init__(molecule)
        self.energy_gradient = energy_gradient
        self.n_evaluations = 0

    def calc(self, coords, dirname, **kwargs) -> dict:
        return self.calc_new(coords, dirname)

    def calc_new(self, coords, dirname) -> dict:
        self.n_evaluations += 1
        energy, gradient = self.energy_gradient(np.reshape(coords, (-1, 3)))
        gradient = np.asarray(gradient, dtype=np.float64).ravel()
        if not (np.isfinite(energy) and np.all(np.isfinite(gradient))):
            raise StageFailure("optimization_failed", "engine returned non-finite energy/gradient")
        return {"energy": float(energy), "gradient": gradient}


def optimize_geometry(
    energy_gradient: EnergyGradient,
    atomic_numbers: np.ndarray,
    coords_bohr: np.ndarray,
    *,
    max_steps: int = MAX_STEPS,
) -> OptimizationResult:
    """Minimise ``energy_gradient`` from ``coords_bohr`` (bohr) for atoms ``atomic_numbers``.

    Raises :class:`StageFailure` ``optimization_failed`` when geomeTRIC does not converge in
    ``max_steps`` steps or gives up; engine failures propagate unchanged.
    """
    coords = np.asarray(coords_bohr, dtype=np.float64).reshape(-1, 3)
    if len(coords) < 2:
        energy, gradient = energy_gradient(coords)
        return OptimizationResult(coords, float(energy), 0.0, 0, 1)
    engine = _Engine(energy_gradient, atomic_numbers, coords)
    coordinate_system = geometric.internal.DelocalizedInternalCoordinates(
        engine.M,
        build=True,
        connect=False,
        addcart=False,  # TRIC
    )
    params = geometric.params.OptParams(maxiter=max_steps)
    optimizer = geometric.optimize.Optimizer(
        coords.ravel(), engine.M, coordinate_system, engine, "", params, print_info=False
    )
    try:
        with _quiet_geometric():
            optimizer.optimizeGeometry()
    except (GeomOptNotConvergedError, GeomOptStructureError) as exc:
        raise StageFailure(
            "optimization_failed",
            f"geomeTRIC: {type(exc).__name__} after {optimizer.Iteration} steps",
        ) from exc
    return OptimizationResult(
        coords_bohr=np.asarray(optimizer.X, dtype=np.float64).reshape(-1, 3),
        energy_hartree=float(optimizer.E),
        max_force_hartree_per_bohr=float(np.max(np.abs(optimizer.gradx))),
        n_steps=int(optimizer.Iteration),
        n_evaluations=engine.n_evaluations,
    )


@contextmanager
def _quiet_geometric() -> Iterator[None]:
    """Silence geomeTRIC's INFO log (its per-step report) for the duration."""
    log = logging.getLogger("geometric.nifty")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def geometric_version() -> str:
    """The installed geomeTRIC version."""
    import geometric

    return str(geometric.__version__)
