"""Representation stores at 1,000 molecules: files, bytes, and data-loader-style random reads.

Builds voxels (48³ × 11, float16), point clouds (1,024 × 4) and images (6 RGB-D density views +
4 structure views, 224²) at the production settings for every molecule of the given density
stores (real densities: e.g. the psi4 PCQM4Mv2 cubes of ``store_formats_data.py`` imported with
``--cubes``), then writes each representation as one 1,000-molecule shard group whose rows
cycle through those molecules (ids distinct; every row a real representation, so compression
and read costs are those of real molecules). Reports files and MB per 1,000 molecules per
representation and in all, and reads molecules in random order with one worker as a training
loader does (one molecule's arrays → float32 torch tensors): molecules/s.

    .venv/bin/python benchmarks/representation_reads.py --cubes /tmp/formats/psi4
    .venv/bin/python benchmarks/representation_reads.py --stores results/density/psi4/*.zarr
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rhoflow import pointclouds, render, voxels
from rhoflow.config import section_settings
from rhoflow.store import disk_usage, find_cube_pairs, import_cubes
from rhoflow.zarrgroup import MoleculeGroupWriter, open_representation

N_ROWS = 1000


def replicate(group_path: Path, out: Path, n_rows: int) -> Path:
    """A group of ``n_rows`` molecules cycling through the rows of ``group_path``."""
    src = open_representation(group_path)
    with MoleculeGroupWriter(out, src.attrs["format"], {"source": str(group_path)}) as w:
        for name, array in src.arrays.items():
            w.array(name, array.shape[1:], array.dtype, tuple(array.metadata.dimension_names),
                    array.attrs["units"])
        rows = [src[i] for i in range(len(src))]
        for k in range(n_rows):
            w.add(f"{src.ids[k % len(src)]}#{k}", **rows[k % len(src)])
    return out


def random_reads(path: Path, seconds: float = 20.0) -> tuple[float, int]:
    """Molecules/s reading random molecules (all arrays → float32 tensors), one worker."""
    group = open_representation(path)
    order = np.random.default_rng(0).permutation(len(group))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds and n < len(order):
        rows = group[group.ids[order[n]]]
        _ = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in rows.items()}
        n += 1
    return n / (time.perf_counter() - start), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs="*", type=Path, default=[])
    parser.add_argument("--cubes", type=Path, help="folder of <id>_Dt.cube + <id>_ESP.cube")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    builders = {
        "voxels": (voxels.build_shard, section_settings("voxels")),
        "pointclouds": (
            pointclouds.build_shard, section_settings("pointclouds", {"n_points": 1024})
        ),
        "render": (render.build_shard, section_settings("render", {"size": args.image_size})),
    }
    with tempfile.TemporaryDirectory() as tmp:
        stores = list(args.stores)
        if args.cubes:
            stores.append(Path(tmp) / "imported.zarr")
            import_cubes(find_cube_pairs(args.cubes), stores[-1])
        total_files = total_bytes = 0
        for name, (build, settings) in builders.items():
            t0 = time.perf_counter()
            built = [Path(tmp) / f"{name}-{k}.zarr" for k in range(len(stores))]
            for store, out in zip(stores, built, strict=True):
                build(store, out, settings)
            build_s = time.perf_counter() - t0
            big = replicate(built[0], Path(tmp) / f"{name}-1000.zarr", N_ROWS)
            nbytes, files = disk_usage(big)
            total_files += files
            total_bytes += nbytes
            rate, n = random_reads(big)
            print(f"{name:12s} {files:3d} files, {nbytes / 1e6:8.1f} MB per {N_ROWS} molecules; "
                  f"random reads {rate:8.1f} molecules/s ({n} read, one worker); "
                  f"built {len(open_representation(built[0]))} real molecules in {build_s:.0f} s")
        print(f"{'all':12s} {total_files:3d} files, {total_bytes / 1e6:8.1f} MB per {N_ROWS} "
              "molecules")


if __name__ == "__main__":
    main()
