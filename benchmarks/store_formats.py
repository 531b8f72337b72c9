"""Density storage side by side: the float32 Zarr store, the previous encoded store, cube text.

For each data set made by ``store_formats_data.py`` (real psi4 B3LYP/6-31G** densities of
PCQM4Mv2 molecules on the EDBench grid, as psi4's cube text; real pyscf RHF/STO-3G 32³ and 64³
box grids, as the float32 the engine returned) it stores the same molecules as

(a) the current store (plain float32, Blosc zstd + byte shuffle; and, for the choice of codec,
    the same layout with Blosc bit-shuffle, Zstd alone and pcodec when installed),
(b) the previous store format (custom predictive codec; from a checkout of the commit before
    it was replaced, ``--old-src CHECKOUT/src``, run in a subprocess),
(c) Gaussian cube text (density + ESP cubes, psi4's layout),

checks every stored value equals the input bit for bit, and prints bytes per molecule, files
per 1,000 molecules and the median / p95 time to read one molecule's density (one shard open,
warm page cache, every molecule read ``--repeat`` times in random order).

    .venv/bin/python benchmarks/store_formats.py --data /tmp/formats --old-src /tmp/old/src
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rhoflow.cube import read_cube, write_cube
from rhoflow.result import DensityResult, Grid
from rhoflow.store import disk_usage, open_store, write_store
from rhoflow.store.cubes import find_cube_pairs
from rhoflow.store.layout import SHARD_POINTS

OLD_SCRIPT = r"""
import json, sys, time, numpy as np
from pathlib import Path
from rhoflow.store import open_store, write_store, disk_usage
from rhoflow.density.result import DensityResult, Grid
from rhoflow.cube import read_cube
kind, out, repeat, files = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]

def load(f):
    if kind == "cube":
        dens, esp = f.split("|")
        z, xyz, d = read_cube(dens); _, _, e = read_cube(esp)
        d.values = d.values.astype(np.float32); e.values = e.values.astype(np.float32)
        return DensityResult(Path(dens).name, z, xyz, d, e)
    a = np.load(f)
    grid = lambda v: Grid(a["origin_bohr"], a["spacing_bohr"], v)
    return DensityResult(Path(f).name, a["atomic_numbers"], a["coords_bohr"],
                         grid(a["density"]), grid(a["esp"]))

results = [load(f) for f in files]
t0 = time.perf_counter(); write_store(out, results); write_s = time.perf_counter() - t0
store = open_store(out)
for r in results:
    assert np.array_equal(store.values(r.id).view(np.uint32), r.density.values.view(np.uint32))
    assert np.array_equal(store.values(r.id, "esp").view(np.uint32), r.esp.values.view(np.uint32))
order = np.random.default_rng(0).permutation(np.repeat(np.arange(len(results)), repeat))
times = []
for i in order:
    t0 = time.perf_counter(); store.values(results[i].id); times.append(time.perf_counter() - t0)
print(json.dumps({"bytes": disk_usage(out)[0], "files": disk_usage(out)[1], "times": times,
                  "write_s": write_s, "words": store.offsets[-1].tolist()}))
"""


def load_psi4(folder: Path) -> tuple[list[DensityResult], list[str]]:
    """Cube pairs → results (float32 of the cube text), and the pairs as ``dens|esp``."""
    results, files = [], []
    for dens, esp in find_cube_pairs(folder):
        numbers, coords, d = read_cube(dens)
        _, _, e = read_cube(esp)
        d.values, e.values = d.values.astype(np.float32), e.values.astype(np.float32)
        results.append(DensityResult(dens.name, numbers, coords, d, e))
        files.append(f"{dens}|{esp}")
    return results, files


def load_npz(folder: Path) -> tuple[list[DensityResult], list[str]]:
    """``.npz`` grids (float32 as the engine returned) → results."""
    results, files = [], []
    for path in sorted(folder.glob("*.npz")):
        a = np.load(path)
        grid = [Grid(a["origin_bohr"], a["spacing_bohr"], a[k]) for k in ("density", "esp")]
        results.append(DensityResult(path.name, a["atomic_numbers"], a["coords_bohr"], *grid))
        files.append(str(path))
    return results, files


def read_times(read: Callable[[int], np.ndarray], n: int, repeat: int) -> list[float]:
    order = np.random.default_rng(0).permutation(np.repeat(np.arange(n), repeat))
    times = []
    for i in order:
        t0 = time.perf_counter()
        read(int(i))
        times.append(time.perf_counter() - t0)
    return times


def row(name: str, n: int, nbytes: int, files_per_k: float, times: list[float]) -> str:
    t = np.asarray(times) * 1e3
    return (f"  {name:34s} {nbytes / n / 1e6:8.3f} MB/mol {files_per_k:7.0f} files/1k "
            f"{np.median(t):8.2f} ms median {np.percentile(t, 95):8.2f} ms p95")


def store_files_per_k(points_per_mol: float) -> int:
    """Files of one 1,000-molecule shard store: 23 metadata/table files + value shards."""
    return 23 + 2 * math.ceil(points_per_mol * 1000 / SHARD_POINTS)


def codecs() -> dict[str, object]:
    from zarr.codecs import BloscCodec, ZstdCodec

    out: dict[str, object] = {
        "blosc zstd5 byte-shuffle (chosen)": None,
        "blosc zstd5 bit-shuffle": {
            "compressors": [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]
        },
        "zstd5": {"compressors": [ZstdCodec(level=5)]},
    }
    try:
        import pcodec  # noqa: F401
        from numcodecs.zarr3 import PCodec

        out["pcodec level 8 (numcodecs)"] = {"serializer": PCodec(level=8), "compressors": None}
    except ImportError:
        pass
    return out


def bench(name: str, results: list[DensityResult], files: list[str], kind: str,
          old_src: Path | None, repeat: int, tmp: Path) -> None:
    n = len(results)
    points = sum(r.density.values.size for r in results) / n
    print(f"\n{name}: {n} molecules, {points:,.0f} grid points each (density + ESP)")
    for label, comp in codecs().items():
        path = tmp / f"{name}-{len(label)}.zarr"
        t0 = time.perf_counter()
        write_store(path, results, encoding=comp)
        write_s = time.perf_counter() - t0
        store = open_store(path)
        for r in results:
            assert np.array_equal(store.values(r.id).view(np.uint32),
                                  r.density.values.view(np.uint32))
            assert np.array_equal(store.values(r.id, "esp").view(np.uint32),
                                  r.esp.values.view(np.uint32))
        times = read_times(lambda i, s=store: s.values(results[i].id), n, repeat)
        nbytes = disk_usage(path)[0]
        print(row(f"(a) {label}", n, nbytes, store_files_per_k(points), times)
              + f"  write {write_s / n:.2f} s/mol")
    if old_src is not None:
        out = tmp / f"{name}-old.zarr"
        env = dict(os.environ, PYTHONPATH=str(old_src))
        proc = subprocess.run([sys.executable, "-c", OLD_SCRIPT, kind, str(out), str(repeat),
                               *files], env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            print(proc.stderr[-2000:])
            raise SystemExit("the previous store failed")
        old = json.loads(proc.stdout.splitlines()[-1])
        files_k = 23 + sum(math.ceil(w * 1000 / n / (1 << 26)) for w in old["words"])
        print(row("(b) previous encoded store", n, old["bytes"], files_k, old["times"])
              + f"  write {old['write_s'] / n:.2f} s/mol")
    cube_dir = tmp / f"{name}-cubes"
    cube_dir.mkdir()
    paths = []
    for r in results:
        for field, grid in (("Dt", r.density), ("ESP", r.esp)):
            path = cube_dir / f"{r.id}_{field}.cube"
            write_cube(path, r.atomic_numbers, r.coords_bohr, grid)
            paths.append(path)
    nbytes, nfiles = disk_usage(cube_dir)
    if kind == "cube":  # the cubes psi4 wrote are the ones we wrote: same text, same bytes
        nbytes = sum(os.path.getsize(p) for f in files for p in f.split("|"))
    times = read_times(lambda i: read_cube(paths[2 * i])[2].values, n, max(1, repeat // 5))
    print(row("(c) cube text (density + ESP)", n, nbytes, nfiles / n * 1000, times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="store_formats_data.py workdir")
    parser.add_argument("--old-src", type=Path, help="src/ of a checkout of the previous store")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    sets = [("psi4 PCQM4Mv2 B3LYP/6-31G** (cube text)", load_psi4, "psi4", "cube")]
    sets += [(f"pyscf RHF/STO-3G {p.name[5:]}^3 box (float32)", load_npz, p.name, "npz")
             for p in sorted(args.data.glob("pyscf*"))]
    with tempfile.TemporaryDirectory() as tmp:
        for name, load, folder, kind in sets:
            if not (args.data / folder).is_dir():
                continue
            results, files = load(args.data / folder)
            if results:
                bench(folder, results, files, kind, args.old_src,
                      args.repeat, Path(tmp))
                print(f"  ({name})")


if __name__ == "__main__":
    main()
