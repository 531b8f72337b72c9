"""Unit constants (CODATA 2018), defined once for the whole library.

Conventions: grids, origins, spacings and store coordinates in **bohr**; molecule tables in
**Å**; energies in **Hartree** in stores, converted only where a table asks for another unit.
"""

ANGSTROM_PER_BOHR = 0.529177210903
"""Bohr radius in Å."""

BOHR_PER_ANGSTROM = 1.0 / ANGSTROM_PER_BOHR

EV_PER_HARTREE = 27.211386245988
"""eV per Hartree."""

KCAL_PER_MOL_PER_HARTREE = 627.5094740631
"""kcal/mol per Hartree."""

DEBYE_PER_AU = 2.541746473
"""Debye per e·bohr (atomic unit of dipole moment)."""

DISPLAY_UNITS = {
    "Hartree": ("meV", EV_PER_HARTREE * 1000.0),
    "eV": ("meV", 1000.0),
    "D": ("D", 1.0),
    "bohr^3": ("a0³", 1.0),
    "bohr^2": ("a0²", 1.0),
    "cal/(mol K)": ("cal/mol/K", 1.0),
}
"""Label unit (as :mod:`rhoflow.labels` writes it) → (the papers' unit, factor: display value =
factor · label value). Other units are shown as they are."""


def display_unit(unit: str) -> tuple[str, float]:
    """The papers' unit for a label unit and the factor converting to it."""
    return DISPLAY_UNITS.get(unit, (unit, 1.0))
