"""Atomic file and directory writes.

A job killed mid-write must leave nothing that looks complete: every writer goes through
:func:`atomic_path`, which hands out a temporary sibling path and renames it onto the target
only when the block finishes without an exception.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Works for files and directories (the caller creates what it needs at the temporary path).
    An existing target is replaced. On error the temporary path is removed. Temporary paths
    left by an earlier writer of the same target that was killed are removed first (exactly
    one job writes a given target).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_parquet(
    path: str | Path, table: Any, dictionary: Sequence[str] = (), row_group_size: int | None = None
) -> None:
    """Write a ``pyarrow.Table`` to ``path`` atomically and byte-identically for identical
    input (zstd level 9, no statistics or timestamps); ``dictionary`` columns are
    dictionary-encoded."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=9,
            row_group_size=row_group_size,
            use_dictionary=list(dictionary),
            write_statistics=False,
            store_schema=True,
        )
