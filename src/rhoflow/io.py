"""Atomic file and directory writes.

A job killed mid-write must leave nothing that looks complete: every writer goes through
:func:`atomic_path`, which hands out a temporary sibling path and renames it onto the target
only when the block finishes without an exception. :func:`write_html` writes the small
self-contained pages that ``snakemake --report`` shows inline (it shows images, HTML and PDF;
a TSV or YAML file is only a download there).
"""

from __future__ import annotations

import html
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
    An existing target is replaced. On error the temporary path is removed and the target left
    as it was; an ``OSError`` (a full disk, a quota) gets a note naming the target, so the job's
    log says which output it could not write. Temporary paths left by an earlier writer of the
    same target that was killed are removed first (exactly one job writes a given target).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            # a directory cannot be renamed over: move the old one aside first (a rename, so
            # no half-deleted group ever sits at the target), delete it once replaced
            old = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except OSError:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        exc.add_note(f"while writing {target}: left as it was, the temporary {tmp.name} removed")
        raise
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


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML ``<table>`` of ``rows`` under ``header``, every cell escaped; numbers are
    right-aligned."""

    def cell(tag: str, value: Any) -> str:
        align = ' class="num"' if isinstance(value, int | float) else ""
        return f"<{tag}{align}>{html.escape(str(value))}</{tag}>"

    head = "".join(cell("th", h) for h in header)
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>\n" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def write_html(path: str | Path, title: str, body: str) -> None:
    """Write a self-contained HTML page (no scripts, no external files) atomically: ``title``
    as its heading, then ``body`` (HTML, escaped by the caller)."""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; font-size: 14px; margin: 1em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
th {{ background: #f2f2f2; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
pre {{ background: #f7f7f7; padding: 0.8em; }}
</style></head>
<body><h2>{html.escape(title)}</h2>
{body}
</body></html>
"""
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
