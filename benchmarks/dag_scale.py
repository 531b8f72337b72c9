"""Scale of the workflow at PCQM4Mv2 size (3,746,620 molecules): DAG, jobs, files, disk, CPU.

``dag`` writes a synthetic PCQM4Mv2 source of ``--rows`` records in OGB's raw ``data.csv.gz``
layout (``idx,smiles,homolumogap``; the SMILES of
../shared/data/pcqm4mv2/pcqm4mv2_first1000.csv repeated cyclically) and the shards checkpoint's
outputs as the checkpoint leaves them (``manifest.tsv``, an empty ``ledger.tsv``, one empty
``<shard>.parquet`` per shard, all newer than the source), so no SMILES is parsed: Snakemake
sees the checkpoint done and plans every downstream job. The config is the repository's
``config.yaml`` (three engines, voxels, point clouds, images, 4 models × 2 targets × 1 seed, EDG
with a λ sweep) with this source, ``--shard-size`` (1000) and EDG pre-training on it. Each
measurement is one ``snakemake`` process under ``/usr/bin/time -v``:

* the full dry run (``-n``): wall and CPU s until the job stats are printed (parse + DAG, what a
  real run pays before its first job) and for the whole dry run, peak RSS (MiB), jobs per rule;
* what every cluster job pays before its command: starting Snakemake (``--version``), parsing
  the Snakefile (``--list-rules``), planning its one job as the SLURM jobstep does
  (``-n --target-jobs conformers:shard=… --allowed-rules conformers``); median of ``--repeat``;
* the largest argument vector of each aggregating rule's command (bytes, as execve counts
  them), from dry runs at 20 and 100 shards extrapolated linearly, against ``ARG_MAX``;
* ``--profile``: a cProfile of the full dry run instead (``dry_run.prof``, top functions).

``files`` counts files and bytes per rule of a finished run (``results/``, ``logs/``, the
``benchmark:`` records, ``.snakemake/metadata``), grows each per-shard output to a 1,000-molecule
shard (Zarr shard files and their fixed-size indexes from each array's metadata), and
extrapolates files, disk and CPU hours to ``--molecules``. ``--real N`` first runs the workflow
on the first N PCQM4Mv2 molecules in two shards (``<workdir>/real``: given DFT coordinates,
pyscf RHF/STO-3G and GFN2-xTB at the defaults, i.e. the EDBench 0.4-bohr grid, representations
of the pyscf densities, one tiny SchNet and EDG at tiny sizes). It also times the shards stage
(1,000 SMILES, in process) and ETKDG + MMFF94 + MINDO/3 at the production defaults on the first
``--conformers`` molecules (SMILES only, as ``data.csv.gz`` gives them), cached in
``<workdir>/costs.json``; psi4's cost and bytes and SchNet's throughput come from the README's
benchmarks (:data:`README_COSTS`). CPU s of the workflow's jobs are Snakemake's ``cpu_time``.

Data stays in ``--workdir`` (default /tmp/dagscale), never in the repository. Runs one
snakemake at a time; on a shared machine compare CPU s, not wall s.

    .venv/bin/python benchmarks/dag_scale.py dag [--rows 3746620] [--shard-size 1000] [--profile]
    .venv/bin/python benchmarks/dag_scale.py files --real 16 [--conformers 3]
"""

from __future__ import annotations

import argparse
import base64
import csv
import gzip
import itertools
import json
import math
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import yaml

from rhoflow.ledger import write_ledger
from rhoflow.shards import ShardInfo, shard_name, write_manifest

REPO = Path(__file__).resolve().parents[1]
PCQM = REPO.parent / "shared/data/pcqm4mv2/pcqm4mv2_first1000.csv"
PCQM4MV2_ROWS = 3_746_620
"""Molecules in PCQM4Mv2 (OGB-LSC ``data.csv.gz``)."""
SOURCE = "pcqm4mv2"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
BENCHMARKS = "logs/benchmarks"
"""Where the rules' ``benchmark:`` records are (``<rule>/<job>.tsv``)."""


# --- synthetic source and checkpoint -----------------------------------------------------------


def plain_smiles(path: Path = PCQM) -> list[tuple[str, str]]:
    """(SMILES without H or coordinates, gap eV) of the graphium CXSMILES file."""
    from rdkit import Chem

    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            mol = Chem.MolFromSmiles(row["smiles"].split(" |")[0], sanitize=True)
            out.append((Chem.MolToSmiles(Chem.RemoveHs(mol)), row["homo"]))
    return out


def write_source(path: Path, rows: int) -> None:
    """``rows`` records of OGB's ``data.csv.gz`` layout, real SMILES repeated cyclically."""
    pool = plain_smiles()
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", compresslevel=1, newline="") as fh:
        fh.write("idx,smiles,homolumogap\n")
        for idx, (smiles, gap) in zip(range(rows), itertools.cycle(pool)):
            fh.write(f"{idx},{smiles},{gap}\n")


def write_checkpoint(outdir: Path, rows: int, shard_size: int) -> int:
    """The shards checkpoint's outputs for ``rows`` records, without parsing any: manifest,
    empty ledger, one empty table per shard; returns the number of shards."""
    outdir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for k in range((rows + shard_size - 1) // shard_size):
        n = min(shard_size, rows - k * shard_size)
        name = shard_name(SOURCE, k)
        (outdir / f"{name}.parquet").touch()
        manifest.append(ShardInfo(name, SOURCE, k * shard_size, n, n, 0))
    write_ledger(outdir / "ledger.tsv", [])
    write_manifest(outdir / "manifest.tsv", manifest)
    now = time.time()
    for path in (*outdir.iterdir(), outdir):  # newer than the source: the checkpoint is done
        os.utime(path, (now, now))
    return len(manifest)


def scale_config(source: Path, shard_size: int) -> dict[str, Any]:
    """The repository's config.yaml with one PCQM4Mv2 source at ``shard_size``."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["sources"] = [{"name": SOURCE, "format": "pcqm4mv2_csv", "path": str(source)}]
    config["shards"]["shard_size"] = shard_size
    config["edg"]["pretrain"] = SOURCE
    return config


def prepare(workdir: Path, rows: int, shard_size: int) -> int:
    """Source, config and checkpoint outputs in ``workdir`` (the source is kept between runs
    of the same size); returns the number of shards."""
    source = workdir / "data" / f"pcqm4mv2_{rows}.csv.gz"
    if not source.exists():
        t0 = time.perf_counter()
        write_source(source, rows)
        print(
            f"source: {rows:,} rows, {source.stat().st_size / 1e6:.0f} MB, "
            f"{time.perf_counter() - t0:.0f} s"
        )
    (workdir / "config.yaml").write_text(yaml.safe_dump(scale_config(source, shard_size)))
    return write_checkpoint(workdir / "results/shards", rows, shard_size)


# --- timed snakemake runs ----------------------------------------------------------------------


def timed(args: list[str], workdir: Path, snakefile: Path = REPO / "Snakefile") -> dict[str, Any]:
    """Run ``snakemake ARGS`` in ``workdir`` under /usr/bin/time -v. Returns ``wall_s``,
    ``cpu_s`` (user + system), ``rss_mib`` (peak resident set), ``dag_wall_s`` and
    ``dag_cpu_s`` (until the ``Job stats`` table is printed: parse + DAG, before any job is
    printed or submitted; None without one) and ``output`` (stdout + stderr)."""
    cmd = ["/usr/bin/time", "-v", str(SNAKEMAKE), "--snakefile", str(snakefile)]
    cmd += ["--directory", str(workdir), *args]
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}")
    t0 = time.perf_counter()
    dag_wall = dag_cpu = None
    lines = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if dag_wall is None and line.startswith("Job stats:"):
                dag_wall = time.perf_counter() - t0
                try:  # the snakemake process is /usr/bin/time's one child
                    cpu = psutil.Process(proc.pid).children()[0].cpu_times()
                    dag_cpu = cpu.user + cpu.system
                except (IndexError, psutil.Error):
                    pass
            lines.append(line)
    wall = time.perf_counter() - t0
    out = "".join(lines)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-4000:]}")

    def field(name: str) -> float:
        match = re.search(rf"{re.escape(name)}: ([\d.]+)", out)
        return float(match.group(1)) if match else float("nan")

    return {
        "wall_s": wall,
        "cpu_s": field("User time (seconds)") + field("System time (seconds)"),
        "rss_mib": field("Maximum resident set size (kbytes)") / 1024,
        "dag_wall_s": dag_wall,
        "dag_cpu_s": dag_cpu,
        "output": out,
    }


def job_stats(output: str) -> dict[str, int]:
    """Jobs per rule from snakemake's ``Job stats`` table (``total`` included)."""
    table = output.split("Job stats:", 1)[1]
    counts: dict[str, int] = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


ONE_JOB = [
    "--target-jobs",
    f"conformers:shard={shard_name(SOURCE, 0)}",
    "--allowed-rules",
    "conformers",
]
"""How a cluster job names its one job (the arguments Snakemake's remote executors pass)."""


ARG_MAX = os.sysconf("SC_ARG_MAX")
"""Bytes the kernel allows for a program's arguments and environment together (execve)."""


def argv_bytes(workdir: Path) -> dict[str, int]:
    """Per rule, the largest ``python -m rhoflow …`` argument vector of its jobs (bytes as
    execve counts them: strings, NULs and pointers), from a dry run's shell commands."""
    out = timed(["-n", "-p", "--cores", "2"], workdir)["output"]
    sizes: dict[str, int] = {}
    rule = ""
    for line in out.splitlines():
        if match := re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", line):
            rule = match.group(1)
        elif line.startswith("Shell command: "):
            argv = shlex.split(line.removeprefix("Shell command: ").split(" > ")[0])
            size = sum(len(a.encode()) + 1 + 8 for a in argv) + 8
            sizes[rule] = max(size, sizes.get(rule, 0))
    return sizes


def argv_at_scale(workdir: Path, shards: int, small: tuple[int, int] = (20, 100)) -> None:
    """Largest argument vector per rule at ``shards``, extrapolated linearly from dry runs at
    ``small`` shard counts (their commands list every shard's files)."""
    measured = []
    for n in small:
        sub = workdir.parent / f"argv-{n}"
        prepare(sub, n * 1000, 1000)
        measured.append(argv_bytes(sub))
    a, b = measured
    print(
        f"\n| rule | argv bytes at {small[0]} / {small[1]} shards | at {shards:,} shards |"
        f" of ARG_MAX {ARG_MAX:,} |\n|---|---:|---:|---:|"
    )
    for rule in sorted(b, key=lambda r: -b[r]):
        per_shard = (b[rule] - a.get(rule, b[rule])) / (small[1] - small[0])
        if per_shard <= 0:
            continue
        at = b[rule] + per_shard * (shards - small[1])
        print(f"| {rule} | {a.get(rule, 0):,} / {b[rule]:,} | {at:,.0f} | {at / ARG_MAX:.0%} |")


def dag(args: argparse.Namespace) -> None:
    workdir = args.workdir / f"rows{args.rows}-shard{args.shard_size}"
    n_shards = prepare(workdir, args.rows, args.shard_size)
    print(f"{args.rows:,} records, shard_size {args.shard_size}: {n_shards:,} shards")
    dry = ["-n", "--cores", "2", "--quiet", "rules"]
    if args.profile:
        profile = workdir / "dry_run.prof"
        cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), str(SNAKEMAKE)]
        subprocess.run(
            [*cmd, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *dry],
            capture_output=True,
            check=True,
        )
        import pstats

        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(40)
        return
    argv_at_scale(workdir, n_shards)
    run = timed(dry, workdir)
    stats = job_stats(run["output"])
    print(
        f"\nfull dry run, {stats['total']:,} jobs: parse + DAG {run['dag_wall_s']:.1f} s wall,"
        f" {run['dag_cpu_s']:.1f} s CPU (until the job stats);"
        f" whole dry run {run['wall_s']:.1f} s wall,"
        f" {run['cpu_s']:.1f} s CPU, peak RSS {run['rss_mib']:.0f} MiB"
    )
    print("\n| rule | jobs |\n|---|---:|")
    for rule, count in sorted(stats.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"| {rule} | {count:,} |")
    single = [
        ("start snakemake (`--version`)", ["--version"]),
        ("parse the Snakefile (`--list-rules`)", ["--list-rules"]),
        ("parse + plan one conformers job (`-n --target-jobs`)", ["-n", "--cores", "2", *ONE_JOB]),
    ]
    print("\n| every job pays | wall s | CPU s | peak RSS MiB |\n|---|---:|---:|---:|")
    for label, extra in single:
        runs = sorted((timed(extra, workdir) for _ in range(args.repeat)), key=lambda r: r["cpu_s"])
        best = runs[len(runs) // 2]
        print(f"| {label} | {best['wall_s']:.2f} | {best['cpu_s']:.2f} | {best['rss_mib']:.0f} |")


# --- files and bytes per stage of a real run --------------------------------------------------


def real_config(n_molecules: int) -> dict[str, Any]:
    """The first ``n_molecules`` PCQM4Mv2 molecules at their DFT coordinates in two shards:
    pyscf RHF/STO-3G and GFN2-xTB on the EDBench grid (0.4 bohr, 4 bohr overage; the same
    points psi4 would write), representations of the pyscf densities at the production
    settings, one tiny SchNet and the EDG chain at tiny sizes (files per run, not costs)."""
    trainer = {"max_epochs": 2, "batch_size": 4, "progress_bar": False}
    return {
        "sources": [
            {"name": SOURCE, "format": "pcqm4mv2_cxsmiles", "path": str(PCQM), "limit": n_molecules}
        ],
        "shards": {"shard_size": max(1, n_molecules // 2), "threads": 1},
        "conformers": {"method": "source", "reoptimize": "none", "threads": 1},
        "density": {"engines": ["pyscf", "xtb"], "threads": 2, "workers": 2},
        "voxels": {"engine": "pyscf"},
        "pointclouds": {"engine": "pyscf"},
        "render": {"engine": "pyscf"},
        "train": {
            "labels": "pyscf",
            "targets": ["gap_hartree"],
            "seeds": [0],
            "models": {"schnet": {"hidden_channels": 16, "num_filters": 16, "num_interactions": 1}},
            "trainer": trainer,
        },
        "edg": {
            "pretrain": SOURCE,
            "imageed": {"size": "tiny", "trainer": {**trainer, "max_epochs": 1}},
            "teacher": {"trainer": {**trainer, "max_epochs": 1}},
            "lambda_sweep": [],
        },
    }


def run_real(workdir: Path, n_molecules: int) -> None:
    """The workflow on the first ``n_molecules`` real molecules in ``workdir`` (a rerun only
    completes what is missing)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(real_config(n_molecules)))
    run = timed(["--cores", "2", "--rerun-incomplete", "--quiet", "rules"], workdir)
    print(
        f"real run: {run['wall_s']:.0f} s wall, {run['cpu_s']:.0f} s CPU (Snakemake and its jobs)"
    )


PER_SHARD = ("shards", "conformers", "density_psi4", "density_pyscf", "density_xtb", "voxels",
             "pointclouds", "render", "render_structures")  # fmt: skip
"""Stages with one job (and one output set) per shard."""


def stage_of(path: str) -> str:
    """The rule that writes a workflow path (``results/…``, ``logs/…``,
    ``logs/benchmarks/<rule>/…``)."""
    parts = [p.removesuffix(".log").removesuffix(".zarr") for p in path.split("/")]
    if parts[:2] == ["logs", "benchmarks"]:
        return parts[2].removesuffix(".tsv")
    parts = parts[1:]
    head, sub = parts[0], parts[1] if len(parts) > 1 else ""
    if head == "density" and len(parts) > 2:
        for prefix, rule in (
            ("index", "store_index"),
            ("labels", "labels"),
            ("slices", "density_slices"),
        ):
            if parts[2].startswith(prefix):
                return rule
        return f"density_{sub}"
    if head == "render" and sub in ("structures", "gallery"):
        return f"render_{sub}"
    if head == "edg":  # results/edg/<rule>/…, results/edg/<rule>.zarr
        return sub
    if head == "summary" and sub.startswith(("config.", "runtimes.")):
        return "effective_config" if sub.startswith("config.") else "runtimes"
    if head == "tables":
        return "evaluate_lambda" if "_edg_lambda" in sub else "evaluate_property"
    if head == "models":
        return "train_edg" if any(p.startswith("lambda") for p in parts) else "train_property"
    return head


def metadata_path(record: Path, root: Path) -> str:
    """The output path a ``.snakemake/metadata`` record describes (base64, split in folders)."""
    return base64.urlsafe_b64decode("".join(record.relative_to(root).parts)).decode()


def count_files(workdir: Path) -> dict[str, Counter[str]]:
    """Files and bytes per rule: ``{rule: Counter(results=, results_bytes=, logs=,
    benchmarks=, metadata=)}`` (``metadata``: Snakemake's records of finished outputs)."""
    counts: dict[str, Counter[str]] = {}
    for top in ("results", "logs"):
        for path in (workdir / top).rglob("*"):
            if not path.is_file():
                continue
            rel = path.relative_to(workdir).as_posix()
            kind = "benchmarks" if rel.startswith("logs/benchmarks/") else top
            c = counts.setdefault(stage_of(rel), Counter())
            c[kind] += 1
            if kind == "results":
                c["results_bytes"] += path.stat().st_size
    meta = workdir / ".snakemake/metadata"
    for record in meta.rglob("*") if meta.exists() else ():
        if record.is_file():
            counts.setdefault(stage_of(metadata_path(record, meta)), Counter())["metadata"] += 1
    return counts


def zarr_at(group: Path, factor: float) -> tuple[int, float]:
    """(files, bytes) of a Zarr v3 group with ``factor`` × its molecules. A sharded array grows
    along axis 0 in shard files of fixed shape, each with a fixed-size index (16 B per inner
    chunk + 4 B checksum, however few chunks it holds: a small shard's bytes are mostly
    index); a one-chunk table stays one file and grows in proportion."""
    files = [p for p in group.rglob("*") if p.is_file()]
    n_files, n_bytes = len(files), float(sum(p.stat().st_size for p in files))
    for meta in group.rglob("zarr.json"):
        info = json.loads(meta.read_text())
        if info.get("node_type") != "array":
            continue
        chunks = [p for p in (meta.parent / "c").rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in chunks)
        sharding = [c for c in info["codecs"] if c["name"] == "sharding_indexed"]
        if not chunks:
            continue
        if not sharding:
            n_bytes += size * (factor - 1)
            continue
        shape, shard = info["shape"], info["chunk_grid"]["configuration"]["chunk_shape"]
        inner = sharding[0]["configuration"]["chunk_shape"]
        index = math.prod(s // i for s, i in zip(shard, inner, strict=True)) * 16 + 4
        grown = [shape[0] * factor, *shape[1:]]
        at = math.prod(math.ceil(g / c) for g, c in zip(grown, shard, strict=True))
        n_files += at - len(chunks)
        n_bytes += (size - len(chunks) * index) * (factor - 1) + (at - len(chunks)) * index
    return n_files, n_bytes


def shard_sizes(workdir: Path) -> dict[str, int]:
    """Molecules per shard, from the shards checkpoint's manifest."""
    from rhoflow.shards import read_manifest

    return {s.shard: s.n_molecules for s in read_manifest(workdir / "results/shards/manifest.tsv")}


def at_1000(workdir: Path) -> dict[str, tuple[float, float]]:
    """Per per-shard stage: (result files of one 1,000-molecule shard, bytes per molecule
    there), from the measured shards grown to 1,000 molecules (:func:`zarr_at`; tables and
    ledgers in proportion), averaged over shards."""
    sizes = shard_sizes(workdir)
    out: dict[str, tuple[float, float]] = {}
    for rule in PER_SHARD:
        grown = []
        for shard, n in sizes.items():
            paths = [
                p
                for p in (workdir / "results").rglob(f"{shard}*")
                if stage_of(p.relative_to(workdir).as_posix()) == rule
                and p.parent.suffix != ".zarr"
            ]
            files, size = 0.0, 0.0
            for path in paths:
                if path.is_dir() and path.suffix == ".zarr":
                    f, b = zarr_at(path, 1000 / n)
                    files, size = files + f, size + b
                elif path.is_file():
                    files, size = files + 1, size + path.stat().st_size * 1000 / n
            if paths:
                grown.append((files, size / 1000))
        if grown:
            out[rule] = (
                sum(f for f, _ in grown) / len(grown),
                sum(b for _, b in grown) / len(grown),
            )
    return out


# --- per-molecule costs --------------------------------------------------------------------------


def shards_cost(workdir: Path, n: int) -> float:
    """CPU s per molecule of the shards stage (parse, filter, normalise, write) on the first
    ``n`` records of a synthetic ``data.csv.gz`` (one process, in-process timing)."""
    from rhoflow.config import section_settings
    from rhoflow.molecule import write_molecules
    from rhoflow.shards import parse_entry
    from rhoflow.sources import FORMATS

    path = workdir / "data" / f"pcqm4mv2_{n}.csv.gz"
    if not path.exists():
        write_source(path, n)
    source = {"name": SOURCE, "format": "pcqm4mv2_csv", "filter": True}
    filters = section_settings("shards")["filter"]
    t0 = time.process_time()
    entries = FORMATS["pcqm4mv2_csv"].read_raw(path, source)
    parsed = [parse_entry(source, entry, filters) for entry in entries]
    write_molecules(workdir / "shards_cost.parquet", [m for m in parsed if hasattr(m, "smiles")])
    return (time.process_time() - t0) / n


def conformers_cost(n: int) -> list[tuple[str, int, float, float]]:
    """(id, atoms, wall s, CPU s) of ETKDG + MMFF94 + MINDO/3 at the production defaults for
    the first ``n`` PCQM4Mv2 molecules (SMILES only, as data.csv.gz gives them), one worker."""
    from rdkit import Chem

    from rhoflow.config import section_settings
    from rhoflow.conformers import generate_shard
    from rhoflow.molecule import from_rdkit

    settings = section_settings("conformers")
    out = []
    for idx, (smiles, _) in enumerate(plain_smiles()[:n]):
        mol = from_rdkit(f"{SOURCE}:{idx}", Chem.MolFromSmiles(smiles))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done, failed = generate_shard([mol], settings, workers=1)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        out.append((mol.id, len(mol.atomic_numbers), wall, cpu if done else float("nan")))
    return out


def job_costs(workdir: Path) -> dict[str, dict[str, float]]:
    """Per rule of a finished run: jobs, molecules, wall s and CPU s (Snakemake's benchmark
    records, ``logs/benchmarks/<rule>/<shard>.tsv``; CPU sampled, so short jobs read low)."""
    sizes = shard_sizes(workdir)
    out: dict[str, dict[str, float]] = {}
    for record in sorted((workdir / BENCHMARKS).glob("*/*.tsv")):
        rule, shard = record.parent.name, record.stem
        with open(record, newline="") as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        c = out.setdefault(rule, {"jobs": 0, "molecules": 0, "wall_s": 0.0, "cpu_s": 0.0})
        c["jobs"] += 1
        c["molecules"] += sizes.get(shard, 0)
        c["wall_s"] += float(row["s"])
        c["cpu_s"] += float(row["cpu_time"])
    return out


def engine_wall(workdir: Path) -> dict[str, list[float]]:
    """Per engine: the engine's wall s of every molecule (its provenance, ``wall_s``)."""
    from rhoflow.store.reader import open_store

    out: dict[str, list[float]] = {}
    for store in sorted((workdir / "results/density").glob("*/*.zarr")):
        reader = open_store(store)
        walls = [reader.metadata(i)["provenance"].get("wall_s") for i in range(len(reader.ids))]
        out.setdefault(store.parent.name, []).extend(float(w) for w in walls if w is not None)
    return out


# --- the 3.7 M extrapolation -------------------------------------------------------------------

README_COSTS = {
    "psi4_cpu_s": 159.0,  # representation_cost.py --pcqm 20: B3LYP/6-31G**, EDBench grid, 1 thread
    "psi4_bytes": 1.02e6,  # store_formats.py: 20 real psi4 PCQM4Mv2 densities + ESP, float32
    "schnet_mol_per_s": 132.3,  # train_throughput.py: paper-size SchNet, 1 thread, micro_qm9
}
"""Per-molecule costs measured by the other benchmarks (README "Benchmarks"), not here."""


def measure_costs(workdir: Path, n_conformers: int) -> dict[str, Any]:
    """Shards and conformer costs, cached in ``<workdir>/costs.json``."""
    path = workdir / "costs.json"
    costs = json.loads(path.read_text()) if path.exists() else {}
    if "shards_cpu_s" not in costs:
        costs["shards_cpu_s"] = shards_cost(workdir, 1000)  # 1,000 distinct SMILES
        costs["shards_bytes"] = (workdir / "shards_cost.parquet").stat().st_size / 1000
    if len(costs.get("conformers", [])) < n_conformers:
        costs["conformers"] = conformers_cost(n_conformers)
    path.write_text(json.dumps(costs, indent=1))
    return costs


def extrapolate(workdir: Path, costs: dict[str, Any], molecules: int, shard_size: int) -> None:
    """Files, disk and CPU hours per stage at ``molecules`` in shards of ``shard_size``, from
    the real run in ``workdir`` (files and bytes of 1,000-molecule shards, CPU per molecule),
    ``costs`` and :data:`README_COSTS`. Files include each job's log, benchmark record and
    Snakemake metadata records."""
    counts = count_files(workdir)
    sizes = shard_sizes(workdir)
    n_mol, n_shards = sum(sizes.values()), len(sizes)
    grown = at_1000(workdir)
    jobs = job_costs(workdir)
    shards = math.ceil(molecules / shard_size)
    conf = [c[3] for c in costs.get("conformers", []) if c[3] == c[3]]
    rows: list[tuple[str, float, float, float | None, str]] = []
    for rule in PER_SHARD:
        base = "density_pyscf" if rule == "density_psi4" else rule  # psi4 writes pyscf's grid
        if base not in grown:
            continue
        c = counts[base]
        per_job = sum(c[k] for k in ("logs", "benchmarks", "metadata")) / n_shards
        n_files = shards * (grown[base][0] + per_job)
        bytes_per_mol = grown[base][1]
        cpu, source = None, "measured here (benchmark: cpu_time / molecules)"
        if rule == "shards":  # one job; manifest and ledger
            n_files = shards * grown[base][0] + 2 + per_job * n_shards
            cpu, bytes_per_mol = costs["shards_cpu_s"], costs["shards_bytes"]
            source = "measured here (1,000 SMILES as data.csv.gz gives them, no coordinates)"
        elif rule == "conformers":
            cpu = sum(conf) / len(conf) if conf else None
            source = f"measured here (ETKDG+MMFF94+MINDO/3 defaults, {len(conf)} molecules)"
        elif rule == "density_psi4":
            cpu, bytes_per_mol = README_COSTS["psi4_cpu_s"], README_COSTS["psi4_bytes"]
            source = "README (representation_cost, store_formats); files: pyscf's grid here"
        elif jobs.get(rule, {}).get("molecules"):
            cpu = jobs[rule]["cpu_s"] / jobs[rule]["molecules"]
        rows.append((rule, n_files, bytes_per_mol * molecules / 1e9, cpu, source))
    factor = molecules / n_mol
    for rule in ("store_index", "labels", "splits", "imageed_features", "teacher_features"):
        c = counts.get(rule, Counter())
        n_files, size = float(sum(c[k] for k in ("logs", "benchmarks", "metadata"))), 0.0
        for path in (workdir / "results").rglob("*"):
            rel = path.relative_to(workdir).as_posix()
            if stage_of(rel) != rule or path.parent.suffix == ".zarr" or ".zarr/" in rel:
                continue
            if path.is_dir() and path.suffix == ".zarr":
                f, b = zarr_at(path, factor)
                n_files, size = n_files + f, size + b
            elif path.is_file():
                n_files, size = n_files + 1, size + path.stat().st_size * factor
        rows.append((rule, n_files, size / 1e9, None, "measured here, grown to all molecules"))
    print("\n| stage | files | disk GB | CPU s per molecule | CPU hours | source |")
    print("|---|---:|---:|---:|---:|---|")
    for rule, n_files, gb, cpu, source in rows:
        hours = f"{cpu * molecules / 3600:,.0f}" if cpu is not None else "–"
        cpu_s = f"{cpu:.3g}" if cpu is not None else "–"
        print(f"| {rule} | {n_files:,.0f} | {gb:,.1f} | {cpu_s} | {hours} | {source} |")
    total_files = sum(r[1] for r in rows)
    total_gb = sum(r[2] for r in rows)
    total_h = sum(r[3] * molecules / 3600 for r in rows if r[3] is not None)
    print(f"| total | {total_files:,.0f} | {total_gb:,.0f} | | {total_h:,.0f} | |")
    runs = {r: counts.get(r, Counter()) for r in ("train_property", "train_edg")}
    for rule, c in runs.items():
        n = max(c["benchmarks"], 1)
        print(
            f"{rule}: {sum(c[k] for k in ('results', 'logs', 'benchmarks', 'metadata')) / n:.0f}"
            f" files and {c['results_bytes'] / n / 1e6:.1f} MB per run (tiny model)"
        )
    epoch_h = 0.8 * molecules / README_COSTS["schnet_mol_per_s"] / 3600
    print(
        f"training: one paper-size SchNet epoch over the train split (80 %) is"
        f" {epoch_h:,.1f} CPU hours at {README_COSTS['schnet_mol_per_s']} molecules/s"
        f" (README, QM9-size molecules, 1 thread); 300 epochs (default) {300 * epoch_h:,.0f}."
    )


def files(args: argparse.Namespace) -> None:
    workdir = args.workdir / "real"
    if args.real:
        run_real(workdir, args.real)
    counts = count_files(workdir)
    sizes = shard_sizes(workdir)
    n_mol = sum(sizes.values())
    per_1000 = at_1000(workdir)
    print(f"{workdir}: {n_mol} molecules in {len(sizes)} shards ({sorted(set(sizes.values()))})")
    print(
        "\n| rule | result files | bytes per molecule | logs | benchmarks | metadata |"
        " result files per 1,000-molecule shard | bytes per molecule there |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for rule, c in sorted(counts.items()):
        f1000 = (
            f"{per_1000[rule][0]:.0f} | {per_1000[rule][1]:,.0f}" if rule in per_1000 else "– | –"
        )
        print(
            f"| {rule} | {c['results']} | {c['results_bytes'] / n_mol:,.0f} | {c['logs']} |"
            f" {c['benchmarks']} | {c['metadata']} | {f1000} |"
        )
    jobs = job_costs(workdir)
    walls = engine_wall(workdir)
    print("\n| rule | jobs | molecules | wall s | CPU s | CPU s per molecule |")
    print("|---|---:|---:|---:|---:|---:|")
    for rule, c in jobs.items():
        per = f"{c['cpu_s'] / c['molecules']:.2f}" if c["molecules"] else "–"
        print(
            f"| {rule} | {c['jobs']:.0f} | {c['molecules']:.0f} | {c['wall_s']:.0f} |"
            f" {c['cpu_s']:.0f} | {per} |"
        )
    for engine, w in walls.items():
        print(
            f"{engine}: engine wall s per molecule (provenance) mean {sum(w) / len(w):.1f},"
            f" max {max(w):.1f} ({len(w)} molecules)"
        )
    costs = measure_costs(args.workdir, args.conformers)
    print(f"\nshards: {costs['shards_cpu_s'] * 1e3:.2f} ms CPU per molecule")
    for mol_id, atoms, wall, cpu in costs["conformers"]:
        print(f"conformers {mol_id} ({atoms} atoms): {wall:.0f} s wall, {cpu:.0f} s CPU")
    extrapolate(workdir, costs, args.molecules, args.shard_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dagscale"))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("dag", help="DAG build, jobs per rule, parse cost")
    p.add_argument("--rows", type=int, default=PCQM4MV2_ROWS, help="source records")
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--profile", action="store_true", help="cProfile the full dry run")
    p.add_argument("--repeat", type=int, default=3, help="runs of each per-job cost (median)")
    p = sub.add_parser("files", help="files, bytes and costs per stage; the 3.7 M table")
    p.add_argument("--real", type=int, default=0, help="first run the workflow on N molecules")
    p.add_argument("--conformers", type=int, default=3, help="molecules to time conformers on")
    p.add_argument("--molecules", type=int, default=PCQM4MV2_ROWS, help="extrapolate to")
    p.add_argument("--shard-size", type=int, default=1000)
    args = parser.parse_args()
    if args.workdir.resolve().is_relative_to(REPO):
        parser.error("--workdir must be outside the repository")
    {"dag": dag, "files": files}[args.command](args)


if __name__ == "__main__":
    main()
