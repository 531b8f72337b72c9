"""The element table: symbols by atomic number, defined once for the whole library."""

from __future__ import annotations

SYMBOLS: tuple[str, ...] = tuple(
    (
        "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn "
        "Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce "
        "Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn"
    ).split()
)
"""Element symbols by atomic number (H–Rn); index 0 is a placeholder ``X``."""

ATOMIC_NUMBERS: dict[str, int] = {s: z for z, s in enumerate(SYMBOLS) if z > 0}
"""Atomic number by element symbol."""

MAX_Z_ENGINES = ATOMIC_NUMBERS["Xe"]
"""Heaviest element the density engines and the renderer accept (their basis sets and
PyMOL set-up stop at Xe)."""


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (``ValueError`` outside H–Rn)."""
    if not 0 < int(z) < len(SYMBOLS):
        raise ValueError(f"atomic number {z} outside H–Rn")
    return SYMBOLS[int(z)]
