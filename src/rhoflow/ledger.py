"""Failure ledgers: one row per molecule a stage could not process.

Every stage writes, beside its output, a tab-separated ledger with the header
``id  stage  reason  message``. ``reason`` comes from :data:`REASONS`; ``message`` is free
text (tabs and newlines are folded to spaces). Downstream stages skip molecules absent upstream
and result tables count rows per reason.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rhoflow.io import atomic_path

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
        "embed_failed",
        "forcefield_failed",
        "optimization_failed",
        # engines
        "scf_not_converged",
        "engine_error",
        "timeout",
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
