"""Failure ledgers: one row per molecule a stage could not process.

Every stage writes, beside its output, a tab-separated ledger with the header
``id  stage  reason  message``. ``reason`` comes from :data:`REASONS`; ``message`` is free
text (tabs and newlines are folded to spaces). Downstream stages skip molecules absent upstream
and result tables count rows per reason.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from rhoflow.io import atomic_path

log = logging.getLogger(__name__)
T = TypeVar("T")

REASONS: frozenset[str] = frozenset(
    {
        # ingest / parsing
        "invalid_smiles",
        "invalid_structure",
        "duplicate_id",
        "missing_coordinates",
        # chemistry filter (3DGrid-VQGAN)
        "filtered_element",
        "filtered_heavy_atoms",
        "filtered_charge",
        "filtered_charge_separation",
        # conformers
        "unknown_bond_orders",
        "embed_failed",
        "forcefield_failed",
        "optimization_failed",
        # engines
        "scf_not_converged",
        "basis_missing",
        "engine_error",
        "timeout",
        # representations (voxels, point clouds, images)
        "representation_error",
    }
)

COLUMNS: tuple[str, ...] = ("id", "stage", "reason", "message")


@dataclass(frozen=True)
class LedgerRow:
    """One molecule a stage could not process."""

    id: str
    stage: str
    reason: str
    message: str = ""

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown ledger reason {self.reason!r}; known: {sorted(REASONS)}")


def _clean(text: str, limit: int = 500) -> str:
    return " ".join(str(text).split())[:limit]


def write_ledger(path: str | Path, rows: Iterable[LedgerRow]) -> None:
    """Write a ledger atomically (header always present, even with no rows)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow((row.id, row.stage, row.reason, _clean(row.message)))


def read_ledger(path: str | Path) -> list[LedgerRow]:
    """Read a ledger written by :func:`write_ledger`."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: not a ledger (header {reader.fieldnames})")
        return [LedgerRow(r["id"], r["stage"], r["reason"], r["message"]) for r in reader]


def count_reasons(rows: Iterable[LedgerRow]) -> Counter[tuple[str, str]]:
    """Count ledger rows per (stage, reason)."""
    return Counter((r.stage, r.reason) for r in rows)


def each_molecule(
    ids: Sequence[str],
    stage: str,
    compute: Callable[[int], T],
    failures: list[LedgerRow],
    reason: str = "representation_error",
) -> Iterator[tuple[int, str, T]]:
    """``(position, id, compute(position))`` for every molecule whose ``compute`` succeeds,
    with a progress bar; a molecule whose ``compute`` raises becomes a ledger row appended to
    ``failures`` (stage ``stage``, reason ``reason``) and is skipped, so the shard completes."""
    bar = tqdm(ids, desc=stage, unit="mol", file=sys.stderr, mininterval=2)
    for pos, mol_id in enumerate(bar):
        try:
            value = compute(pos)
        except Exception as exc:  # noqa: BLE001 - one molecule never fails the shard
            log.warning("%s: %s failed: %s: %s", stage, mol_id, type(exc).__name__, exc)
            failures.append(LedgerRow(mol_id, stage, reason, f"{type(exc).__name__}: {exc}"))
            continue
        yield pos, mol_id, value
