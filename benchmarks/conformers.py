"""Conformer stage timing: ETKDG + MMFF94, then MINDO/3 or GFN2-xTB re-optimisation.

Molecules: the first N (default 20) rows of the micro QM9 CSV with at least 3 heavy atoms
(11–24 atoms with H; the CSV is a random QM9 sample, so this is a fixed, unbiased small set).
Each path runs :func:`rhoflow.conformers.generate_shard` with one worker and the default
settings (n_conformers 50, seed 42, rms_prune 0.1 Å, k_lowest 5, timeout 600 s):

* ``none``   — ETKDG + MMFF94 only (the baseline every path includes),
* ``mindo3`` — + MINDO/3 re-optimisation of the k lowest,
* ``xtb``    — + GFN2-xTB re-optimisation of the k lowest.

Prints per-molecule wall seconds (measured inside the worker), failures, totals, and the
workers' CPU seconds (wall ≫ CPU means the machine was busy with other work).

    .venv/bin/python benchmarks/conformers.py [CSV] [--n 20] [--workers 1]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import time
from pathlib import Path

from rdkit import Chem, RDLogger

from rhoflow.conformers import generate_shard
from rhoflow.molecule import Molecule, from_rdkit

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared/data/qm9/micro_qm9.csv"
PATHS = ("none", "mindo3", "xtb")
SETTINGS = {
    "method": "etkdg",
    "n_conformers": 50,
    "seed": 42,
    "rms_prune_angstrom": 0.1,
    "k_lowest": 5,
    "timeout_s": 600,
}


def load_molecules(path: Path, n: int, min_heavy: int = 3) -> list[Molecule]:
    """The first ``n`` molecules of a QM9 CSV (mol_id, smiles, …) with ``min_heavy`` heavy atoms."""
    molecules = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            mol = Chem.MolFromSmiles(row["smiles"])
            if mol is None or mol.GetNumHeavyAtoms() < min_heavy:
                continue
            molecules.append(from_rdkit(f"qm9:{row['mol_id']}", mol))
            if len(molecules) == n:
                break
    return molecules


def children_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_path(molecules: list[Molecule], reoptimize: str, workers: int) -> tuple[dict, float, float]:
    """Per-molecule outcome (provenance or ledger reason), total wall s and workers' CPU s."""
    start, cpu = time.perf_counter(), children_cpu_s()
    done, failed = generate_shard(molecules, {**SETTINGS, "reoptimize": reoptimize}, workers)
    total, cpu = time.perf_counter() - start, children_cpu_s() - cpu
    outcome: dict[str, dict | str] = {m.id: m.provenance for m in done}
    outcome.update({row.id: f"{row.reason}: {row.message}" for row in failed})
    return outcome, total, cpu


def cell(outcome: dict | str) -> str:
    return f"{outcome['wall_s']:8.2f}" if isinstance(outcome, dict) else "  FAILED"


def print_table(molecules: list[Molecule], results: dict[str, tuple[dict, float, float]]) -> None:
    header = f"{'id':<14} {'smiles':<22} {'atoms':>5} {'k':>2}" + "".join(
        f" {p + ' s':>8}" for p in PATHS
    )
    print(header)
    print("-" * len(header))
    for mol in molecules:
        base = results["none"][0][mol.id]
        k = base["k"] if isinstance(base, dict) else "-"
        row = f"{mol.id:<14} {mol.smiles:<22} {mol.n_atoms:>5} {k:>2}"
        print(row + "".join(f" {cell(results[p][0][mol.id])}" for p in PATHS))
    print("-" * len(header))
    sums = "".join(
        f" {sum(o['wall_s'] for o in results[p][0].values() if isinstance(o, dict)):8.2f}"
        for p in PATHS
    )
    print(f"{'sum of per-molecule wall s':<46}{sums}")
    print(f"{'total wall s (incl. forks)':<46}" + "".join(f" {results[p][1]:8.2f}" for p in PATHS))
    print(f"{'total CPU s of the workers':<46}" + "".join(f" {results[p][2]:8.2f}" for p in PATHS))
    n_failed = sum(not isinstance(o, dict) for p in PATHS for o in results[p][0].values())
    print(f"failures: {n_failed}")
    for path in PATHS:
        for mol_id, outcome in results[path][0].items():
            if not isinstance(outcome, dict):
                print(f"failure [{path}] {mol_id}: {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")
    molecules = load_molecules(args.csv, args.n)
    results = {path: run_path(molecules, path, args.workers) for path in PATHS}
    print(f"{len(molecules)} molecules, {args.workers} worker(s), load average {os.getloadavg()}")
    print_table(molecules, results)


if __name__ == "__main__":
    main()
