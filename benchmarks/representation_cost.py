"""Cost of every representation per molecule, against the psi4 time for the same molecules.

For each psi4 density shard store given, times :func:`rhoflow.render.build_shard` (six RGB-D
density views + four structure views, 224×224), :func:`rhoflow.voxels.build_shard` (48³, 11
channels) and :func:`rhoflow.pointclouds.build_shard` (1024 points), each writing its shard
group as the workflow rules do, and compares their sum with the psi4 wall time recorded in each
molecule's provenance (``wall_s``).

    .venv/bin/python benchmarks/representation_cost.py STORE.zarr [STORE.zarr ...]
    .venv/bin/python benchmarks/representation_cost.py --pcqm 20 --workdir /tmp/costrun

``--pcqm N`` first builds the stores: the workflow (snakemake, psi4 B3LYP/6-31G** with the
EDBench grid, the rhoflow defaults) on the first N molecules of
../shared/data/pcqm4mv2/pcqm4mv2_first1000.csv at their given coordinates, two molecules at a
time with one thread each, in ``--workdir`` (kept, so a rerun only times the representations).
Representations run one molecule at a time on one core, at the production settings.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from rhoflow import pointclouds, render, voxels
from rhoflow.config import section_settings
from rhoflow.store import open_store

REPO = Path(__file__).resolve().parents[1]
PCQM = REPO.parent / "shared/data/pcqm4mv2/pcqm4mv2_first1000.csv"


def build_pcqm_stores(n: int, workdir: Path) -> list[Path]:
    """psi4 density stores of the first ``n`` PCQM4Mv2 molecules, through the workflow."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "sources": [{"name": "pcqm", "format": "pcqm4mv2_cxsmiles", "path": str(PCQM),
                     "limit": n}],
        "shards": {"shard_size": 10, "threads": 1},
        "conformers": {"method": "source", "reoptimize": "none", "threads": 1},
        "density": {"engines": ["psi4"], "threads": 2, "workers": 2},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).with_name("snakemake")
    subprocess.run(
        [str(snakemake), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--cores", "2", "results/density/psi4/index.parquet"],
        check=True,
        env=dict(os.environ, PATH=f"{snakemake.parent}{os.pathsep}{os.environ['PATH']}"),
    )
    return sorted((workdir / "results/density/psi4").glob("*.zarr"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="*", type=Path)
    parser.add_argument("--pcqm", type=int, help="build psi4 stores of N PCQM4Mv2 molecules")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rhoflow-cost"))
    args = parser.parse_args()
    if args.pcqm:
        args.stores += build_pcqm_stores(args.pcqm, args.workdir)
    if not args.stores:
        parser.error("give density stores or --pcqm N")
    builders = {"render": render.build_shard, "voxels": voxels.build_shard,
                "pointclouds": pointclouds.build_shard}
    seconds = dict.fromkeys(builders, 0.0)
    failed = dict.fromkeys(builders, 0)
    psi4_s, n, points = 0.0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for store_path in args.stores:
            store = open_store(store_path)
            n += len(store)
            psi4_s += sum(store.metadata(i)["provenance"]["wall_s"] for i in store.ids)
            points += int(store.shape.prod(axis=1).sum())
            for name, build in builders.items():
                start = time.perf_counter()
                out = Path(tmp) / f"{name}-{store_path.name}"
                failed[name] += len(build(store_path, out, section_settings(name)))
                seconds[name] += time.perf_counter() - start
    print(f"{n} molecules, {points / n:,.0f} density grid points each on average; psi4 "
          f"{psi4_s / n:.1f} s per molecule (provenance wall_s, one thread)")
    print("ledgered: " + ", ".join(f"{k} {v}" for k, v in failed.items()))
    for name, s in seconds.items():
        print(f"{name:12s} {s / n:7.3f} s per molecule  {100 * s / psi4_s:6.2f} % of psi4")
    total = sum(seconds.values())
    print(f"{'all':12s} {total / n:7.3f} s per molecule  {100 * total / psi4_s:6.2f} % of psi4")


if __name__ == "__main__":
    main()
