"""GFN2-xTB molecular dynamics through xtb-python: non-equilibrium frames made here.

Integrators, in atomic units inside (positions bohr, masses mₑ, time ħ/Eₕ, energies Hartree):

- ``nve``: velocity Verlet. v ← v + ½Δt F/m; x ← x + Δt v; F ← F(x); v ← v + ½Δt F/m.
  The total energy E + K is conserved up to O(Δt²); :func:`energy_drift` measures what is not.
- ``nvt``: Langevin dynamics, BAOAB splitting (Leimkuhler & Matthews 2013): B (½ kick),
  A (½ drift), O (v ← c₁v + c₂√(k_BT/m) ξ, c₁ = e^(−γΔt), c₂ = √(1 − c₁²)), A, force, B.
  Samples the canonical ensemble at ``temperature_k``; ``friction_per_fs`` is γ.

Both start from the given coordinates with Maxwell–Boltzmann velocities at ``temperature_k``
(seeded, centre-of-mass momentum removed), run ``equilibration_steps`` unrecorded steps, then
record every ``stride``-th step until ``frames`` frames are kept. Each frame keeps positions
(Å), the potential energy (Hartree), forces (Hartree/bohr), kinetic energy (Hartree), the
instantaneous temperature 2K / (n_dof k_B) (K; n_dof = 3N under the Langevin thermostat, 3N − 3
in NVE, whose centre of mass stays at rest) and the time (fs, 0 at the
first recorded frame).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from rhoflow.md.frames import Trajectory
from rhoflow.units import ANGSTROM_PER_BOHR, BOHR_PER_ANGSTROM

FS_PER_AU_TIME = 0.02418884326585747
"""fs per atomic unit of time (ħ/Eₕ)."""
ME_PER_DALTON = 1822.888486209
"""Electron masses per dalton."""
HARTREE_PER_KELVIN = 3.166811563e-6
"""Boltzmann constant in Hartree/K."""

MASSES_DALTON = {
    1: 1.008,
    5: 10.81,
    6: 12.011,
    7: 14.007,
    8: 15.999,
    9: 18.998,
    14: 28.085,
    15: 30.974,
    16: 32.06,
    17: 35.45,
    35: 79.904,
    53: 126.904,
}
"""Standard atomic weights (IUPAC, conventional) of the elements MD is run on here."""

Engine = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""Coordinates [A, 3] (bohr) → energy (Hartree), gradient [A, 3] (Hartree/bohr)."""


def masses(atomic_numbers: np.ndarray) -> np.ndarray:
    """Atomic masses [A] in electron masses."""
    missing = sorted({int(z) for z in atomic_numbers} - set(MASSES_DALTON))
    if missing:
        raise ValueError(f"no atomic mass for Z={missing}")
    return np.array([MASSES_DALTON[int(z)] for z in atomic_numbers]) * ME_PER_DALTON


def kinetic(v: np.ndarray, m: np.ndarray) -> float:
    """Kinetic energy (Hartree) of velocities v [A, 3] (bohr per time unit), masses m [A]."""
    return float(0.5 * (m[:, None] * v * v).sum())


def run_md(
    engine: Engine,
    atomic_numbers: np.ndarray,
    coords_angstrom: np.ndarray,
    settings: dict[str, Any],
    trajectory_id: str,
    charge: int = 0,
    multiplicity: int = 1,
    provenance: dict[str, Any] | None = None,
) -> Trajectory:
    """Run MD with ``engine`` from ``coords_angstrom`` [A, 3] (Å) and return the recorded frames.

    ``settings`` (the completed ``md.xtb`` config): ``ensemble`` (nve | nvt), ``temperature_k``,
    ``timestep_fs``, ``frames``, ``stride``, ``equilibration_steps``, ``friction_per_fs``,
    ``seed``. A non-finite energy or gradient raises ``FloatingPointError``.
    """
    rng = np.random.default_rng(settings["seed"])
    m = masses(atomic_numbers)
    kt = HARTREE_PER_KELVIN * settings["temperature_k"]
    dt = settings["timestep_fs"] / FS_PER_AU_TIME
    x = np.asarray(coords_angstrom, dtype=np.float64) * BOHR_PER_ANGSTROM
    v = rng.normal(size=x.shape) * np.sqrt(kt / m)[:, None]
    v -= (m[:, None] * v).sum(0) / m.sum()  # no centre-of-mass momentum
    langevin = settings["ensemble"] == "nvt"
    n_dof = 3 * len(m) if langevin else max(1, 3 * len(m) - 3)
    c1 = np.exp(-settings["friction_per_fs"] * settings["timestep_fs"])
    c2 = np.sqrt(1.0 - c1 * c1)

    def forces(at: np.ndarray) -> tuple[float, np.ndarray]:
        e, g = engine(at)
        if not (np.isfinite(e) and np.isfinite(g).all()):
            raise FloatingPointError(f"non-finite energy or gradient at step {step}")
        return e, -g

    step = 0
    energy, f = forces(x)
    n_steps = settings["equilibration_steps"] + settings["frames"] * settings["stride"]
    kept: dict[str, list] = {k: [] for k in ("x", "e", "f", "k", "t")}
    bar = tqdm(
        range(1, n_steps + 1),
        desc=f"md {trajectory_id}",
        unit="step",
        file=sys.stderr,
        mininterval=5,
    )
    for step in bar:
        v += 0.5 * dt * f / m[:, None]
        if langevin:
            x += 0.5 * dt * v
            v = c1 * v + c2 * np.sqrt(kt / m)[:, None] * rng.normal(size=v.shape)
            x += 0.5 * dt * v
        else:
            x += dt * v
        energy, f = forces(x)
        v += 0.5 * dt * f / m[:, None]
        done = step - settings["equilibration_steps"]
        if done > 0 and done % settings["stride"] == 0:
            k = kinetic(v, m)
            kept["x"].append(x * ANGSTROM_PER_BOHR)
            kept["e"].append(energy)
            kept["f"].append(f.copy())
            kept["k"].append(k)
            kept["t"].append(2 * k / (n_dof * HARTREE_PER_KELVIN))
    n = len(kept["e"])
    time_fs = np.arange(n) * settings["stride"] * settings["timestep_fs"]
    return Trajectory(
        trajectory_id,
        np.asarray(atomic_numbers, dtype=np.int64),
        np.array(kept["x"]),
        np.array(kept["e"]),
        np.array(kept["f"]),
        charge,
        multiplicity,
        {**(provenance or {}), **{k: settings[k] for k in sorted(settings)}},
        {
            "time_fs": time_fs,
            "kinetic_energy": np.array(kept["k"]),
            "temperature_k": np.array(kept["t"]),
        },
    )


def energy_drift(trajectory: Trajectory) -> float:
    """Slope of the total energy E + K over time (Hartree per ps, least squares) of an MD
    trajectory made here (NVE: the integrator's error; NVT: the thermostat's work)."""
    total = trajectory.energy + trajectory.md["kinetic_energy"]
    t_ps = trajectory.md["time_fs"] / 1000.0
    return float(np.polyfit(t_ps, total, 1)[0])
