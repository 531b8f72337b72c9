"""Real densities for ``store_formats.py``: psi4 cube text and pyscf box grids, computed once.

psi4 (the rhoflow engine, B3LYP/6-31G** on the EDBench grid: 0.4 bohr spacing, 4.0 bohr
overage) on the first ``--psi4 N`` molecules of ../shared/data/pcqm4mv2/ at their given DFT
coordinates: ``<workdir>/psi4/<id>_Dt.cube`` + ``<id>_ESP.cube``, exactly the text psi4 wrote.
pyscf (RHF/STO-3G, the 3DGrid-VQGAN setting; density-fitted ESP, the engine default) on
``box_points``³ boxes for the first ``--pyscf N`` molecules: ``<workdir>/pyscf<n>/<id>.npz``
with float32 ``density`` and ``esp`` [n, n, n] and float64 ``origin_bohr``, ``spacing_bohr``,
``atomic_numbers``, ``coords_bohr`` (what the engine returned; cube text rounds to 6 digits).

    .venv/bin/python benchmarks/store_formats_data.py --workdir /tmp/formats --psi4 20 --pyscf 20

Molecules already present are not recomputed.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from rhoflow.config import section_settings
from rhoflow.cube import write_cube
from rhoflow.density import iter_shard
from rhoflow.ledger import LedgerRow
from rhoflow.molecule import from_rdkit
from rhoflow.sources import FORMATS

REPO = Path(__file__).resolve().parents[1]
PCQM = REPO.parent / "shared/data/pcqm4mv2/pcqm4mv2_first1000.csv"


def pcqm_molecules(n: int) -> list:
    """The first ``n`` PCQM4Mv2 molecules with their source coordinates (Å)."""
    fmt = FORMATS["pcqm4mv2_cxsmiles"]
    out = []
    for entry in itertools.islice(fmt.read_raw(PCQM, {}), n):
        record = fmt.parse(entry, {})
        if record.failure is None:
            out.append(from_rdkit(f"pcqm:{entry.native_id}", record.mol))
    return out


def stem(mol_id: str) -> str:
    return mol_id.replace(":", "_")


def run(engine: str, molecules: list, settings: dict, outdir: Path, workers: int) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    todo = [m for m in molecules if not any(outdir.glob(f"{stem(m.id)}*"))]
    start = time.perf_counter()
    completed = section_settings(f"density.{engine}", settings)
    for item in iter_shard(engine, todo, completed, workers, 1):
        if isinstance(item, LedgerRow):
            print(f"{item.id}: {item.reason}: {item.message}")
            continue
        s = stem(item.id)
        if engine == "psi4":
            write_cube(outdir / f"{s}_Dt.cube", item.atomic_numbers, item.coords_bohr,
                       item.density)
            write_cube(outdir / f"{s}_ESP.cube", item.atomic_numbers, item.coords_bohr,
                       item.esp)
        else:
            np.savez(
                outdir / f"{s}.npz",
                density=item.density.values.astype(np.float32),
                esp=item.esp.values.astype(np.float32),
                origin_bohr=item.density.origin_bohr,
                spacing_bohr=item.density.spacing_bohr,
                atomic_numbers=item.atomic_numbers,
                coords_bohr=item.coords_bohr,
            )
    print(f"{engine} -> {outdir}: {len(todo)} computed in {time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--psi4", type=int, default=20)
    parser.add_argument("--pyscf", type=int, default=20)
    parser.add_argument("--box", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for n in args.box:
        settings = {"method": "hf", "basis": "sto-3g", "grid": "box", "box_points": n,
                    "timeout_s": 3600}
        run("pyscf", pcqm_molecules(args.pyscf), settings, args.workdir / f"pyscf{n}",
            args.workers)
    if args.psi4:
        settings = {"method": "b3lyp", "basis": "6-31g**", "timeout_s": 3600}
        run("psi4", pcqm_molecules(args.psi4), settings, args.workdir / "psi4", args.workers)


if __name__ == "__main__":
    main()
