"""Element-channel voxel grids: rhoflow vs libmolgrid's CPU ``GridMaker``, grids per second.

Both make the 8 element channels (H, C, N, O, F, S, Cl, other) of every molecule of a graphium
PCQM4Mv2 CSV (coordinates in Å from the CXSMILES, explicit H) in a 48³ box of 0.5 Å voxels
(24 Å edge; molgrid ``dimension=23.5``, its edge measured between the outer voxel centres)
centred on the centroid, into a preallocated float32 buffer:

* rhoflow: :class:`rhoflow.voxels.AtomGridder` (batches of ``--batch`` molecules; Gaussian
  σ = 0.5 Å on the 5³ nearest voxels). It resets only the voxels it wrote for the previous
  batch, where molgrid zeroes its whole grid (3.5 MB) per molecule, which is most of molgrid's
  time; for reference the row ``rhoflow-new`` times :func:`rhoflow.voxels.atom_channels`, one
  freshly zeroed array per molecule;
* molgrid: ``GridMaker.forward`` per molecule with a ``CoordinateSet`` built from the type
  indices (the same 8-way element typing, H included) and atom radius 1.0 Å: molgrid's density
  ``exp(-2 d² / r²)`` is then the same Gaussian (σ = r / 2 = 0.5 Å), cut off at d = r.

molgrid needs numpy < 2, so it runs in its own interpreter (``--molgrid-python``, e.g. a venv
made by ``python3 -m venv /tmp/molgrid-venv && /tmp/molgrid-venv/bin/pip install molgrid
"numpy<2"``), as a subprocess reading the coordinates from an .npz file. Each side times
``--repeats`` passes over all molecules (after one warm-up pass); the two sides alternate so
that load from other processes hits both alike. Reported: best and median grids per second.

    .venv/bin/python benchmarks/voxels_vs_molgrid.py [CSV] --molgrid-python PYTHON
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rhoflow.config import section_settings
from rhoflow.voxels import ANGSTROM_PER_BOHR, ELEMENTS, AtomGridder, atom_channels, element_channel

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared/data/pcqm4mv2/pcqm4mv2_first1000.csv"
VOXELS = {k: v for k, v in section_settings("voxels").items() if k != "engine"}
"""The default voxel settings, completed as ``rhoflow voxels`` completes them."""

MOLGRID_SCRIPT = r"""
import json, sys, time
import numpy as np
import molgrid

data = dict(np.load(sys.argv[1]))
repeats = int(sys.argv[2])
offsets = np.concatenate([[0], np.cumsum(data["counts"])])
coords = data["coords"].astype(np.float32)
types = data["types"].astype(np.float32)
ntypes = int(data["ntypes"])
maker = molgrid.GridMaker(resolution=0.5, dimension=23.5)
dims = maker.grid_dimensions(ntypes)
grid = molgrid.MGrid4f(*dims)
sums = np.zeros(ntypes)

def one_pass(check=False):
    for i in range(len(offsets) - 1):
        c = coords[offsets[i]:offsets[i + 1]]
        t = types[offsets[i]:offsets[i + 1]]
        cs = molgrid.CoordinateSet(c, t, np.ones(len(t), np.float32), ntypes)
        maker.forward(tuple(c.mean(axis=0).tolist()), cs, grid.cpu())
        if check:
            sums[:] += grid.tonumpy().sum(axis=(1, 2, 3))

one_pass(check=True)
times = []
for _ in range(repeats):
    start = time.perf_counter()
    one_pass()
    times.append(time.perf_counter() - start)
print(json.dumps({"times": times, "dims": list(dims), "channel_sums": sums.tolist()}))
"""


def load_molecules(csv_path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(atomic_numbers, coords_angstrom)`` of every row's CXSMILES (atoms as written)."""
    import csv

    from rdkit import Chem

    params = Chem.SmilesParserParams()
    params.removeHs = False
    params.sanitize = False
    molecules = []
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            mol = Chem.MolFromSmiles(row["smiles"], params)
            numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()])
            molecules.append((numbers, mol.GetConformer().GetPositions()))
    return molecules


def time_rhoflow(
    molecules: list[tuple[np.ndarray, np.ndarray]], batch: int
) -> tuple[float, np.ndarray]:
    """Seconds for one pass over ``molecules`` and the per-channel sums of all grids."""
    gridder = AtomGridder(VOXELS, batch_size=batch)
    sums = np.zeros(len(ELEMENTS))
    for i in range(0, len(molecules), batch):  # warm-up: touch the buffer, check sums
        sums += gridder(molecules[i : i + batch]).sum(axis=(0, 2, 3, 4))
    start = time.perf_counter()
    for i in range(0, len(molecules), batch):
        gridder(molecules[i : i + batch])
    return time.perf_counter() - start, sums


def time_rhoflow_new(molecules: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Seconds for one pass of :func:`atom_channels` (a new array per molecule)."""
    bohr = [(z, x / ANGSTROM_PER_BOHR) for z, x in molecules]
    start = time.perf_counter()
    for numbers, coords in bohr:
        atom_channels(numbers, coords, VOXELS)
    return time.perf_counter() - start


def time_molgrid(python: str, npz: Path, repeats: int) -> dict:
    """Run the molgrid half in ``python``; its JSON report."""
    done = subprocess.run(
        [python, "-c", MOLGRID_SCRIPT, str(npz), str(repeats)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--molgrid-python", default="/tmp/molgrid-venv/bin/python")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per side")
    parser.add_argument("--batch", type=int, default=32, help="rhoflow molecules per call")
    args = parser.parse_args()

    molecules = load_molecules(args.csv)
    counts = np.array([len(z) for z, _ in molecules])
    types = np.concatenate([element_channel(z) for z, _ in molecules])
    expected = np.bincount(types, minlength=len(ELEMENTS)).astype(float)
    print(f"{len(molecules)} molecules, {counts.sum()} atoms, box 48^3 x 0.5 A, 8 channels")

    rho_times: list[float] = []
    new_times: list[float] = []
    mg_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "molecules.npz"
        np.savez(
            npz,
            counts=counts,
            coords=np.concatenate([x for _, x in molecules]),
            types=types,
            ntypes=len(ELEMENTS),
        )
        for _ in range(args.repeats):  # alternate the sides
            seconds, rho_sums = time_rhoflow(molecules, args.batch)
            rho_times.append(seconds)
            new_times.append(time_rhoflow_new(molecules))
            report = time_molgrid(args.molgrid_python, npz, 1)
            mg_times.extend(report["times"])
    n = len(molecules)
    print(f"molgrid grid dims {report['dims']}")
    print(f"channel sums / atom counts, rhoflow: {np.round(rho_sums / np.maximum(expected, 1), 4)}")
    print("  (molgrid's grids are not normalised: its sums are ~14.5 per atom at r = 1 A)")
    rows = {"rhoflow": rho_times, "rhoflow-new": new_times, "molgrid": mg_times}
    rates = {}
    for name, times in rows.items():
        best, median = n / min(times), n / statistics.median(times)
        rates[name] = (best, median)
        print(
            f"{name:11s} grids/s: best {best:9.0f}   median {median:9.0f}   ({len(times)} passes)"
        )
    for name in ("rhoflow", "rhoflow-new"):
        print(
            f"ratio {name}/molgrid: best {rates[name][0] / rates['molgrid'][0]:.2f}x, "
            f"median {rates[name][1] / rates['molgrid'][1]:.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
