"""Trajectory stores: molecules off equilibrium, frame by frame, with energies and forces.

A trajectory is one molecule's frames (the same atoms in every frame). A **trajectory store**
is one Zarr v3 group (format ``rhoflow.trajectories``, written atomically and marked complete
like every rhoflow group, :mod:`rhoflow.zarrgroup`) holding one subgroup per trajectory, named
by the trajectory's id (a molecule id, :data:`rhoflow.molecule.ID_PATTERN`):

==================  =====================  ==========================================
array               shape, dtype           units
==================  =====================  ==========================================
atomic_numbers      [atom] int8            1
positions           [frame, atom, xyz] f8  angstrom
energy              [frame] f8             hartree
forces              [frame, atom, xyz] f8  hartree/bohr (−∂E/∂x)
time_fs             [frame] f8             fs (MD made here only)
kinetic_energy      [frame] f8             hartree (MD made here only)
temperature_k       [frame] f8             K, instantaneous (MD made here only)
==================  =====================  ==========================================

Subgroup attributes: ``charge``, ``multiplicity`` and ``provenance`` (where the frames came
from: the file and its units, or the engine, method and MD settings). Energies and forces are
converted to Hartree and Hartree/bohr on the way in, whatever the source's units (DESIGN §3);
the training task converts them to the papers' kcal/mol and kcal/mol/Å once, at load.

A frame's id is ``<trajectory id>:<frame index>`` (:func:`frame_ids`); split files list frame
ids, so every model trained on a trajectory is tested on the same frames.

Readers of the inputs: :func:`read_extxyz` (MD17's extended XYZ, ``Properties=`` naming the
species, position and force columns, ``energy=`` in the comment line) and :func:`read_npz`
(rMD17: ``nuclear_charges``, ``coords``, ``energies``, ``forces``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from rhoflow.elements import ATOMIC_NUMBERS, symbol
from rhoflow.io import atomic_path
from rhoflow.molecule import check_id
from rhoflow.units import ANGSTROM_PER_BOHR, EV_PER_HARTREE, KCAL_PER_MOL_PER_HARTREE
from rhoflow.zarrgroup import create_group, finish_group, open_finished_group, table

FORMAT = "rhoflow.trajectories"
FORMAT_VERSION = 1

ENERGY_UNITS = {"hartree": 1.0, "kcal_per_mol": KCAL_PER_MOL_PER_HARTREE, "ev": EV_PER_HARTREE}
"""Energy unit name → value of one Hartree in it."""

FORCE_UNITS = {
    "hartree_per_bohr": 1.0,
    "kcal_per_mol_per_angstrom": KCAL_PER_MOL_PER_HARTREE / ANGSTROM_PER_BOHR,
    "ev_per_angstrom": EV_PER_HARTREE / ANGSTROM_PER_BOHR,
}
"""Force unit name → value of one Hartree/bohr in it."""

MD_ARRAYS = {"time_fs": "fs", "kinetic_energy": "hartree", "temperature_k": "K"}


@dataclass
class Trajectory:
    """One molecule's frames. Positions in Å, energies in Hartree, forces in Hartree/bohr."""

    id: str
    atomic_numbers: np.ndarray  # [A] int
    positions: np.ndarray  # [F, A, 3] float64, Å
    energy: np.ndarray  # [F] float64, Hartree
    forces: np.ndarray  # [F, A, 3] float64, Hartree/bohr
    charge: int = 0
    multiplicity: int = 1
    provenance: dict[str, Any] = field(default_factory=dict)
    md: dict[str, np.ndarray] = field(default_factory=dict)  # MD_ARRAYS, each [F]

    def __post_init__(self) -> None:
        check_id(self.id)
        n_frames, n_atoms = len(self.energy), len(self.atomic_numbers)
        for name, array in (("positions", self.positions), ("forces", self.forces)):
            if array.shape != (n_frames, n_atoms, 3):
                expected = (n_frames, n_atoms, 3)
                raise ValueError(f"{self.id}: {name} has shape {array.shape}, expected {expected}")

    def __len__(self) -> int:
        return len(self.energy)


def frame_ids(trajectory_id: str, n_frames: int) -> list[str]:
    """The ids of a trajectory's frames: ``<trajectory id>:<frame index>``."""
    return [f"{trajectory_id}:{k}" for k in range(n_frames)]


# --- inputs -------------------------------------------------------------------------------


def _units(energy_unit: str, force_unit: str) -> tuple[float, float]:
    if energy_unit not in ENERGY_UNITS:
        raise ValueError(f"energy unit {energy_unit!r} is not one of {sorted(ENERGY_UNITS)}")
    if force_unit not in FORCE_UNITS:
        raise ValueError(f"force unit {force_unit!r} is not one of {sorted(FORCE_UNITS)}")
    return ENERGY_UNITS[energy_unit], FORCE_UNITS[force_unit]


def _properties(comment: str) -> tuple[int, int, int]:
    """Columns of species, the first position and the first force component in an extended
    XYZ frame line, from the comment's ``Properties=`` (name:type:count triples)."""
    match = re.search(r"Properties=(\S+)", comment)
    if not match:
        raise ValueError("no Properties= in the comment line (not extended XYZ)")
    fields = match.group(1).split(":")
    columns, start = {}, 0
    for name, _kind, count in zip(fields[0::3], fields[1::3], fields[2::3], strict=True):
        columns[name] = start
        start += int(count)
    missing = [k for k in ("species", "pos", "forces") if k not in columns]
    if missing:
        raise ValueError(f"Properties= lacks {missing}")
    return columns["species"], columns["pos"], columns["forces"]


def _xyz_frames(path: Path) -> Iterator[tuple[str, list[list[str]]]]:
    with open(path) as fh:
        while True:
            head = fh.readline()
            if not head.strip():
                return
            n = int(head)
            comment = fh.readline()
            rows = [fh.readline().split() for _ in range(n)]
            if len(rows[-1]) == 0:
                raise ValueError(f"{path}: truncated frame")
            yield comment, rows


def read_extxyz(
    path: str | Path,
    trajectory_id: str,
    energy_unit: str = "kcal_per_mol",
    force_unit: str = "kcal_per_mol_per_angstrom",
    charge: int = 0,
    multiplicity: int = 1,
) -> Trajectory:
    """One trajectory from a multi-frame extended XYZ file (MD17's layout: positions in Å,
    ``energy=`` and the forces in the given units, converted to Hartree and Hartree/bohr)."""
    e_unit, f_unit = _units(energy_unit, force_unit)
    species = None
    positions, forces, energies = [], [], []
    for k, (comment, rows) in enumerate(_xyz_frames(Path(path))):
        s, p, f = _properties(comment)
        match = re.search(r'(?:^|\s)energy="?([^\s"]+)', comment)
        if not match:
            raise ValueError(f"{path}: frame {k} has no energy=")
        symbols = [r[s] for r in rows]
        if species is None:
            species = symbols
        elif symbols != species:
            raise ValueError(f"{path}: frame {k} has other atoms than frame 0")
        positions.append([[float(x) for x in r[p : p + 3]] for r in rows])
        forces.append([[float(x) for x in r[f : f + 3]] for r in rows])
        energies.append(float(match.group(1)))
    if species is None:
        raise ValueError(f"{path}: no frames")
    return Trajectory(
        trajectory_id,
        np.array([ATOMIC_NUMBERS[x.capitalize()] for x in species], dtype=np.int64),
        np.array(positions, dtype=np.float64),
        np.array(energies, dtype=np.float64) / e_unit,
        np.array(forces, dtype=np.float64) / f_unit,
        charge,
        multiplicity,
        {
            "format": "extxyz",
            "path": str(path),
            "energy_unit": energy_unit,
            "force_unit": force_unit,
        },
    )


def read_npz(
    path: str | Path,
    trajectory_id: str,
    energy_unit: str = "kcal_per_mol",
    force_unit: str = "kcal_per_mol_per_angstrom",
    charge: int = 0,
    multiplicity: int = 1,
) -> Trajectory:
    """One trajectory from an rMD17 ``.npz`` (``nuclear_charges`` [A], ``coords`` [F, A, 3] Å,
    ``energies`` [F], ``forces`` [F, A, 3] in the given units). Read without pickle."""
    e_unit, f_unit = _units(energy_unit, force_unit)
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in ("nuclear_charges", "coords", "energies", "forces") if k not in npz]
        if missing:
            raise ValueError(f"{path}: not an rMD17 file (no {missing})")
        return Trajectory(
            trajectory_id,
            np.asarray(npz["nuclear_charges"], dtype=np.int64),
            np.asarray(npz["coords"], dtype=np.float64),
            np.asarray(npz["energies"], dtype=np.float64).reshape(-1) / e_unit,
            np.asarray(npz["forces"], dtype=np.float64) / f_unit,
            charge,
            multiplicity,
            {
                "format": "rmd17",
                "path": str(path),
                "energy_unit": energy_unit,
                "force_unit": force_unit,
            },
        )


READERS = {"extxyz": read_extxyz, "rmd17": read_npz}


def write_extxyz(path: str | Path, trajectory: Trajectory) -> None:
    """Write a trajectory as MD17-style extended XYZ (kcal/mol, kcal/mol/Å, Å)."""
    e_unit, f_unit = ENERGY_UNITS["kcal_per_mol"], FORCE_UNITS["kcal_per_mol_per_angstrom"]
    symbols = [symbol(int(z)) for z in trajectory.atomic_numbers]
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for k in range(len(trajectory)):
            fh.write(f"{len(symbols)}\n")
            fh.write(
                "Properties=species:S:1:pos:R:3:forces:R:3 "
                f'energy={trajectory.energy[k] * e_unit:.17g} pbc="F F F"\n'
            )
            for s, x, f in zip(
                symbols, trajectory.positions[k], trajectory.forces[k] * f_unit, strict=True
            ):
                fh.write(
                    f"{s} {x[0]:.17g} {x[1]:.17g} {x[2]:.17g} {f[0]:.17g} {f[1]:.17g} {f[2]:.17g}\n"
                )


# --- the store ------------------------------------------------------------------------------


def write_store(path: str | Path, trajectories: Iterable[Trajectory], **attributes: Any) -> int:
    """Write trajectories into a new store at ``path`` atomically; returns how many."""
    n = 0
    with atomic_path(path) as tmp:
        root = create_group(tmp, {"format": FORMAT, "format_version": FORMAT_VERSION, **attributes})
        for t in trajectories:
            g = root.create_group(t.id)
            g.attrs.update(
                {
                    "charge": int(t.charge),
                    "multiplicity": int(t.multiplicity),
                    "provenance": t.provenance,
                }
            )
            table(g, "atomic_numbers", t.atomic_numbers.astype(np.int8), ("atom",))
            table(g, "positions", t.positions, ("frame", "atom", "xyz"), "angstrom")
            table(g, "energy", t.energy, ("frame",), "hartree")
            table(g, "forces", t.forces, ("frame", "atom", "xyz"), "hartree/bohr")
            for name, unit in MD_ARRAYS.items():
                if name in t.md:
                    table(g, name, np.asarray(t.md[name], np.float64), ("frame",), unit)
            n += 1
        finish_group(tmp, root)
    return n


def open_store(path: str | Path) -> zarr.Group:
    """A finished trajectory store, read-only."""
    return open_finished_group(path, FORMAT)


def trajectory_names(path: str | Path) -> list[str]:
    """The ids of a store's trajectories, sorted."""
    return sorted(name for name, _ in open_store(path).groups())


def read_trajectory(path: str | Path, trajectory_id: str) -> Trajectory:
    """One trajectory of a store (every frame)."""
    root = open_store(path)
    if trajectory_id not in root:
        raise KeyError(f"{path}: no trajectory {trajectory_id!r} (has {trajectory_names(path)})")
    g = root[trajectory_id]
    md = {name: g[name][...] for name in MD_ARRAYS if name in g}
    return Trajectory(
        trajectory_id,
        g["atomic_numbers"][...].astype(np.int64),
        g["positions"][...],
        g["energy"][...],
        g["forces"][...],
        int(g.attrs["charge"]),
        int(g.attrs["multiplicity"]),
        dict(g.attrs["provenance"]),
        md,
    )


def read_trajectories(paths: Sequence[str | Path]) -> Iterator[Trajectory]:
    """Every trajectory of the stores, store by store, ids sorted within a store."""
    for path in paths:
        for name in trajectory_names(path):
            yield read_trajectory(path, name)
