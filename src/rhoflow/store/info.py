"""Summaries of shard stores: molecules, engines, failures, bytes and files on disk."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.ledger import read_ledger
from rhoflow.store.layout import ledger_path
from rhoflow.store.reader import open_store


def disk_usage(path: str | Path) -> tuple[int, int]:
    """``(bytes, files)`` of every regular file below ``path`` (apparent sizes)."""
    total = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            total += os.stat(os.path.join(root, name)).st_size
            files += 1
    return total, files


def info(path: str | Path, ledger: str | Path | None = None) -> dict[str, Any]:
    """Summary of one finished shard store.

    Keys: ``path``, ``molecules``, ``atoms``, ``engines`` (``"engine version"`` → molecules),
    ``basis`` (element → ``"name functions cartesian|spherical sha256[:12]"`` → molecules, for
    the orbital basis and, as ``fit <element>``, any fitting basis: two stores used the same
    functions where these agree), ``with_esp``, ``points`` (grid points per field),
    ``failures`` (ledger reason → molecules; from ``ledger`` or, when present, the
    ``<shard>.ledger.tsv`` beside the store), ``ledger`` (its path or None), ``total_bytes`` and
    ``file_count`` of the store directory, ``bytes_per_point`` (stored bytes per float32 grid
    value, both fields), ``format_version``, ``created``.
    """
    store = open_store(path)
    engines: Counter[str] = Counter()
    basis: dict[str, Counter[str]] = {}
    for meta in store.all_metadata():
        prov = meta.get("provenance", {})
        name = " ".join(str(prov[k]) for k in ("engine", "engine_version") if k in prov)
        engines[name or "unknown"] += 1
        for key, prefix in (("basis_functions", ""), ("fit_basis_functions", "fit "),
                            ("esp_fit_basis_functions", "ESP fit ")):
            for symbol, record in prov.get(key, {}).items():
                kind = "cartesian" if record["cartesian"] else "spherical"
                text = f"{record['basis']} {record['functions']} {kind} {record['sha256'][:12]}"
                basis.setdefault(prefix + symbol, Counter())[text] += 1
    sizes = np.prod(store.shape.astype(np.int64), axis=1)
    ledger_file = Path(ledger) if ledger is not None else ledger_path(store.path)
    failures: dict[str, int] = {}
    if ledger_file.exists():
        failures = dict(Counter(row.reason for row in read_ledger(ledger_file)))
    else:
        ledger_file = None  # type: ignore[assignment]
    total_bytes, files = disk_usage(store.path)
    points = {"density": int(sizes.sum()), "esp": int(sizes[store.has_esp].sum())}
    n_points = sum(points.values())
    return {
        "path": str(store.path),
        "molecules": len(store),
        "atoms": int(store.attrs.get("n_atoms", 0)),
        "engines": dict(engines),
        "basis": {symbol: dict(found) for symbol, found in sorted(basis.items())},
        "with_esp": int(store.has_esp.sum()),
        "points": points,
        "failures": failures,
        "ledger": str(ledger_file) if ledger_file is not None else None,
        "total_bytes": total_bytes,
        "file_count": files,
        "bytes_per_point": total_bytes / n_points if n_points else None,
        "format_version": store.attrs.get("format_version"),
        "created": store.attrs.get("created"),
    }
