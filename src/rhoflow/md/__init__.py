"""Molecules off equilibrium: trajectory stores of frames with energies and forces.

:mod:`~rhoflow.md.frames` reads MD17 extended XYZ and rMD17 ``.npz`` files and writes and reads
trajectory stores; :mod:`~rhoflow.md.dynamics` runs GFN2-xTB molecular dynamics (velocity Verlet
NVE or Langevin NVT) through xtb-python; :func:`simulate_shard` runs it for the molecules of a
conformer shard (rule ``md_xtb``), :func:`import_trajectory` brings a file in (rule
``md_import``), :func:`split_frames` splits a trajectory's frames (``md_split``) and
:func:`frames_table` writes them as a molecule table (``md_frames``, for structure images).
Energy + force training on the frames is the ``ndem`` method.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.ledger import LedgerRow, write_ledger
from rhoflow.md.dynamics import energy_drift, run_md
from rhoflow.md.frames import (
    READERS,
    Trajectory,
    frame_ids,
    read_extxyz,
    read_npz,
    read_trajectories,
    read_trajectory,
    trajectory_names,
    write_extxyz,
    write_store,
)
from rhoflow.parallel import StageFailure

log = logging.getLogger(__name__)

__all__ = [
    "Trajectory",
    "energy_drift",
    "find_store",
    "frame_ids",
    "frames_table",
    "import_trajectory",
    "read_extxyz",
    "read_npz",
    "read_trajectories",
    "read_trajectory",
    "run_md",
    "simulate_shard",
    "split_frames",
    "trajectory_names",
    "write_extxyz",
    "write_store",
]


def import_trajectory(entry: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """Write the trajectory file of one completed ``md.trajectories`` entry (``name``,
    ``format``, ``path``, ``energy_unit``, ``force_unit``, ``charge``, ``multiplicity``) into a
    store at ``out``; returns its size."""
    read = READERS[entry["format"]]
    trajectory = read(
        entry["path"],
        entry["name"],
        entry["energy_unit"],
        entry["force_unit"],
        entry["charge"],
        entry["multiplicity"],
    )
    write_store(out, [trajectory], source=entry["name"])
    return {
        "trajectory": entry["name"],
        "frames": len(trajectory),
        "atoms": len(trajectory.atomic_numbers),
    }


def molecule_seed(seed: int, mol_id: str) -> int:
    """The MD seed of one molecule: the same for a molecule whatever shard it is in."""
    return int(np.random.SeedSequence([seed, zlib.crc32(mol_id.encode())]).generate_state(1)[0])


def simulate_shard(
    table: str | Path,
    out: str | Path,
    ledger: str | Path,
    settings: dict[str, Any],
    ids: Sequence[str] = (),
) -> dict[str, Any]:
    """GFN2-xTB MD (``settings``: the completed ``md.xtb`` section) of each molecule of a
    conformer shard table (only ``ids`` when given) into a trajectory store at ``out``; a
    molecule whose MD fails is a ledger row (stage ``md_xtb``) and the shard goes on."""
    from rhoflow.conformers.xtb import METHOD, XtbEngine, check_elements, versions
    from rhoflow.molecule import read_molecules

    wanted = set(ids)
    molecules = [m for m in read_molecules(table) if not wanted or m.id in wanted]
    done: list[Trajectory] = []
    failures: list[LedgerRow] = []
    for mol in molecules:
        try:
            if mol.coords_angstrom is None:
                raise StageFailure("missing_coordinates", "the shard gives no coordinates")
            check_elements(mol.atomic_numbers)
            engine = XtbEngine(mol.atomic_numbers, mol.charge, mol.multiplicity)
            done.append(
                run_md(
                    engine,
                    mol.atomic_numbers,
                    mol.coords_angstrom,
                    {**settings, "seed": molecule_seed(settings["seed"], mol.id)},
                    mol.id,
                    mol.charge,
                    mol.multiplicity,
                    {
                        "engine": "xtb",
                        "method": METHOD,
                        **versions(),
                        "start": mol.provenance,
                        "config_seed": settings["seed"],
                    },
                )
            )
        except StageFailure as exc:
            failures.append(LedgerRow(mol.id, "md_xtb", exc.reason, str(exc)))
        except (FloatingPointError, ValueError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            failures.append(LedgerRow(mol.id, "md_xtb", "engine_error", message))
        if failures and failures[-1].id == mol.id:
            log.warning("md_xtb: %s failed: %s", mol.id, failures[-1].message)
    write_store(out, done, source=str(table))
    write_ledger(ledger, failures)
    return {"trajectories": len(done), "failed": len(failures), "frames": sum(len(t) for t in done)}


def find_store(stores: list[str | Path], trajectory: str) -> Path:
    """The first of ``stores`` that holds ``trajectory``."""
    for store in stores:
        if trajectory in trajectory_names(store):
            return Path(store)
    raise ValueError(f"no trajectory {trajectory!r} in {[str(s) for s in stores]} (did its MD "
                     "fail? see the md_xtb ledgers)")  # fmt: skip


def split_frames(stores: list[str | Path], trajectory: str, settings: dict[str, Any],
                 out: str | Path) -> dict[str, Any]:  # fmt: skip
    """Write the split file of one trajectory's frames (``settings``: the completed
    ``md.split``: counts [n_train, n_val, n_test or None], seed); returns its metadata."""
    from rhoflow.splits import METADATA_KEY, make_splits, write_splits

    n = len(read_trajectory(find_store(stores, trajectory), trajectory))
    counts = list(settings["counts"])
    if counts[0] + counts[1] + (counts[2] or 1) > n:
        raise ValueError(f"md.split.counts {counts}: {trajectory} has only {n} frames")
    table = make_splits(frame_ids(trajectory, n), [""] * n,
                        {"method": "random", "seed": settings["seed"],
                         "fractions": [0.8, 0.1, 0.1], "counts": counts},
                        source=trajectory, fmt="trajectory")  # fmt: skip
    write_splits(out, table)
    return json.loads(table.schema.metadata[METADATA_KEY])


def frames_table(stores: Sequence[str | Path], trajectory: str, out: str | Path) -> int:
    """Write the frames of ``trajectory`` as a molecule table (:mod:`rhoflow.molecule`: one row
    per frame, id ``<trajectory>:<frame>``, coordinates in Å, bond orders unknown), so stages
    that read molecule tables (structure images for EDG) take frames; returns the frames."""
    from rhoflow.molecule import UNKNOWN_BOND_ORDERS, Molecule, write_molecules

    t = read_trajectory(find_store(stores, trajectory), trajectory)
    ids = frame_ids(trajectory, len(t))
    write_molecules(out, (
        Molecule(frame, "", t.charge, t.multiplicity, t.atomic_numbers, "", t.positions[k], {},
                 {"bond_orders": UNKNOWN_BOND_ORDERS, "trajectory": trajectory, "frame": k})
        for k, frame in enumerate(ids)
    ))  # fmt: skip
    return len(ids)
