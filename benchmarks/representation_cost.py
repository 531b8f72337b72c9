"""Cost of every representation per molecule, against the psi4 time for the same molecules.

For each psi4 density shard store given, times :func:`rhoflow.render.build_shard` (six RGB-D
density views + four structure views, 224×224), :func:`rhoflow.voxels.build_shard` (48³, 11
channels) and :func:`rhoflow.pointclouds.build_shard` (1024 points), each writing its shard
group as the workflow rules do, and compares their sum with the psi4 wall time recorded in each
molecule's provenance (``wall_s``).

    .venv/bin/python benchmarks/representation_cost.py STORE.zarr [STORE.zarr ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rhoflow import pointclouds, render, voxels
from rhoflow.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path)
    args = parser.parse_args()
    builders = {"render": render.build_shard, "voxels": voxels.build_shard,
                "pointclouds": pointclouds.build_shard}
    seconds = dict.fromkeys(builders, 0.0)
    psi4_s, n = 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for store_path in args.stores:
            store = open_store(store_path)
            n += len(store)
            psi4_s += sum(store.metadata(i)["provenance"]["wall_s"] for i in store.ids)
            for name, build in builders.items():
                start = time.perf_counter()
                build(store_path, Path(tmp) / f"{name}-{store_path.name}")
                seconds[name] += time.perf_counter() - start
    print(f"{n} molecules; psi4 {psi4_s / n:.1f} s per molecule (provenance wall_s)")
    for name, s in seconds.items():
        print(f"{name:12s} {s / n:7.3f} s per molecule  {100 * s / psi4_s:6.2f} % of psi4")
    total = sum(seconds.values())
    print(f"{'all':12s} {total / n:7.3f} s per molecule  {100 * total / psi4_s:6.2f} % of psi4")


if __name__ == "__main__":
    main()
