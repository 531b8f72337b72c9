"""Split sources into deterministic shards of molecule tables.

Shard membership depends only on input order: shard ``k`` of source ``name`` holds the molecules
of input records ``[k * shard_size, (k + 1) * shard_size)``; records that fail parsing or the
filter are absent from it and appear in the ledger instead. Changing the filter therefore never
moves a molecule to another shard, and appending records to a source changes only its last
shard and adds new ones. Shard tables are byte-identical for identical input, so Snakemake's
checksum of an unchanged table (files up to ``--max-checksum-file-size``, 1 MB by default)
tells it that nothing downstream of that shard needs to rerun.

Output directory (written atomically as a whole)::

    <outdir>/manifest.tsv        shard, source, first_record, n_records, n_molecules, n_failed
    <outdir>/ledger.tsv          id, stage, reason, message  (stage = "shards")
    <outdir>/<name>-<k:05d>.parquet   molecule tables (see rhoflow.molecule)
"""

from __future__ import annotations

import csv
import itertools
import multiprocessing as mp
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rhoflow.io import atomic_path
from rhoflow.ledger import LedgerRow, write_ledger
from rhoflow.molecule import Molecule, from_rdkit, write_molecules

STAGE = "shards"
MANIFEST_COLUMNS = ("shard", "source", "first_record", "n_records", "n_molecules", "n_failed")


@dataclass(frozen=True)
class ShardInfo:
    """One row of the manifest."""

    shard: str
    source: str
    first_record: int
    n_records: int
    n_molecules: int
    n_failed: int


def shard_name(source: str, index: int) -> str:
    """File stem of shard ``index`` of ``source``: ``<source>-<index:05d>``."""
    return f"{source}-{index:05d}"


def _process(job: tuple[dict[str, Any], dict[str, Any], Any]) -> Molecule | LedgerRow:
    """:func:`parse_entry` of one ``(source, filter settings, raw entry)`` job (runs in a
    worker process)."""
    source, filter_settings, entry = job
    return parse_entry(source, entry, filter_settings)


def parse_entry(
    source: dict[str, Any], entry: Any, filter_settings: dict[str, Any] | None = None
) -> Molecule | LedgerRow:
    """Parse, filter (when ``source["filter"]``) and normalise one raw entry of ``source``
    (a config ``sources`` item: name, format, options) into a :class:`Molecule` with id
    ``<name>:<native id>``, or the ledger row saying why not; never raises."""
    from rhoflow.sources import FORMATS
    from rhoflow.sources.filters import check

    mol_id = f"{source['name']}:{entry.native_id}"
    try:
        record = FORMATS[source["format"]].parse(entry, source)
        if record.failure is not None:
            return LedgerRow(mol_id, STAGE, *record.failure)
        if source.get("filter"):
            rejected = check(record.mol, filter_settings or {})
            if rejected is not None:
                return LedgerRow(mol_id, STAGE, *rejected)
        provenance = {"coordinates": "source"} if record.mol.GetNumConformers() else {}
        return from_rdkit(mol_id, record.mol, record.labels, provenance)
    except Exception as exc:  # a molecule never fails its shard
        return LedgerRow(mol_id, STAGE, "invalid_structure", f"{type(exc).__name__}: {exc}")


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def build_shards(
    sources: list[dict[str, Any]],
    paths: list[str | Path],
    shard_size: int,
    filter_settings: dict[str, Any],
    outdir: str | Path,
    workers: int = 1,
) -> list[ShardInfo]:
    """Read every source (``paths[i]`` is the local file of ``sources[i]``) into shards.

    ``sources`` are config entries (``name``, ``format``, ``filter``, ``charge``, ``limit``).
    Parsing runs in ``workers`` processes; output is identical for any ``workers``.
    """
    from rhoflow.sources import FORMATS

    if len(sources) != len(paths):
        raise ValueError(f"{len(sources)} sources but {len(paths)} input paths")
    manifest: list[ShardInfo] = []
    ledger: list[LedgerRow] = []
    pool = mp.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        with atomic_path(outdir) as tmp:
            tmp.mkdir(parents=True)
            for source, path in zip(sources, paths, strict=True):
                entries: Iterable[Any] = FORMATS[source["format"]].read_raw(Path(path), source)
                if source.get("limit"):
                    entries = itertools.islice(entries, source["limit"])
                seen: set[str] = set()
                bar = tqdm(desc=f"shards {source['name']}", unit="mol", mininterval=2)
                for index, chunk in enumerate(_chunks(entries, shard_size)):
                    jobs = [(source, filter_settings, e) for e in chunk]
                    results = (
                        pool.map(_process, jobs, chunksize=32) if pool else map(_process, jobs)
                    )
                    molecules, failed = _dedupe(results, seen)
                    name = shard_name(source["name"], index)
                    write_molecules(tmp / f"{name}.parquet", molecules)
                    ledger.extend(failed)
                    manifest.append(
                        ShardInfo(
                            name,
                            source["name"],
                            index * shard_size,
                            len(chunk),
                            len(molecules),
                            len(failed),
                        )
                    )
                    bar.update(len(chunk))
                bar.close()
            write_ledger(tmp / "ledger.tsv", ledger)
            write_manifest(tmp / "manifest.tsv", manifest)
    finally:
        if pool:
            pool.close()
            pool.join()
    return manifest


def _dedupe(
    results: Iterable[Molecule | LedgerRow], seen: set[str]
) -> tuple[list[Molecule], list[LedgerRow]]:
    molecules: list[Molecule] = []
    failed: list[LedgerRow] = []
    for item in results:
        if isinstance(item, LedgerRow):
            failed.append(item)
        elif item.id in seen:
            failed.append(LedgerRow(item.id, STAGE, "duplicate_id", "id seen earlier in source"))
        else:
            seen.add(item.id)
            molecules.append(item)
    return molecules, failed


def write_manifest(path: str | Path, rows: Iterable[ShardInfo]) -> None:
    """Write the shard manifest (TSV with :data:`MANIFEST_COLUMNS`) atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for r in rows:
            writer.writerow(
                (r.shard, r.source, r.first_record, r.n_records, r.n_molecules, r.n_failed)
            )


def read_manifest(path: str | Path) -> list[ShardInfo]:
    """Read the shard manifest."""
    with open(path, newline="") as fh:
        return [
            ShardInfo(
                r["shard"],
                r["source"],
                int(r["first_record"]),
                int(r["n_records"]),
                int(r["n_molecules"]),
                int(r["n_failed"]),
            )
            for r in csv.DictReader(fh, delimiter="\t")
        ]
