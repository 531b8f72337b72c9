"""Ingest PCQM4Mv2 molecules with their given coordinates through snakemake, twice.

Runs the whole workflow (shards → conformers with ``method: source`` → summary) in two fresh
working directories on the same input and checks that every shard file is byte-identical.
Prints molecules kept, ledger counts, shard count and wall time per run.

    .venv/bin/python benchmarks/pcqm4mv2_ingest.py [CSV] [--shard-size N] [--threads N]

CSV defaults to ../shared/data/pcqm4mv2/pcqm4mv2_first1000.csv (graphium CXSMILES layout).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared/data/pcqm4mv2/pcqm4mv2_first1000.csv"


def run_once(workdir: Path, csv: Path, shard_size: int, threads: int) -> float:
    config = {
        "sources": [{"name": "pcqm4mv2", "format": "pcqm4mv2_cxsmiles", "path": str(csv)}],
        "shards": {"shard_size": shard_size, "threads": threads},
        "conformers": {"method": "source", "reoptimize": "none", "threads": 1},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).with_name("snakemake")
    start = time.perf_counter()
    subprocess.run(
        [
            str(snakemake),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            str(threads),
            "--quiet",
        ],
        check=True,
        env=dict(os.environ, PATH=f"{snakemake.parent}{os.pathsep}{os.environ['PATH']}"),
    )
    return time.perf_counter() - start


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        times = [
            run_once(Path(d), args.csv.resolve(), args.shard_size, args.threads) for d in (a, b)
        ]
        shards_a, shards_b = (
            digests(Path(a) / "results/shards"),
            digests(Path(b) / "results/shards"),
        )
        print((Path(a) / "results/summary/stages.md").read_text())
        print(
            f"shard files: {sum(n.endswith('.parquet') for n in shards_a)} "
            f"(+ manifest, ledger); identical across runs: {shards_a == shards_b}"
        )
        print("wall time per full run (s): " + ", ".join(f"{t:.1f}" for t in times))
        if shards_a != shards_b:
            raise SystemExit("shard files differ between runs")


if __name__ == "__main__":
    main()
