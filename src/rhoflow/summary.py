"""Stage summary: molecules in and out of each stage and failures per reason.

Reads the molecule tables each stage wrote (the stage is the table's parent folder name,
``results/<stage>/<shard>.parquet``), the density shard stores (stage ``density_<engine>``
from ``results/density/<engine>/<shard>.zarr``) and the ledgers (the stage is their ``stage``
column), and
writes a TSV (``stage, kind, key, count``) and a Markdown rendering of the same numbers.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from rhoflow.io import atomic_path
from rhoflow.ledger import count_reasons, read_ledger


def summarize(
    tables: Sequence[str | Path],
    ledgers: Sequence[str | Path],
    stores: Sequence[str | Path] = (),
    representations: Sequence[str | Path] = (),
) -> list[tuple[str, str, str, int]]:
    """Rows ``(stage, kind, key, count)``; kind is ``molecules`` (key ``out``/``failed``) or
    ``failure`` (key = reason)."""
    out: Counter[str] = Counter()
    for table in tables:
        out[Path(table).parent.name] += pq.read_metadata(table).num_rows
    if stores:
        from rhoflow.store import open_store

        for store in stores:
            out[f"density_{Path(store).parent.name}"] += len(open_store(store))
    if representations:
        from rhoflow.zarrgroup import open_representation

        for group in representations:
            out[Path(group).parent.name] += len(open_representation(group))
    reasons: Counter[tuple[str, str]] = Counter()
    for ledger in ledgers:
        reasons.update(count_reasons(read_ledger(ledger)))
    failed: Counter[str] = Counter()
    for (stage, _), n in reasons.items():
        failed[stage] += n
    stages = list(dict.fromkeys([*out, *failed]))
    rows: list[tuple[str, str, str, int]] = []
    for stage in stages:
        rows.append((stage, "molecules", "out", out[stage]))
        rows.append((stage, "molecules", "failed", failed[stage]))
        for (s, reason), n in sorted(reasons.items()):
            if s == stage:
                rows.append((stage, "failure", reason, n))
    return rows


def write_summary(
    rows: Sequence[tuple[str, str, str, int]], tsv: str | Path, md: str | Path
) -> None:
    """Write the rows as TSV and as a Markdown report, both atomically."""
    with atomic_path(tsv) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(("stage", "kind", "key", "count"))
        writer.writerows(rows)
    lines = [
        "# rhoflow stage summary",
        "",
        "| stage | molecules out | failed | failures by reason |",
        "|---|---:|---:|---|",
    ]
    for stage in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == stage]
        n_out = next(r[3] for r in mine if r[1:3] == ("molecules", "out"))
        n_failed = next(r[3] for r in mine if r[1:3] == ("molecules", "failed"))
        reasons = ", ".join(f"{r[2]}: {r[3]}" for r in mine if r[1] == "failure") or "–"
        lines.append(f"| {stage} | {n_out} | {n_failed} | {reasons} |")
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
