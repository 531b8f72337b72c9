"""The pooling of atoms into molecules that every geometry model offers (``readout``)."""

from __future__ import annotations

READOUTS = ("sum", "mean")
"""``sum``: an extensive property (energies grow with the molecule); ``mean``: an intensive one
(HOMO, LUMO, gap, dipole norm)."""


def check_readout(readout: str) -> str:
    """``readout`` if it is one of :data:`READOUTS`; a ValueError naming them otherwise."""
    if readout not in READOUTS:
        raise ValueError(f"readout {readout!r}: use one of {', '.join(READOUTS)}")
    return readout
