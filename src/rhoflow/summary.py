"""Stage summary: molecules in and out of each stage and failures per reason; run times.

Reads the molecule tables each stage wrote (the stage is the table's parent folder name,
``results/<stage>/<shard>.parquet``), the density shard stores (stage ``density_<engine>``
from ``results/density/<engine>/<shard>.zarr``) and the ledgers (the stage is their ``stage``
column), and
writes a TSV (``stage, kind, key, count``), Markdown and HTML renderings of the same numbers
and a bar chart of the failures per stage and reason (:func:`plot_failures`).

Run times (:func:`runtime_table`) come from Snakemake's ``benchmark:`` records, one TSV per job
at ``<root>/<stage>/<job>.tsv`` (or ``<root>/<stage>.tsv`` for a single job): wall time
``s`` (seconds), ``max_rss`` (MB as Snakemake reports it: MiB), ``cpu_time`` (seconds); ``NA``
where Snakemake sampled nothing (jobs shorter than its first sample, 0.5 s).
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import pyarrow.parquet as pq

from rhoflow.io import atomic_path, html_table, write_html
from rhoflow.ledger import count_reasons, read_ledger

log = logging.getLogger(__name__)


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


def _stage_lines(rows: Sequence[tuple[str, str, str, int]]) -> list[tuple[str, int, int, str]]:
    """``(stage, molecules out, failed, "reason: n, ...")`` per stage, in row order."""
    lines = []
    for stage in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == stage]
        n_out = next(r[3] for r in mine if r[1:3] == ("molecules", "out"))
        n_failed = next(r[3] for r in mine if r[1:3] == ("molecules", "failed"))
        reasons = ", ".join(f"{r[2]}: {r[3]}" for r in mine if r[1] == "failure") or "–"
        lines.append((stage, n_out, n_failed, reasons))
    return lines


STAGE_HEADER = ("stage", "molecules out", "failed", "failures by reason")


def write_summary(
    rows: Sequence[tuple[str, str, str, int]],
    tsv: str | Path,
    md: str | Path,
    html: str | Path | None = None,
) -> None:
    """Write the rows as TSV, as a Markdown report and (``html``) as an HTML page for
    ``snakemake --report``, all atomically."""
    with atomic_path(tsv) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(("stage", "kind", "key", "count"))
        writer.writerows(rows)
    stages = _stage_lines(rows)
    lines = [
        "# rhoflow stage summary",
        "",
        "| " + " | ".join(STAGE_HEADER) + " |",
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| {stage} | {n_out} | {n_failed} | {reasons} |"
        for stage, n_out, n_failed, reasons in stages
    ]
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    if html is not None:
        write_html(html, "rhoflow stage summary", html_table(STAGE_HEADER, stages))


def plot_failures(rows: Sequence[tuple[str, str, str, int]], png: str | Path) -> None:
    """A horizontal bar chart of the ledger rows per stage and reason (one colour per stage,
    the count at each bar), written atomically as PNG; says so when nothing failed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    failures = [(stage, reason, n) for stage, kind, reason, n in rows if kind == "failure"]
    stages = list(dict.fromkeys(stage for stage, _, _ in failures))
    figure = Figure(figsize=(7.0, 1.2 + 0.3 * max(len(failures), 1)), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    if not failures:
        ax.text(0.5, 0.5, "no molecule failed in any stage", ha="center", va="center")
        ax.set_axis_off()
    else:
        y = range(len(failures))[::-1]  # first stage on top
        colors = [f"C{stages.index(stage) % 10}" for stage, _, _ in failures]
        bars = ax.barh(list(y), [n for _, _, n in failures], color=colors)
        ax.bar_label(bars, padding=2, fontsize=8)
        ax.set_yticks(list(y), [f"{stage}: {reason}" for stage, reason, _ in failures], fontsize=8)
        ax.set_xlabel("molecules (ledger rows)")
        ax.margins(x=0.1)
        ax.xaxis.get_major_locator().set_params(integer=True)
    total = sum(n for _, _, n in failures)
    ax.set_title(f"failures per stage and reason ({total} ledger rows)", fontsize=10)
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png")


# --- run times ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageTimes:
    """Run times of one stage's jobs (``stage == "total"``: of all jobs). Seconds are wall
    (``s`` of the benchmark records) or CPU (``cpu_time``); ``max_rss_mb`` is the largest
    resident set of any job (MB as Snakemake reports it); NaN where nothing was measured."""

    stage: str
    jobs: int
    total_wall_s: float
    mean_wall_s: float
    max_wall_s: float
    total_cpu_s: float
    max_rss_mb: float
    jobs_without_record: int


def _number(text: str) -> float:
    """A benchmark cell as float; NaN for ``NA`` and ``-`` (not measured)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_benchmark(path: str | Path) -> dict[str, float]:
    """One job's benchmark record: ``wall_s``, ``cpu_s``, ``max_rss_mb``; with ``repeat()``
    the mean wall and CPU time and the largest RSS of its rows."""
    with open(path, newline="") as fh:
        records = list(csv.DictReader(fh, delimiter="\t"))
    if not records or "s" not in records[0]:
        raise ValueError(f"{path}: not a Snakemake benchmark record")

    def column(name: str) -> list[float]:
        return [v for v in (_number(r.get(name, "NA")) for r in records) if not math.isnan(v)]

    wall, cpu, rss = column("s"), column("cpu_time"), column("max_rss")
    return {
        "wall_s": sum(wall) / len(wall) if wall else math.nan,
        "cpu_s": sum(cpu) / len(cpu) if cpu else math.nan,
        "max_rss_mb": max(rss, default=math.nan),
    }


def _stage_times(stage: str, records: Sequence[dict[str, float]], missing: int) -> StageTimes:
    wall = [r["wall_s"] for r in records if not math.isnan(r["wall_s"])]
    cpu = [r["cpu_s"] for r in records if not math.isnan(r["cpu_s"])]
    rss = [r["max_rss_mb"] for r in records if not math.isnan(r["max_rss_mb"])]
    return StageTimes(
        stage=stage,
        jobs=len(records),
        total_wall_s=sum(wall),
        mean_wall_s=sum(wall) / len(wall) if wall else math.nan,
        max_wall_s=max(wall, default=math.nan),
        total_cpu_s=sum(cpu) if cpu else math.nan,
        max_rss_mb=max(rss, default=math.nan),
        jobs_without_record=missing,
    )


def runtime_table(benchmarks: Sequence[str | Path], root: str | Path) -> list[StageTimes]:
    """Run times per stage, stages in the order of ``benchmarks``, then a ``total`` row.

    The stage of ``<root>/<stage>/….tsv`` (or ``<root>/<stage>.tsv``) is ``<stage>``, the rule
    that wrote it. A listed record that does not exist (its job ran before benchmarks were
    recorded) counts in ``jobs_without_record``."""
    root = Path(root)
    by_stage: dict[str, list[dict[str, float]]] = {}
    missing: Counter[str] = Counter()
    for path in map(Path, benchmarks):
        try:
            stage = path.relative_to(root).parts[0].removesuffix(".tsv")
        except ValueError:
            raise ValueError(f"{path} is not a benchmark record under {root}") from None
        by_stage.setdefault(stage, [])
        if path.exists():
            by_stage[stage].append(read_benchmark(path))
        else:
            missing[stage] += 1
    if sum(missing.values()):
        log.info("%d jobs without a benchmark record: %s", sum(missing.values()), dict(missing))
    table = [_stage_times(stage, records, missing[stage]) for stage, records in by_stage.items()]
    everything = [r for records in by_stage.values() for r in records]
    return [*table, _stage_times("total", everything, sum(missing.values()))]


RUNTIME_HEADER = (
    "stage",
    "jobs",
    "total wall (s)",
    "mean wall (s)",
    "max wall (s)",
    "total CPU (s)",
    "max RSS (MB)",
    "jobs without record",
)


def _display(times: StageTimes) -> tuple[str | int | float, ...]:
    """A row for people: seconds to 0.1 s, MB to 1 MB, ``–`` where nothing was measured."""
    cells: list[str | int | float] = [times.stage, times.jobs]
    for value, digits in zip(astuple(times)[2:7], (1, 1, 1, 1, 0), strict=True):
        cells.append("–" if math.isnan(value) else round(value, digits) if digits else round(value))
    return (*cells, times.jobs_without_record)


def write_runtimes(
    table: Sequence[StageTimes], tsv: str | Path, md: str | Path, html: str | Path
) -> None:
    """Write a :func:`runtime_table` as TSV (field names, full precision, empty where not
    measured), Markdown and an HTML page for ``snakemake --report``, atomically."""
    with atomic_path(tsv) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(f.name for f in fields(StageTimes))
        for times in table:
            writer.writerow(
                "" if isinstance(v, float) and math.isnan(v) else v for v in astuple(times)
            )
    rows = [_display(times) for times in table]
    lines = [
        "# rhoflow run times per stage",
        "",
        "| " + " | ".join(RUNTIME_HEADER) + " |",
        "|---|" + "---:|" * (len(RUNTIME_HEADER) - 1),
    ]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    note = (
        "<p>Wall and CPU seconds and the largest resident set (MB) of each stage's jobs, "
        "from Snakemake's benchmark records.</p>\n"
    )
    write_html(html, "rhoflow run times per stage", note + html_table(RUNTIME_HEADER, rows))
