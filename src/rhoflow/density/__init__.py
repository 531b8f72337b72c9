"""Density engines: molecules with coordinates + settings → densities on regular grids.

Every engine takes its completed settings (the ``density.<engine>`` section of
``rhoflow/schemas/config.schema.yaml``: every key with its type, default, unit and meaning), filled
and checked once where the command enters the library (:func:`rhoflow.config.section_settings`),
and returns, per molecule, a :class:`DensityResult`: the total density
(e/bohr³) on a grid in bohr (:mod:`rhoflow.density.grid`), the ESP (Hartree/e) where the engine
gives one, labels (energies in Hartree, keys with units), physical checks
(:mod:`rhoflow.density.checks`) and provenance. A molecule that fails becomes a
:class:`LedgerRow` (``scf_not_converged``, ``engine_error``, ``timeout``,
``missing_coordinates``); the shard carries on.

=======  ==========================================  ===========================  ==========
engine   method (default)                            density                      ESP
=======  ==========================================  ===========================  ==========
psi4     psi4 1.3.2 subprocess, B3LYP/6-31G**        total, from Dt.cube          DF, psi4
pyscf    in-process PySCF, RHF/STO-3G                total, exact on the grid     DF or exact
xtb      xtb program, GFN2-xTB                       valence, exact on the grid   none
=======  ==========================================  ===========================  ==========

Labels (where the engine defines them): ``final_energy_hartree``, ``total_energy_hartree``,
``nuclear_repulsion_energy_hartree``, ``one_electron_energy_hartree``,
``two_electron_energy_hartree``, ``xc_energy_hartree`` (EDBench's E1–E6; xtb has
``electronic_energy_hartree`` instead), ``homo_hartree``, ``lumo_hartree``, ``gap_hartree``,
``gap_ev``, ``dipole_x_debye``, ``dipole_y_debye``, ``dipole_z_debye`` and ``dipole_debye``
(magnitude; about the coordinate origin). HOMO/LUMO of open shells: highest occupied and
lowest unoccupied orbital over both spin channels.
"""

from __future__ import annotations

import functools
import importlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from rhoflow.density import psi4_engine, pyscf_engine, xtb_engine
from rhoflow.ledger import LedgerRow
from rhoflow.molecule import Molecule
from rhoflow.parallel import Failure, run_isolated
from rhoflow.result import DensityResult, Grid

STAGE = "density"
PARSE_GRACE_S = 60.0
"""Extra wall time a worker gets beyond ``timeout_s`` (reading cubes, evaluating grids)."""


@dataclass(frozen=True)
class Engine:
    """One density engine: its per-molecule function, where it has one its check of what the
    schema cannot say about its settings, and the modules its workers use."""

    name: str
    run: Callable[..., DensityResult]
    takes_scratch: bool
    check: Callable[[Mapping[str, Any]], None] | None = None
    imports: tuple[str, ...] = ()
    """Imported once before the workers fork, so no molecule's process imports them again
    (PySCF: ~0.7 s of CPU per import, more than xtb's whole SCF of a PCQM4Mv2 molecule)."""


ENGINES: dict[str, Engine] = {
    "psi4": Engine("psi4", psi4_engine.run, True),
    "pyscf": Engine(
        "pyscf",
        pyscf_engine.run,
        False,
        pyscf_engine.check_settings,
        imports=("pyscf.gto", "pyscf.scf", "pyscf.dft", "pyscf.df"),
    ),
    "xtb": Engine("xtb", xtb_engine.run, True, imports=("pyscf.gto",)),
}
"""Engines by config name."""


def _run_one(
    engine: Engine, settings: dict[str, Any], threads: int, scratch: str, molecule: Molecule
) -> DensityResult:
    if engine.takes_scratch:
        return engine.run(molecule, settings, threads=threads, scratch_root=scratch)
    return engine.run(molecule, settings, threads=threads)


def iter_shard(
    engine: str,
    molecules: list[Molecule],
    settings: dict[str, Any],
    workers: int = 1,
    threads: int = 1,
    stage: str = STAGE,
) -> Iterator[DensityResult | LedgerRow]:
    """Yield one :class:`DensityResult` or :class:`LedgerRow` per molecule, in input order.

    ``settings`` is the engine's completed section (module docstring). Each molecule runs in its
    own forked worker (``workers`` at once, ``threads`` each; the engine's ``imports`` are loaded
    before the first fork) with a wall-time limit of
    ``settings['timeout_s']`` for the engine plus :data:`PARSE_GRACE_S`. Results stream out as
    they complete, so only about ``workers`` grids are held at a time. The engine's own check
    (PySCF parses an xc ``method``) raises ``ValueError`` before any molecule runs.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown density engine {engine!r} (known: {', '.join(ENGINES)})")
    spec = ENGINES[engine]
    if spec.check is not None:
        spec.check(settings)
    for module in spec.imports:
        importlib.import_module(module)
    with tempfile.TemporaryDirectory(prefix=f"rhoflow-{engine}-") as scratch:
        fn = functools.partial(_run_one, spec, settings, threads, scratch)
        outcomes = run_isolated(
            fn,
            molecules,
            timeout_s=float(settings["timeout_s"]) + PARSE_GRACE_S,
            workers=workers,
            desc=f"{engine} densities",
            threads_per_worker=threads,
        )
        for molecule, outcome in outcomes:
            if isinstance(outcome, Failure):
                yield LedgerRow(molecule.id, stage, outcome.reason, outcome.message)
            else:
                yield outcome


__all__ = [
    "ENGINES",
    "STAGE",
    "DensityResult",
    "Engine",
    "Grid",
    "iter_shard",
]
