"""Storage of real psi4 densities: the Zarr store vs psi4's Dt.cube + ESP.cube text.

Runs psi4 (the rhoflow engine: cubeprop density + ESP on the EDBench grid, 0.4 bohr spacing,
4.0 bohr overage) on the first ``--n`` QM9 molecules of ../shared/data/qm9/micro_qm9.csv
(EDBench's size range; coordinates from rhoflow's ETKDG + MMFF94 conformers), writes
each molecule's grids as cube text in psi4's layout (what EDBench ships) and stores the same
molecules in one shard store. Prints bytes and files per 1,000 molecules (extrapolated) for
both, and checks every stored value equals the cube's float32 value bit for bit.

The cube size and the compressibility depend on the grid and the smoothness of the fields,
not on the method: ``--method hf --basis sto-3g`` (default) keeps this affordable on 2 cores.

    .venv/bin/python benchmarks/store_size_psi4.py [--n 50] [--workers 2]
    .venv/bin/python benchmarks/store_size_psi4.py --stores results/density/psi4/*.zarr

``--stores`` skips psi4 and re-measures molecules already computed by the workflow (e.g. the
PCQM4Mv2 B3LYP/6-31G** stores of ``representation_cost.py --pcqm``): their values are the
cube values psi4 wrote, bit for bit.
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from rhoflow.conformers import generate_shard
from rhoflow.cube import read_cube, write_cube
from rhoflow.density import iter_shard
from rhoflow.ledger import LedgerRow
from rhoflow.molecule import from_rdkit
from rhoflow.sources import FORMATS
from rhoflow.store import disk_usage, open_store, write_store
from rhoflow.store.layout import SHARD_VALUES

REPO = Path(__file__).resolve().parents[1]
CSV = REPO.parent / "shared/data/qm9/micro_qm9.csv"
CONFORMERS = {"method": "etkdg", "n_conformers": 10, "seed": 42, "rms_prune_angstrom": 0.1,
              "k_lowest": 1, "reoptimize": "none", "timeout_s": 60}


def molecules(n: int):
    """The first ``n`` QM9 molecules with ETKDG + MMFF94 coordinates (Å)."""
    fmt = FORMATS["qm9_csv"]
    out = []
    for entry in itertools.islice(fmt.read_raw(CSV, {}), n):
        record = fmt.parse(entry, {})
        if record.failure is None:
            out.append(from_rdkit(f"qm9:{entry.native_id}", record.mol))
    return generate_shard(out, CONFORMERS)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--method", default="hf")
    parser.add_argument("--basis", default="sto-3g")
    parser.add_argument("--stores", nargs="*", type=Path, default=[])
    args = parser.parse_args()
    settings = {"method": args.method, "basis": args.basis, "timeout_s": 1800}
    start = time.perf_counter()
    if args.stores:
        results = [open_store(p).result(i) for p in args.stores for i in open_store(p).ids]
        args.method, args.basis = (results[0].provenance.get(k, "?") for k in ("method", "basis"))
    else:
        results = list(iter_shard("psi4", molecules(args.n), settings, args.workers, 1))
    failed = [r for r in results if isinstance(r, LedgerRow)]
    done = [r for r in results if not isinstance(r, LedgerRow)]
    psi4_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        cube_dir = Path(tmp) / "cubes"
        cube_dir.mkdir()
        for r in done:
            stem = r.id.replace(":", "_")
            write_cube(cube_dir / f"{stem}_Dt.cube", r.atomic_numbers, r.coords_bohr, r.density)
            write_cube(cube_dir / f"{stem}_ESP.cube", r.atomic_numbers, r.coords_bohr, r.esp)
        cube_bytes, cube_files = disk_usage(cube_dir)
        start = time.perf_counter()
        write_store(Path(tmp) / "shard.zarr", done)
        write_s = time.perf_counter() - start
        store_bytes, store_files = disk_usage(Path(tmp) / "shard.zarr")
        store = open_store(Path(tmp) / "shard.zarr")
        for r in done:
            stem = r.id.replace(":", "_")
            for field, suffix in (("density", "Dt"), ("esp", "ESP")):
                text = read_cube(cube_dir / f"{stem}_{suffix}.cube")[2].values.astype(np.float32)
                assert np.array_equal(store.values(r.id, field), text), (r.id, field)
    n = len(done)
    points = sum(int(np.prod(r.density.values.shape)) for r in done)
    print(f"psi4 {args.method}/{args.basis}: {n} molecules ({len(failed)} failed), "
          f"{points / n:,.0f} grid points per molecule"
          + ("" if args.stores else f", {psi4_s / max(n, 1):.1f} s per molecule"))
    per_k = 1000 / n
    print(f"cube text  : {cube_bytes * per_k / 1e9:.3f} GB, {cube_files * per_k:,.0f} files "
          "per 1,000 molecules")
    # a shard store has 23 fixed files plus, per field, one file per SHARD_VALUES words
    words = store.offsets[-1]
    files_k = 23 + sum(math.ceil(w * per_k / SHARD_VALUES) for w in words)
    print(f"zarr store : {store_bytes * per_k / 1e9:.3f} GB per 1,000 molecules, {store_files} "
          f"files for this shard, {files_k} for one 1,000-molecule shard")
    print(f"ratio      : {cube_bytes / store_bytes:.2f}x smaller; values bit-exact: yes; "
          f"store write {write_s / n:.2f} s per molecule")


if __name__ == "__main__":
    main()
