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

import numpy as np


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


def write_ids(group: Any, ids: Sequence[str], arrays: Sequence[Any]) -> None:
    """Finish a per-molecule Zarr group: shrink each of ``arrays`` (first axis = molecule,
    created for every input molecule) to ``len(ids)`` rows and store ``ids`` as the string
    array ``ids`` [N] (row ``k`` of every array belongs to ``ids[k]``)."""
    for array in arrays:
        if array.shape[0] != len(ids):
            array.resize((len(ids), *array.shape[1:]))
    out = group.create_array("ids", shape=(len(ids),), dtype=str, chunks=(max(1, len(ids)),))
    if ids:
        out[...] = np.array(list(ids), dtype=str)
