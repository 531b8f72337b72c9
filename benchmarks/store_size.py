"""Storage benchmark: density store vs psi4-style cube text for the same grids.

For the first ``--n`` PCQM4Mv2 molecules (coordinates from the CSV's CXSMILES) it builds the
psi4 ``cubeprop`` grid (0.4 bohr spacing, 4 bohr overage, :func:`cubeprop_grid`) and two
smooth model fields on it:

* a density: sum of Slater-type atomic shell densities (Slater's-rules exponents;
  1s, 2sp and 3sp shells, normalised to the electron count), e/bohr^3;
* an ESP-like potential: neutral-atom screened nuclear potentials plus damped Coulomb
  potentials of electronegativity-based partial charges (net charge 0, so the far field is
  dipolar and changes sign), hartree/e.

It writes each molecule as ``<id>_Dt.cube`` + ``<id>_ESP.cube`` with
:func:`rhoflow.cube.write_cube` (the psi4/EDBench text layout, E13.5), and stores the same
grids three ways:

``cube-derived``
    the float32 values parsed back from that cube text (what a psi4 engine path, or importing
    EDBench cubes, hands the store). Lossless here means: the same float32 bits, which are a
    function of the six printed digits; the decimal encodings keep exactly those digits.
``native float32``
    the fields computed in float64 and rounded once to float32 (what an engine evaluating the
    density on the grid itself, e.g. pyscf, hands the store). All 24 significand bits are
    kept; this holds more information than the 6-digit cube text it is compared with.
``raw float32``
    the cube-derived values with the predictive encodings disabled (plain float32 bits,
    Blosc/zstd + byte shuffle), the baseline the encodings improve on.

Every stored molecule is read back and compared bit for bit. Bytes and files are extrapolated
to 1,000 molecules (files: 23 fixed + one per ``shard_values`` words per field, with the
default 2**26). Also prints gzip -6 of the cube text, for context.

    .venv/bin/python benchmarks/store_size.py [--n 60] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rdkit import Chem
from scipy.special import erf

from rhoflow.cube import read_cube, write_cube
from rhoflow.density.grid import cubeprop_grid
from rhoflow.result import DensityResult, Grid
from rhoflow.store import codec, disk_usage, open_store, write_store
from rhoflow.store.layout import SHARD_VALUES

REPO = Path(__file__).resolve().parents[1]
CSV = REPO.parent / "shared/data/pcqm4mv2/pcqm4mv2_first1000.csv"
BOHR_PER_ANGSTROM = 1.0 / 0.529177210903
BASE_FILES = 23

PARTIAL_CHARGE = {1: 0.12, 6: 0.0, 7: -0.35, 8: -0.45, 9: -0.25, 15: 0.2, 16: -0.15, 17: -0.2}


def pcqm_molecules(n: int, path: Path = CSV) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(id, atomic numbers, coords in bohr)`` of the first ``n`` molecules."""
    params = Chem.SmilesParserParams()
    params.removeHs = False
    out = []
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if len(out) == n:
                break
            mol = Chem.MolFromSmiles(row["smiles"], params)
            if mol is None or mol.GetNumConformers() == 0:
                continue
            numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
            coords = mol.GetConformer().GetPositions() * BOHR_PER_ANGSTROM
            out.append((f"pcqm-{i:07d}", numbers, coords))
    return out


def _shells(z: int) -> list[tuple[int, int, float]]:
    """``(n, electrons, zeta)`` per shell by Slater's rules (1s, 2sp, 3sp; Z <= 18)."""
    if z <= 2:
        return [(1, z, z - 0.30 * (z - 1))]
    first = [(1, 2, z - 0.30)]
    if z <= 10:
        return first + [(2, z - 2, (z - 1.70 - 0.35 * (z - 3)) / 2)]
    return first + [
        (2, 8, (z - 2.0 * 0.85 - 7 * 0.35) / 2),
        (3, z - 10, (z - 2.0 - 6.8 - 0.35 * (z - 11)) / 3),
    ]


def _sto_density(n: int, zeta: float, r: np.ndarray) -> np.ndarray:
    """Spherical density of one electron in a normalised Slater orbital (bohr^-3)."""
    norm = (2 * zeta) ** (2 * n + 1) / (4 * math.pi * math.factorial(2 * n))
    return norm * r ** (2 * n - 2) * np.exp(-2 * zeta * r)


def model_fields(numbers: np.ndarray, coords: np.ndarray, shape, origin, spacing):
    """(density e/bohr^3, ESP-like hartree/e) on the grid, float64."""
    axes = [origin[d] + np.arange(shape[d]) * spacing[d] for d in range(3)]
    rho = np.zeros(shape)
    esp = np.zeros(shape)
    charges = np.array([PARTIAL_CHARGE.get(int(z), 0.0) for z in numbers])
    charges -= charges.mean()
    for z, pos, q in zip(numbers, coords, charges, strict=True):
        d2 = [(axes[d] - pos[d]) ** 2 for d in range(3)]
        r = np.sqrt(d2[0][:, None, None] + d2[1][None, :, None] + d2[2][None, None, :])
        r = np.maximum(r, 1e-6)
        shells = _shells(int(min(z, 18)))
        for n, electrons, zeta in shells:
            rho += electrons * _sto_density(n, zeta, r)
        zeta_v = shells[-1][2]
        esp += z * np.exp(-2 * zeta_v * r) * (1 / r + zeta_v) + q * erf(r / 0.8) / r
    return rho, esp


def text_values(path: Path) -> np.ndarray:
    return read_cube(path)[2].values.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60, help="molecules (default 60)")
    parser.add_argument("--keep", type=Path, help="keep cubes and stores in this directory")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="rhoflow-store-size-"))
    cubes = work / "cubes"
    cubes.mkdir(parents=True, exist_ok=True)
    molecules = pcqm_molecules(args.n)
    native: list[DensityResult] = []
    points = 0
    t0 = time.perf_counter()
    for mol_id, numbers, coords in molecules:
        spec = cubeprop_grid(coords, 0.4, 4.0)
        origin, spacing = np.array(spec.origin_bohr), np.array(spec.spacing_bohr)
        rho, esp = model_fields(numbers, coords, spec.shape, origin, spacing)
        write_cube(cubes / f"{mol_id}_Dt.cube", numbers, coords, Grid(origin, spacing, rho))
        write_cube(cubes / f"{mol_id}_ESP.cube", numbers, coords, Grid(origin, spacing, esp))
        native.append(
            DensityResult(
                mol_id,
                numbers,
                coords,
                Grid(origin, spacing, rho.astype(np.float32)),
                Grid(origin, spacing, esp.astype(np.float32)),
                provenance={"engine": "slater-model", "grid": "cubeprop 0.4/4.0"},
            )
        )
        points += rho.size
    print(
        f"{len(molecules)} molecules, {points / len(molecules):,.0f} points per grid on average"
        f" (fields + cubes in {time.perf_counter() - t0:.0f} s)"
    )

    def cube_derived():
        for r in native:
            yield DensityResult(
                r.id,
                r.atomic_numbers,
                r.coords_bohr,
                Grid(
                    r.density.origin_bohr,
                    r.density.spacing_bohr,
                    text_values(cubes / f"{r.id}_Dt.cube"),
                ),
                Grid(
                    r.esp.origin_bohr, r.esp.spacing_bohr, text_values(cubes / f"{r.id}_ESP.cube")
                ),
                provenance=r.provenance,
            )

    cube_bytes, cube_files = disk_usage(cubes)
    gz = sum(len(gzip.compress(p.read_bytes(), 6)) for p in sorted(cubes.iterdir())[:20])
    gz_ratio = sum(p.stat().st_size for p in sorted(cubes.iterdir())[:20]) / gz

    variants = {
        "cube-derived": (cube_derived, {}),
        "native float32": (lambda: iter(native), {}),
        "raw float32": (cube_derived, {"codes": (codec.RAW,)}),
    }
    per_1000 = 1000 / len(molecules)
    print(
        f"\ncube text (psi4 layout, Dt + ESP): {cube_bytes / len(molecules) / 1e6:.2f} MB per "
        f"molecule, {cube_bytes * per_1000 / 1e9:.2f} GB and {cube_files * per_1000:.0f} files "
        f"per 1,000 molecules; gzip -6 would give {gz_ratio:.2f}x"
    )
    print(
        f"\n{'variant':16s} {'MB/mol':>7s} {'GB/1000':>8s} {'files/1000':>10s} "
        f"{'vs cube':>8s} {'density':>8s} {'esp':>8s}  encodings (density | esp)"
    )
    for name, (source, options) in variants.items():
        path = work / f"{name.replace(' ', '-')}.zarr"
        t0 = time.perf_counter()
        write_store(path, source(), **options)
        write_s = time.perf_counter() - t0
        store = open_store(path)
        reference = {r.id: r for r in source()}
        for mol_id in store.ids:  # bit-exact check of every grid
            for field in ("density", "esp"):
                expected = getattr(reference[mol_id], field).values
                got = store.values(mol_id, field)
                assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), (name, mol_id)
        total, files = disk_usage(path)
        words = {f: store.offsets[-1, k] for k, f in enumerate(("density", "esp"))}
        field_bytes = {f: _array_bytes(path / f) for f in words}
        files_1000 = BASE_FILES + sum(
            math.ceil(w * per_1000 / SHARD_VALUES) for w in words.values()
        )
        ratio = {f: 4 * words[f] / field_bytes[f] for f in words}
        codes = [
            "/".join(
                f"{codec.ENCODINGS[c]}:{n}"
                for c, n in zip(*np.unique(store.encoding[:, k], return_counts=True), strict=False)
            )
            for k in range(2)
        ]
        print(
            f"{name:16s} {total / len(store) / 1e6:7.3f} {total * per_1000 / 1e9:8.3f} "
            f"{files_1000:10d} {cube_bytes / total:7.2f}x {ratio['density']:7.2f}x "
            f"{ratio['esp']:7.2f}x  {codes[0]} | {codes[1]}   (write {write_s:.0f} s, "
            f"{files} files now)"
        )
    print(
        "\n'vs cube' = cube text bytes / store bytes (whole directory); 'density'/'esp' = "
        "float32 bytes / stored bytes of that value array. All grids verified bit-exact."
    )
    if args.keep is None:
        shutil.rmtree(work)


def _array_bytes(path: Path) -> int:
    return disk_usage(path)[0]


if __name__ == "__main__":
    main()
