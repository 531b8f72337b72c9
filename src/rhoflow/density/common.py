"""Pieces every engine shares: spin state, units, labels, provenance."""

from __future__ import annotations

import ctypes
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rhoflow.elements import MAX_Z_ENGINES, SYMBOLS
from rhoflow.molecule import Molecule
from rhoflow.parallel import StageFailure
from rhoflow.units import EV_PER_HARTREE


def total_electrons(molecule: Molecule) -> int:
    """Σ Z − charge."""
    return int(np.sum(molecule.atomic_numbers)) - int(molecule.charge)


def spin_multiplicity(molecule: Molecule, mode: str) -> int:
    """2S+1 to compute with: the molecule's, or the lowest one its electron count allows."""
    n = total_electrons(molecule)
    mult = int(molecule.multiplicity) if mode == "molecule" else 1 + n % 2
    if mult < 1 or (n - (mult - 1)) % 2 or mult - 1 > n:
        raise StageFailure("engine_error", f"multiplicity {mult} impossible with {n} electrons")
    return mult


def coords_angstrom(molecule: Molecule) -> np.ndarray:
    """The molecule's coordinates [n, 3] in Å (``missing_coordinates`` failure if absent)."""
    if molecule.coords_angstrom is None:
        raise StageFailure("missing_coordinates", "molecule has no coordinates")
    return np.asarray(molecule.coords_angstrom, dtype=np.float64).reshape(-1, 3)


def frontier_labels(homo: float | None, lumo: float | None) -> dict[str, float | None]:
    """HOMO, LUMO (Hartree) and the gap in Hartree and eV (None where undefined)."""
    gap = None if homo is None or lumo is None else float(lumo - homo)
    return {
        "homo_hartree": None if homo is None else float(homo),
        "lumo_hartree": None if lumo is None else float(lumo),
        "gap_hartree": gap,
        "gap_ev": None if gap is None else gap * EV_PER_HARTREE,
    }


def frontier_from_spins(
    energies: list[np.ndarray], n_occupied: list[int]
) -> tuple[float | None, float | None]:
    """HOMO = highest occupied, LUMO = lowest virtual orbital energy over the spin channels.

    ``energies[s]`` are the orbital energies of spin channel s in ascending order and
    ``n_occupied[s]`` how many of them are occupied.
    """
    occupied = [e[n - 1] for e, n in zip(energies, n_occupied, strict=True) if n > 0]
    virtual = [e[n] for e, n in zip(energies, n_occupied, strict=True) if n < len(e)]
    homo = float(max(occupied)) if occupied else None
    lumo = float(min(virtual)) if virtual else None
    return homo, lumo


def dipole_labels(dipole_debye: np.ndarray) -> dict[str, float]:
    """Dipole components and magnitude (Debye) about the coordinate origin."""
    d = np.asarray(dipole_debye, dtype=np.float64).reshape(3)
    return {
        "dipole_x_debye": float(d[0]),
        "dipole_y_debye": float(d[1]),
        "dipole_z_debye": float(d[2]),
        "dipole_debye": float(np.linalg.norm(d)),
    }


@contextmanager
def timed(timings_s: dict[str, float], phase: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block (s) to ``timings_s[phase]``.

    Engines record their phases this way in provenance ``timings_s`` (``scf``,
    ``density_grid``, ``esp_grid``), so a user sees where a molecule's time went.
    """
    start = time.perf_counter()
    try:
        yield
    finally:
        timings_s[phase] = timings_s.get(phase, 0.0) + time.perf_counter() - start


def provenance(engine: str, version: str, **fields: Any) -> dict[str, Any]:
    """Provenance dict: engine, version, host and the given fields."""
    return {"engine": engine, "engine_version": version, "host": socket.gethostname(), **fields}


LOCAL_CORRELATION_NOTES: dict[str, str] = {
    "HYB_GGA_XC_B3LYP": "0.08 Slater + 0.72 B88 + 0.20 HF exchange, 0.19 VWN_RPA "
    "(libxc LDA_C_VWN_RPA, printed 'VWN5_RPA'; Gaussian's B3LYP VWN) + 0.81 LYP correlation",
    "HYB_GGA_XC_B3LYP5": "0.08 Slater + 0.72 B88 + 0.20 HF exchange, 0.19 VWN5 "
    "(libxc LDA_C_VWN) + 0.81 LYP correlation",
}
"""What the B3LYP flavours contain: codes differ in the VWN local correlation they mix in."""


def annotate_functional(components: list[str]) -> str:
    """Notes for libxc components whose definition differs between codes (VWN flavour)."""
    notes = []
    for name in components:
        key = name.upper().removeprefix("XC_")
        if key in LOCAL_CORRELATION_NOTES:
            notes.append(f"{key} = {LOCAL_CORRELATION_NOTES[key]}")
    return "; ".join(notes)


def element_symbols(molecule: Molecule) -> list[str]:
    """Element symbols of the atoms (``engine_error`` failure outside H–Xe)."""
    numbers = [int(z) for z in molecule.atomic_numbers]
    if any(not 1 <= z <= MAX_Z_ENGINES for z in numbers):
        raise StageFailure("engine_error", f"element outside H–Xe in {numbers}")
    return [SYMBOLS[z] for z in numbers]


def die_with_parent() -> None:
    """``preexec_fn`` for engine programs: SIGKILL them when the Python worker dies (as when
    the isolation layer kills it on timeout), so no orphan keeps computing."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
