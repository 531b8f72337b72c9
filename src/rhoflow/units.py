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
