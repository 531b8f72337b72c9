"""Random-access benchmark: read one molecule by id from a multi-shard store set.

Builds ``--shards`` x ``--per-shard`` molecules (default 8 x 128 = 1,024) of synthetic smooth
grids with PCQM4Mv2-like ragged shapes (40-70 points per axis at 0.4 bohr, ~190 k points),
each a sum of anisotropic Gaussians (density-like, positive) plus an ESP-like field with both
signs. Half of the shards hold native float32 values, half values rounded to six significant
digits as parsed from cube text (the two encoding paths of :mod:`rhoflow.store.codec`). It
writes the consolidated Parquet index, opens the dataset from it and times:

* ``open index``: :func:`open_dataset` on the Parquet index;
* ``get``: ``ds.get(id)`` (xarray DataArray with coordinates and attrs, density only) for
  random ids, first touching every shard (includes opening it), then warm;
* ``get, page cache evicted``: the same after ``posix_fadvise(DONTNEED)`` on every store
  file, so the bytes come from the disk;
  (the CPU time of the warm reads is printed too: on a shared machine wall time includes
  waiting for a core);
* ``dask pass``: ``ds.map(...)`` summing every density over all molecules.

Reports median, p95 and max per category, and bytes and files per 1,000 molecules.

    .venv/bin/python benchmarks/store_access.py [--shards 8] [--per-shard 128] [--reads 400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from rhoflow.result import DensityResult, Grid
from rhoflow.store import codec, disk_usage, open_dataset, write_index, write_store

SPACING = 0.4


def six_digits(values: np.ndarray) -> np.ndarray:
    """float32 of the values rounded to six significant digits (as cube text gives)."""
    mag = np.abs(values)
    exponent = np.floor(np.log10(np.where(mag > 0, mag, 1.0))).astype(np.int64)
    power = 5 - exponent
    sig = np.rint(mag * 10.0**power)
    out = np.where(
        power >= 0, sig / 10.0 ** np.maximum(power, 0), sig * 10.0 ** np.maximum(-power, 0)
    )
    return np.copysign(out, values).astype(np.float32)


def synthetic(mol_id: str, rng: np.random.Generator, decimal: bool) -> DensityResult:
    shape = tuple(int(n) for n in rng.integers(40, 71, size=3))
    origin = -0.5 * SPACING * (np.array(shape) - 1)
    axes = [origin[d] + SPACING * np.arange(shape[d]) for d in range(3)]
    n_atoms = int(rng.integers(8, 20))
    centres = rng.uniform(0.3, 0.7, (n_atoms, 3)) * (np.array(shape) * SPACING) + origin
    rho = np.zeros(shape)
    esp = np.zeros(shape)
    for c in centres:
        for alpha, weight in ((8.0, 20.0), (1.2, 1.0), (0.35, 0.05)):
            g = [np.exp(-alpha * (axes[d] - c[d]) ** 2) for d in range(3)]
            rho += weight * g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]
        q = rng.choice([-0.4, 0.2])
        g = [np.exp(-0.15 * (axes[d] - c[d]) ** 2) for d in range(3)]
        esp += q * g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]
    rho += 1e-7
    esp += 0.5 * rho
    if decimal:
        rho32, esp32 = six_digits(rho), six_digits(esp)
    else:
        rho32, esp32 = rho.astype(np.float32), esp.astype(np.float32)
    spacing = np.full(3, SPACING)
    return DensityResult(
        id=mol_id,
        atomic_numbers=rng.integers(1, 10, n_atoms),
        coords_bohr=centres,
        density=Grid(origin, spacing, rho32),
        esp=Grid(origin, spacing, esp32),
        labels={"gap_hartree": float(rng.uniform(0.1, 0.4))},
        provenance={"engine": "synthetic", "decimal": decimal},
    )


def build(root: Path, n_shards: int, per_shard: int) -> list[Path]:
    shards = []
    for k in range(n_shards):
        path = root / f"shard-{k:04d}.zarr"
        if not path.exists():
            rng = np.random.default_rng(k)
            results = (
                synthetic(f"syn-{k:04d}-{i:05d}", rng, decimal=k % 2 == 1) for i in range(per_shard)
            )
            write_store(path, results)
        shards.append(path)
    return shards


def evict(paths: list[Path]) -> None:
    """Drop the files' pages from the OS page cache (no root needed for clean pages)."""
    for root in paths:
        for folder, _, names in os.walk(root):
            for name in names:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def encoding(ds, mol_id: str) -> int:
    store, pos = ds.shard_store(mol_id)
    return int(store.encoding[pos, 0])


def stats(label: str, seconds: list[float]) -> None:
    ms = np.array(seconds) * 1e3
    print(
        f"{label:44s} n={ms.size:4d}  median {np.median(ms):6.2f} ms  "
        f"p95 {np.percentile(ms, 95):6.2f} ms  max {ms.max():6.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--per-shard", type=int, default=128)
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the stores in this directory")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="rhoflow-store-access-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    shards = build(root, args.shards, args.per_shard)
    build_s = time.perf_counter() - t0
    index = write_index(shards, root / "index.parquet")
    total, files = disk_usage(root)
    n = args.shards * args.per_shard
    print(
        f"{n} molecules in {len(shards)} shards (built in {build_s:.0f} s): "
        f"{total / 1e6:.0f} MB ({total / n * 1000 / 1e9:.2f} GB per 1,000 molecules), "
        f"{files - 1} store files = {(files - 1) / len(shards):.0f} per shard + the index"
    )

    t = time.perf_counter()
    ds = open_dataset(index)
    stats("open index (Parquet)", [time.perf_counter() - t])
    rng = np.random.default_rng(42)
    ids = [ds.ids[i] for i in rng.integers(0, len(ds), args.reads)]

    cpu: list[float] = []

    def timed(mol_ids: list[str]) -> list[float]:
        out = []
        for mol_id in mol_ids:
            t, c = time.perf_counter(), time.process_time()
            da = ds.get(mol_id)
            out.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            assert da.dtype == np.float32 and da.ndim == 3
        return out

    # One-off process costs (lazy imports, the decimal codec's tables) are not per read:
    # warm up on one float32-encoded and one decimal-encoded molecule.
    t = time.perf_counter()
    for mol_id in {ds.ids[0], ds.ids[min(args.per_shard, len(ds) - 1)]}:
        ds.get(mol_id)
    stats("first reads in this process (one-off)", [time.perf_counter() - t])
    ds = open_dataset(index)
    first_touch = []
    for shard in shards:  # one read per shard, each opening its shard first
        mol_id = next(i for i in ds.ids if ds.locate(i)[0] == shard)
        first_touch += timed([mol_id])
    stats("get, first read of a shard (opens it)", first_touch)
    cpu.clear()
    warm = timed(ids)
    stats("get, warm (random ids)", warm)
    stats("  CPU time of the same reads (all threads)", cpu)
    is_dec = [encoding(ds, i) in codec.DECIMAL_CODES for i in ids]
    stats("  of which float32 encodings", [s for s, d in zip(warm, is_dec, strict=True) if not d])
    stats("  of which decimal6 encodings", [s for s, d in zip(warm, is_dec, strict=True) if d])
    evict(shards)
    stats("get, page cache evicted (random ids)", timed(ids[:100]))
    t = time.perf_counter()
    _ = [ds.values(i) for i in ids]
    stats("values() without xarray, per molecule", [(time.perf_counter() - t) / len(ids)])

    t = time.perf_counter()
    electrons = ds.map(lambda da: float(da.values.sum(dtype=np.float64)) * SPACING**3)
    total_e = electrons.sum().compute(scheduler="threads", num_workers=2)
    dask_s = time.perf_counter() - t
    print(
        f"dask pass over {n} molecules (sum of density x voxel volume): {dask_s:.1f} s, "
        f"{n / dask_s:.0f} molecules/s, mean {total_e / n:.2f} e per grid"
    )
    codes: dict[str, int] = {}
    for mol_id in ds.ids:
        name = codec.ENCODINGS[encoding(ds, mol_id)]
        codes[name] = codes.get(name, 0) + 1
    print(f"density encodings chosen: {codes}")
    print(f"load average during the run: {os.getloadavg()} on {os.cpu_count()} CPUs")
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
