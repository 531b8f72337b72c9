"""One density job: a conformer shard through one engine into a shard store and a ledger."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rhoflow.density import iter_shard
from rhoflow.ledger import LedgerRow, write_ledger
from rhoflow.molecule import read_molecules

log = logging.getLogger(__name__)


def stage_name(engine: str) -> str:
    """Ledger stage of an engine's density rule: ``density_<engine>``."""
    return f"density_{engine}"


def build_density_shard(
    engine: str,
    shard: str | Path,
    settings: dict[str, Any],
    store: str | Path,
    ledger: str | Path,
    workers: int = 1,
    threads: int = 1,
) -> tuple[int, int]:
    """Run ``engine`` with its completed ``settings`` (the ``density.<engine>`` section) over the
    molecules of ``shard`` (a molecule table); write the Zarr shard store at ``store``
    (atomically) and the failures to ``ledger``. Returns (stored, failed).

    ``workers`` molecules run at once with ``threads`` threads each.
    """
    from rhoflow.store import StoreWriter

    molecules = read_molecules(shard)
    failed: list[LedgerRow] = []
    stage = stage_name(engine)
    with StoreWriter(store) as writer:
        for item in iter_shard(engine, molecules, settings, workers, threads, stage=stage):
            if isinstance(item, LedgerRow):
                failed.append(item)
                continue
            try:
                writer.add(item)
            except (ValueError, OverflowError) as exc:  # a grid the store cannot take
                failed.append(LedgerRow(item.id, stage, "engine_error", f"store: {exc}"))
        stored = writer.n_molecules
    write_ledger(ledger, failed)
    log.info("%s %s: %d stored, %d failed -> %s", engine, shard, stored, len(failed), store)
    return stored, len(failed)
