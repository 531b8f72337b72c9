"""The conformers stage: one low-energy 3D geometry (Å) per molecule.

Methods (``settings["method"]``):

``source``
    Keep the source's coordinates; molecules without any get a ``missing_coordinates`` row.
    Molecules with unknown bond orders (connectivity only, see :mod:`rhoflow.molecule`) are
    kept like any other.
``etkdg``
    ETKDGv3 + MMFF94 conformer search keeping the ``k_lowest`` distinct conformers
    (:mod:`rhoflow.conformers.etkdg`). It needs bond orders: molecules with unknown ones get an
    ``unknown_bond_orders`` row.

Re-optimisation (``settings["reoptimize"]``): ``none`` keeps the lowest-MMFF94 conformer (or the
source geometry); ``mindo3`` / ``xtb`` minimise every candidate (the k conformers, or the source
geometry) with MINDO/3 or GFN2-xTB (:mod:`~rhoflow.conformers.mindo3`,
:mod:`~rhoflow.conformers.xtb`) and keep the lowest in energy. Candidates that fail are skipped;
the molecule fails only if all do. ``auto`` (the default, :func:`resolve_reoptimize`) is
``mindo3`` after ``etkdg`` and ``none`` for ``source``: a source geometry (e.g. PCQM4Mv2's DFT
one, at which its labels were computed) is kept as given unless re-optimisation is asked for
explicitly. A molecule with an element MINDO/3 has no parameters for (it covers H B C N O F Si
P S Cl) is re-optimised with GFN2-xTB instead, recorded as ``reoptimizer: "xtb"`` and
``reoptimize_fallback`` (why).

Every molecule runs in its own child process (:func:`rhoflow.parallel.run_isolated`) with a
wall-time limit of ``settings["timeout_s"]``; any failure becomes one ledger row and the rest of
the shard completes. Provenance keys: ``method``, ``reoptimize`` (resolved: ``none``,
``mindo3`` or ``xtb``), ``reoptimizer`` (the engine that ran) and ``reoptimize_fallback``,
``bond_orders`` (kept from the input, ``unknown`` for connectivity only), ``n_embedded``,
``n_after_prune``, ``k``, ``seed``, ``forcefield`` (MMFF94, or UFF where MMFF94 has no types)
and ``forcefield_energy_kcal_per_mol`` (etkdg, of the kept conformer); ``energy_hartree``,
``max_force_hartree_per_bohr``, ``optimizer_steps``, ``optimizer_evaluations``,
``reoptimized_candidate`` (0 = lowest force-field energy), ``n_reoptimized``,
``n_reoptimize_failed`` (mindo3/xtb); ``wall_s`` (worker wall time; absent for ``source`` without
re-optimisation, which computes nothing and so stays byte-reproducible); library versions
(``*_version``). The ``molblock`` is left as it was (it carries the bond graph, not the geometry).
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from functools import partial
from typing import Any

import numpy as np
import rdkit

from rhoflow.ledger import LedgerRow
from rhoflow.molecule import Molecule
from rhoflow.parallel import Failure, StageFailure, run_isolated

STAGE = "conformers"

_ENGINE_MODULES = {"mindo3": "rhoflow.conformers.mindo3", "xtb": "rhoflow.conformers.xtb"}


def generate_shard(
    molecules: list[Molecule], settings: dict[str, Any], workers: int = 1
) -> tuple[list[Molecule], list[LedgerRow]]:
    """Give every molecule coordinates (Å) per ``settings`` (the completed ``conformers``
    section); return (molecules, ledger rows).

    Output keeps input order minus failures; each failure is one ``LedgerRow`` of stage
    ``"conformers"``, in input order. ``workers`` molecules are processed at once, one thread
    each. ``source`` without re-optimisation only copies coordinates and runs in-process.
    """
    settings = {**settings, "reoptimize": resolve_reoptimize(settings)}
    outcomes: dict[int, dict[str, Any] | Failure] = {}
    todo: list[int] = []
    for index, mol in enumerate(molecules):
        unfit = _unfit(mol, settings["method"])
        if unfit is not None:
            outcomes[index] = unfit
        elif settings["method"] == "source" and settings["reoptimize"] == "none":
            outcomes[index] = _run_inline(mol, settings)
        else:
            todo.append(index)
    if todo:
        _preload(settings, [molecules[i] for i in todo])
    job = partial(_indexed_job, molecules=molecules, settings=settings)
    timeout_s = float(settings["timeout_s"])
    for index, outcome in run_isolated(job, todo, timeout_s=timeout_s, workers=workers, desc=STAGE):
        outcomes[index] = outcome
    return _assemble(molecules, outcomes)


def resolve_reoptimize(settings: dict[str, Any]) -> str:
    """The re-optimiser a ``reoptimize`` setting means for its ``method``: ``auto`` is ``none``
    for ``source`` (keep the given geometry) and ``mindo3`` for ``etkdg``."""
    if settings["reoptimize"] == "auto":
        return "none" if settings["method"] == "source" else "mindo3"
    return settings["reoptimize"]


def _unfit(mol: Molecule, method: str) -> Failure | None:
    """Why ``method`` cannot start on ``mol`` (no coordinates, no bond orders), or None."""
    if method == "source" and mol.coords_angstrom is None:
        return Failure("missing_coordinates", "the source gave no 3D coordinates")
    if method == "etkdg" and not mol.bond_orders_known:
        return Failure(
            "unknown_bond_orders",
            "ETKDG and MMFF94 need bond orders; the source geometry gave connectivity only "
            "(conformers.method: source keeps it)",
        )
    return None


def _run_inline(mol: Molecule, settings: dict[str, Any]) -> dict[str, Any] | Failure:
    """:func:`make_geometry` in this process (for work that cannot hang or crash)."""
    try:
        return make_geometry(mol, settings)
    except StageFailure as exc:
        return Failure(exc.reason, exc.message)


def _preload(settings: dict[str, Any], molecules: list[Molecule]) -> None:
    """Import what the children need once, in the parent, so each fork starts warm.

    Only imports: no OpenMP region runs in the parent (children also reset thread pools).
    """
    import rhoflow.conformers.etkdg  # noqa: F401

    reoptimize = settings["reoptimize"]
    for name in {choose_reoptimizer(reoptimize, m.atomic_numbers)[0] for m in molecules}:
        _engine(name)


def _indexed_job(index: int, molecules: list[Molecule], settings: dict[str, Any]) -> dict[str, Any]:
    return make_geometry(molecules[index], settings)


def _assemble(
    molecules: list[Molecule], outcomes: dict[int, dict[str, Any] | Failure]
) -> tuple[list[Molecule], list[LedgerRow]]:
    """Molecules with their new coordinates and ledger rows, both in input order."""
    output: list[Molecule] = []
    rows: list[LedgerRow] = []
    for index, mol in enumerate(molecules):
        outcome = outcomes[index]
        if isinstance(outcome, Failure):
            rows.append(LedgerRow(mol.id, STAGE, outcome.reason, outcome.message))
        else:
            output.append(
                dataclasses.replace(
                    mol,
                    coords_angstrom=outcome["coords_angstrom"],
                    provenance=outcome["provenance"],
                )
            )
    return output, rows


def make_geometry(mol: Molecule, settings: dict[str, Any]) -> dict[str, Any]:
    """Coordinates (Å, ``[n_atoms, 3]``) and provenance for one molecule; raises StageFailure."""
    start = time.perf_counter()
    unfit = _unfit(mol, settings["method"])
    if unfit is not None:
        raise StageFailure(unfit.reason, unfit.message)
    reoptimize = resolve_reoptimize(settings)
    name, fallback = choose_reoptimizer(reoptimize, mol.atomic_numbers)
    engine = _engine(name)
    if engine is not None:
        engine.check_elements(mol.atomic_numbers)
    if settings["method"] == "etkdg":
        candidates, ff_energies, provenance = _etkdg_candidates(mol, settings)
    else:
        candidates, ff_energies, provenance = [_source_coords(mol)], [], {}
    provenance = {"method": settings["method"], "reoptimize": reoptimize, **provenance}
    if not mol.bond_orders_known:
        provenance["bond_orders"] = mol.provenance["bond_orders"]
    chosen = 0
    if engine is not None:
        provenance["reoptimizer"] = name
        if fallback is not None:
            provenance["reoptimize_fallback"] = fallback
        chosen, coords, reopt = _reoptimize(mol, candidates, engine)
        provenance.update(reopt)
    else:
        coords = candidates[0]
    if ff_energies:
        provenance["forcefield_energy_kcal_per_mol"] = ff_energies[chosen]
    provenance.update(_versions(engine))
    if settings["method"] != "source" or engine is not None:
        provenance["wall_s"] = round(time.perf_counter() - start, 3)
    return {"coords_angstrom": coords, "provenance": provenance}


def _source_coords(mol: Molecule) -> np.ndarray:
    coords = np.asarray(mol.coords_angstrom, dtype=np.float64).reshape(-1, 3)
    if coords.shape[0] != mol.n_atoms:
        raise StageFailure(
            "missing_coordinates", f"{coords.shape[0]} coordinates for {mol.n_atoms} atoms"
        )
    return coords


def choose_reoptimizer(reoptimize: str, atomic_numbers: np.ndarray) -> tuple[str, str | None]:
    """The engine that re-optimises a molecule and why it differs from ``reoptimize`` (or None).

    ``mindo3`` becomes ``xtb`` for a molecule with an element MINDO/3 has no parameters for.
    """
    if reoptimize == "mindo3":
        from rhoflow.conformers.mindo3 import check_elements

        try:
            check_elements(atomic_numbers)
        except StageFailure as exc:
            return "xtb", exc.message
    return reoptimize, None


def _engine(name: str) -> Any:
    """The engine module for a ``reoptimize`` setting, or ``None`` for ``none``."""
    return importlib.import_module(_ENGINE_MODULES[name]) if name in _ENGINE_MODULES else None


def _etkdg_candidates(
    mol: Molecule, settings: dict[str, Any]
) -> tuple[list[np.ndarray], list[float], dict[str, Any]]:
    """The k lowest MMFF94 conformers (Å), their energies (kcal/mol) and search provenance."""
    from rhoflow.conformers.etkdg import search_conformers

    rdmol = mol.to_rdkit()
    if rdmol.GetNumAtoms() != mol.n_atoms:
        raise StageFailure("engine_error", "RDKit molecule and atom list differ in length")
    found = search_conformers(
        rdmol,
        n_conformers=settings["n_conformers"],
        seed=settings["seed"],
        rms_prune_angstrom=settings["rms_prune_angstrom"],
        k_lowest=settings["k_lowest"],
    )
    provenance = {
        "seed": settings["seed"],
        "n_embedded": found.n_embedded,
        "n_after_prune": found.n_after_prune,
        "k": len(found.conformers),
        "forcefield": found.forcefield,
    }
    coords = [c.coords_angstrom for c in found.conformers]
    return coords, [c.forcefield_energy_kcal_per_mol for c in found.conformers], provenance


def _reoptimize(
    mol: Molecule, candidates: list[np.ndarray], engine: Any
) -> tuple[int, np.ndarray, dict[str, Any]]:
    """Minimise every candidate with ``engine``; the lowest: (index, coordinates Å, provenance)."""
    from rhoflow.units import ANGSTROM_PER_BOHR

    results, failures = [], []
    for index, coords in enumerate(candidates):
        try:
            opt = engine.optimize(mol.atomic_numbers, coords, mol.charge, mol.multiplicity)
        except StageFailure as exc:
            failures.append(Failure(exc.reason, exc.message))
            continue
        except Exception as exc:  # noqa: BLE001 - one bad candidate must not sink the others
            failures.append(Failure("engine_error", f"{type(exc).__name__}: {exc}"))
            continue
        results.append((opt.energy_hartree, index, opt))
    if not results:
        first = failures[0]
        raise StageFailure(
            first.reason, f"all {len(candidates)} candidates failed; first: {first.message}"
        )
    energy, index, best = min(results, key=lambda r: (r[0], r[1]))
    provenance = {
        "energy_hartree": energy,
        "max_force_hartree_per_bohr": best.max_force_hartree_per_bohr,
        "optimizer_steps": best.n_steps,
        "optimizer_evaluations": best.n_evaluations,
        "reoptimized_candidate": index,
        "n_reoptimized": len(results),
        "n_reoptimize_failed": len(failures),
    }
    return index, best.coords_bohr * ANGSTROM_PER_BOHR, provenance


def _versions(engine: Any) -> dict[str, str]:
    versions = {"rdkit_version": rdkit.__version__}
    if engine is not None:
        versions.update(engine.versions())
    return versions


