"""GFN2-xTB energies, gradients and optimisation through xtb-python.

xtb-python's ``Calculator`` takes positions in bohr and returns the energy in Hartree and the
gradient in Hartree/bohr; ``uhf`` is the number of unpaired electrons (multiplicity - 1). Its
output is muted. Optimisation uses the shared optimiser of :mod:`rhoflow.conformers.optimize`.
"""

from __future__ import annotations

import numpy as np
from xtb.interface import Calculator, Results, XTBException
from xtb.libxtb import VERBOSITY_MUTED
from xtb.utils import get_method

from rhoflow.conformers.optimize import (
    OptimizationResult,
    geometric_version,
    optimize_geometry,
)
from rhoflow.parallel import StageFailure
from rhoflow.units import ANGSTROM_PER_BOHR

METHOD = "GFN2-xTB"
MAX_ATOMIC_NUMBER = 86
"""GFN2-xTB is parametrised for H–Rn (Z = 1–86)."""


def check_elements(atomic_numbers: np.ndarray) -> None:
    """Raise ``StageFailure("engine_error")`` if GFN2-xTB lacks parameters for an element."""
    missing = sorted({int(z) for z in atomic_numbers if not 1 <= int(z) <= MAX_ATOMIC_NUMBER})
    if missing:
        raise StageFailure(
            "engine_error", f"{METHOD} has no parameters for Z={missing}; it covers Z=1-86"
        )


class XtbEngine:
    """GFN2-xTB energy (Hartree) and gradient (Hartree/bohr) at coordinates in bohr.

    One calculator per engine; later calls restart from the previous wavefunction.
    """

    def __init__(self, atomic_numbers: np.ndarray, charge: int, multiplicity: int) -> None:
        self.atomic_numbers = np.asarray(atomic_numbers, dtype=np.int64)
        self.charge = int(charge)
        self.uhf = int(multiplicity) - 1
        self._calc: Calculator | None = None
        self._results: Results | None = None

    def __call__(self, coords_bohr: np.ndarray) -> tuple[float, np.ndarray]:
        positions = np.ascontiguousarray(coords_bohr, dtype=np.float64)
        try:
            if self._calc is None:
                self._calc = self._new_calculator(positions)
            else:
                self._calc.update(positions)
            self._results = self._calc.singlepoint(self._results)
            energy = float(self._results.get_energy())
            gradient = np.asarray(self._results.get_gradient())
        except XTBException as exc:
            raise _failure(exc) from exc
        return energy, gradient

    def _new_calculator(self, positions: np.ndarray) -> Calculator:
        calc = Calculator(
            get_method(METHOD), self.atomic_numbers, positions, charge=self.charge, uhf=self.uhf
        )
        calc.set_verbosity(VERBOSITY_MUTED)
        return calc


def _failure(exc: XTBException) -> StageFailure:
    text = " ".join(str(exc).split())
    if "converge" in text.lower():
        return StageFailure("scf_not_converged", f"{METHOD}: {text}")
    return StageFailure("engine_error", f"{METHOD}: {text}")


def energy(
    atomic_numbers: np.ndarray, coords_angstrom: np.ndarray, charge: int = 0, multiplicity: int = 1
) -> float:
    """GFN2-xTB single-point energy (Hartree) at coordinates in Å."""
    engine = XtbEngine(atomic_numbers, charge, multiplicity)
    return engine(np.asarray(coords_angstrom) / ANGSTROM_PER_BOHR)[0]


def optimize(
    atomic_numbers: np.ndarray, coords_angstrom: np.ndarray, charge: int = 0, multiplicity: int = 1
) -> OptimizationResult:
    """GFN2-xTB minimum from a start geometry in Å (result coordinates in bohr, energy Hartree)."""
    engine = XtbEngine(atomic_numbers, charge, multiplicity)
    return optimize_geometry(
        engine, atomic_numbers, np.asarray(coords_angstrom) / ANGSTROM_PER_BOHR
    )


def versions() -> dict[str, str]:
    """Versions of xtb-python and the xtb library behind GFN2-xTB results."""
    from importlib.metadata import version

    from xtb.libxtb import get_api_version

    return {
        "xtb_python_version": version("xtb"),
        "xtb_api_version": str(get_api_version()),
        "geometric_version": geometric_version(),
    }
