"""Physical checks of the density engines; prints markdown tables (and optionally JSON).

    .venv/bin/python benchmarks/density_physics.py gap [--n 10] [--threads 2]
    .venv/bin/python benchmarks/density_physics.py variants [--first 0] [--n 1] [--exact]
    .venv/bin/python benchmarks/density_physics.py compare [--spacing 0.4] [--basis 6-31g*]
    .venv/bin/python benchmarks/density_physics.py convergence [--spacings 0.4 0.2 0.1]
    .venv/bin/python benchmarks/density_physics.py basis [--n 6] [--reference 3]
    .venv/bin/python benchmarks/density_physics.py all

``gap``          B3LYP/6-31G* HOMO–LUMO gap of the first N PCQM4Mv2 molecules at their given
                 coordinates with psi4 and pyscf against the data set's label (eV); no grids.
                 PubChemQC computed the lowest spin state (singlet/doublet), so by default the
                 multiplicity is the lowest the electron count allows (``--multiplicity``).
``variants``     which B3LYP flavour / basis convention reproduces the labels: pyscf b3lyp
                 (VWN_RPA) vs b3lyp5 (VWN5), cartesian vs spherical 6-31G*.
``compare``      psi4 vs pyscf with the same functional definition, basis and grid on five small
                 molecules: |Δρ| everywhere and beyond 0.3 bohr from every nucleus, ESP and
                 energy differences; xtb wall time and captured fraction on the same molecules.
``convergence``  captured fraction Σρ·dV / N at several spacings for one small molecule.
``basis``        psi4 vs pyscf, B3LYP/6-31G*, on the PCQM4Mv2 molecules with Br or I (and
                 ``--reference`` molecules without): total energy, gap and max |Δρ| beyond
                 0.3 bohr for psi4's DF fitting basis left to psi4 (cc-pVDZ-JKFIT) or set to
                 def2-qzvpp-jkfit (rhoflow's default) and psi4 PK (no fitting), against pyscf
                 with ``basis_source`` engine and psi4 (not rerun where its functions hash
                 equal to the engine's: the same run); whether the per-element hashes agree.

Wall times are per molecule and include program start-up (psi4 ≈ 2 s). Use ≤ 2 threads on
shared machines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.config import section_settings
from rhoflow.density import psi4_engine, pyscf_engine, xtb_engine
from rhoflow.density.basis import pyscf_records
from rhoflow.molecule import Molecule, from_rdkit
from rhoflow.result import DensityResult
from rhoflow.sources import pcqm4mv2
from rhoflow.units import EV_PER_HARTREE as HARTREE_EV

REPO = Path(__file__).resolve().parents[1]
PCQM_CSV = REPO.parent / "shared/data/pcqm4mv2/pcqm4mv2_first1000.csv"
LABEL = "homo_lumo_gap_ev"

SMALL: dict[str, tuple[list[int], list[list[float]]]] = {
    "h2o": ([8, 1, 1], [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]]),
    "nh3": (
        [7, 1, 1, 1],
        [
            [0, 0, 0.1170],
            [0, 0.9377, -0.2730],
            [0.8121, -0.4689, -0.2730],
            [-0.8121, -0.4689, -0.2730],
        ],
    ),
    "ch4": (
        [6, 1, 1, 1, 1],
        [
            [0, 0, 0],
            [0.629, 0.629, 0.629],
            [-0.629, -0.629, 0.629],
            [-0.629, 0.629, -0.629],
            [0.629, -0.629, -0.629],
        ],
    ),
    "h2co": ([6, 8, 1, 1], [[0, 0, -0.53], [0, 0, 0.67], [0, 0.94, -1.11], [0, -0.94, -1.11]]),
    "hcn": ([1, 6, 7], [[0, 0, -1.064], [0, 0, 0], [0, 0, 1.156]]),
}
"""Five small closed-shell molecules (Å)."""


# --- molecules ----------------------------------------------------------------------------



def filled(engine: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` completed as ``rhoflow density`` completes the ``density.<engine>`` section."""
    return section_settings(f"density.{engine}", given)

def small_molecule(name: str) -> Molecule:
    numbers, coords = SMALL[name]
    return Molecule(f"small:{name}", "", 0, 1, np.array(numbers), "", np.array(coords, float))


def pcqm_molecules(n: int, csv: Path = PCQM_CSV) -> list[Molecule]:
    """The first ``n`` molecules of the graphium PCQM4Mv2 CSV through rhoflow's own parser."""
    out = []
    for entry in pcqm4mv2.read_cxsmiles(csv, {}):
        if len(out) == n:
            break
        record = pcqm4mv2.parse_cxsmiles(entry, {})
        if record.failure:
            raise RuntimeError(f"row {entry.native_id}: {record.failure}")
        out.append(from_rdkit(f"pcqm4mv2:{entry.native_id}", record.mol, record.labels))
    return out


# --- output -------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Markdown table; floats with 4–6 significant digits."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4e}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5) else f"{v:.4f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --- gap ----------------------------------------------------------------------------------


def _alpha_gap(energies: list[np.ndarray], n_occupied: list[int]) -> float:
    """α-LUMO − α-HOMO (Hartree)."""
    return float(energies[0][n_occupied[0]] - energies[0][n_occupied[0] - 1])


def gap_psi4(mol: Molecule, settings: dict[str, Any], threads: int) -> dict[str, float]:
    start = time.perf_counter()
    result, *_ = psi4_engine.compute(mol, settings, threads, cubes=False)
    labels = psi4_engine.parse_labels(result, settings["method"])
    eps = [np.asarray(result["eps_a"]), np.asarray(result["eps_b"])]
    alpha = _alpha_gap(eps, [result["nalpha"], result["nbeta"]])
    return {
        "gap_ev": labels["gap_ev"],
        "alpha_gap_ev": alpha * HARTREE_EV,
        "energy": labels["total_energy_hartree"],
        "wall_s": time.perf_counter() - start,
    }


def gap_pyscf(mol: Molecule, settings: dict[str, Any], threads: int) -> dict[str, float]:
    from pyscf import lib

    lib.num_threads(threads)
    start = time.perf_counter()
    mf = pyscf_engine.run_scf(mol, settings)
    labels = pyscf_engine.scf_labels(mf)
    energies, occ = np.asarray(mf.mo_energy), np.asarray(mf.mo_occ)
    if energies.ndim == 1:
        energies, occ = energies[None], occ[None] / 2
    alpha = _alpha_gap(list(energies), [int(np.count_nonzero(o > 0)) for o in occ])
    return {
        "gap_ev": labels["gap_ev"],
        "alpha_gap_ev": alpha * HARTREE_EV,
        "energy": labels["total_energy_hartree"],
        "wall_s": time.perf_counter() - start,
    }


def cmd_gap(args: argparse.Namespace) -> dict[str, Any]:
    molecules = pcqm_molecules(args.n)
    common = {"method": "b3lyp", "basis": "6-31g*", "multiplicity": args.multiplicity}
    engines = {
        "psi4": (gap_psi4, filled("psi4", {**common, "scf_type": "df"})),
        "pyscf": (
            gap_pyscf,
            filled(
                "pyscf",
                {**common, "density_fitting": not args.exact, "auxbasis": args.auxbasis},
            ),
        ),
    }
    rows, raw = [], []
    for mol in molecules:
        label = float(mol.labels[LABEL])
        entry: dict[str, Any] = {"id": mol.id, "label_ev": label}
        for name in args.engines:
            fn, settings = engines[name]
            entry[name] = fn(mol, settings, args.threads)
            print(f"{mol.id} {name}: {entry[name]}", file=sys.stderr, flush=True)
        raw.append(entry)
        mult = 1 + (int(np.sum(mol.atomic_numbers)) - mol.charge) % 2
        rows.append(
            [mol.id, mult, label]
            + [
                v
                for name in args.engines
                for v in (
                    entry[name]["gap_ev"],
                    entry[name]["gap_ev"] - label,
                    entry[name]["wall_s"],
                )
            ]
        )
    headers = ["molecule", "mult", "label eV"] + [
        h for name in args.engines for h in (f"{name} eV", f"{name} Δ", f"{name} s")
    ]
    print(table(headers, rows))
    for name in args.engines:
        errors = np.array([e[name]["gap_ev"] - e["label_ev"] for e in raw])
        alpha = np.array([e[name]["alpha_gap_ev"] - e["label_ev"] for e in raw])
        wall = np.array([e[name]["wall_s"] for e in raw])
        print(
            f"\n{name}: MAE {np.abs(errors).mean():.4f} eV, max |Δ| {np.abs(errors).max():.4f}"
            f" eV (α-only gap: MAE {np.abs(alpha).mean():.4f}); wall {wall.mean():.1f} s/mol"
            f" (max {wall.max():.1f})"
        )
    if len(args.engines) == 2:
        a, b = args.engines
        cross = np.array([e[a]["gap_ev"] - e[b]["gap_ev"] for e in raw])
        energy = np.array([e[a]["energy"] - e[b]["energy"] for e in raw])
        print(
            f"{a} − {b}: max |Δgap| {np.abs(cross).max():.2e} eV, "
            f"max |ΔE| {np.abs(energy).max():.2e} Eh"
        )
    return {"gap": raw}


def cmd_variants(args: argparse.Namespace) -> dict[str, Any]:
    molecules = pcqm_molecules(args.first + args.n)[args.first:]
    combos = [(xc, cart) for xc in args.xc for cart in (True, False)
              if ("cartesian" if cart else "spherical") in args.functions]
    raw: list[dict[str, Any]] = []
    for mol in molecules:
        label = float(mol.labels[LABEL])
        for xc, cartesian in combos:
            settings = filled("pyscf", {
                "method": xc, "basis": "6-31g*", "cartesian": cartesian,
                "multiplicity": args.multiplicity, "density_fitting": not args.exact,
                "auxbasis": args.auxbasis})
            out = gap_pyscf(mol, settings, args.threads)
            raw.append({"id": mol.id, "label_ev": label, "xc": xc, "cartesian": cartesian, **out})
            print(raw[-1], file=sys.stderr, flush=True)
    rows = [[r["id"], r["xc"], "cartesian" if r["cartesian"] else "spherical", r["gap_ev"],
             r["gap_ev"] - r["label_ev"], r["energy"], r["wall_s"]] for r in raw]
    integrals = "exact integrals" if args.exact else f"density fitting {args.auxbasis}"
    print(f"pyscf 6-31G*, {integrals}")
    print(table(["molecule", "xc", "6-31G*", "gap eV", "Δ label", "E Eh", "wall s"], rows))
    summary = []
    for xc, cartesian in combos:
        errors = np.array([r["gap_ev"] - r["label_ev"] for r in raw
                           if r["xc"] == xc and r["cartesian"] == cartesian])
        summary.append([xc, "cartesian" if cartesian else "spherical", len(errors),
                        float(np.abs(errors).mean()), float(errors.mean()),
                        float(np.abs(errors).max())])
    print()
    print(table(["xc", "6-31G*", "molecules", "MAE eV", "mean Δ eV", "max |Δ| eV"], summary))
    return {"variants": raw}


# --- compare ------------------------------------------------------------------------------


def far_mask(result: DensityResult, cutoff_bohr: float) -> np.ndarray:
    """Grid points farther than ``cutoff_bohr`` from every nucleus."""
    axes = result.density.axes_bohr()
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    distance = np.linalg.norm(points - result.coords_bohr[None], axis=-1).min(axis=1)
    return (distance > cutoff_bohr).reshape(result.density.shape)


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def cmd_compare(args: argparse.Namespace) -> dict[str, Any]:
    grid = {"spacing_bohr": args.spacing, "overage_bohr": args.overage}
    common = {"method": "b3lyp", "basis": args.basis, **grid}
    p4_settings = filled("psi4", {**common, "scf_type": "pk"})
    ps_settings = filled("pyscf", {**common, "esp": "exact", "xc_grid_level": args.xc_grid_level})
    xtb_settings = filled("xtb", grid)
    rows, xrows, raw = [], [], []
    for name in SMALL:
        mol = small_molecule(name)
        p4, t4 = _timed(psi4_engine.run, mol, p4_settings, args.threads)
        ps, tp = _timed(pyscf_engine.run, mol, ps_settings, args.threads)
        xt, tx = _timed(xtb_engine.run, mol, xtb_settings, args.threads)
        diff = np.abs(p4.density.values - ps.density.values)
        far = far_mask(ps, 0.3)
        esp_far = far_mask(ps, 1.0)
        esp_diff = np.abs(p4.esp.values - ps.esp.values)[esp_far]
        entry = {
            "molecule": name,
            "shape": list(ps.density.shape),
            "max_drho": float(diff.max()),
            "mean_drho": float(diff.mean()),
            "max_drho_far": float(diff[far].max()),
            "mean_drho_far": float(diff[far].mean()),
            "max_desp_far": float(esp_diff.max()),
            "mean_desp_far": float(esp_diff.mean()),
            "dE": p4.labels["total_energy_hartree"] - ps.labels["total_energy_hartree"],
            "psi4_s": t4,
            "pyscf_s": tp,
            "xtb_s": tx,
            "captured_psi4": p4.checks["captured_fraction"],
            "captured_pyscf": ps.checks["captured_fraction"],
            "captured_xtb": xt.checks["captured_fraction"],
        }
        raw.append(entry)
        print(entry, file=sys.stderr, flush=True)
        rows.append(
            [
                name,
                "×".join(map(str, entry["shape"])),
                entry["max_drho"],
                entry["mean_drho"],
                entry["max_drho_far"],
                entry["mean_drho_far"],
                entry["max_desp_far"],
                entry["dE"],
                t4,
                tp,
            ]
        )
        xrows.append(
            [name, entry["captured_psi4"], entry["captured_pyscf"], entry["captured_xtb"], tx]
        )
    print(
        f"psi4 (scf_type pk; ESP density-fitted by psi4) vs pyscf (exact integrals, exact ESP,"
        f" xc grid level {args.xc_grid_level}): B3LYP/{args.basis}, grid spacing "
        f"{args.spacing} bohr, overage {args.overage} bohr"
    )
    print(
        table(
            [
                "molecule",
                "grid",
                "max|Δρ|",
                "mean|Δρ|",
                "max|Δρ| >0.3",
                "mean|Δρ| >0.3",
                "max|ΔESP| >1.0",
                "ΔE Eh",
                "psi4 s",
                "pyscf s",
            ],
            rows,
        )
    )
    worst = max(e["max_drho_far"] for e in raw)
    print(
        f"\nmax |Δρ| beyond 0.3 bohr over all molecules: {worst:.3e} e/bohr³ "
        f"({'PASS' if worst <= 1e-3 else 'FAIL'} ≤ 1e-3)\n"
    )
    print(
        table(
            ["molecule", "captured psi4", "captured pyscf", "captured xtb (valence)", "xtb s"],
            xrows,
        )
    )
    return {"compare": raw}


# --- convergence --------------------------------------------------------------------------


def cmd_convergence(args: argparse.Namespace) -> dict[str, Any]:
    mol = small_molecule(args.molecule)
    rows, raw = [], []
    for spacing in args.spacings:
        grid = {"spacing_bohr": spacing, "overage_bohr": args.overage}
        ps, tp = _timed(
            pyscf_engine.run,
            mol,
            filled("pyscf", {"method": "b3lyp", "basis": args.basis, "esp": "none", **grid}),
            args.threads,
        )
        p4, t4 = _timed(
            psi4_engine.run,
            mol,
            filled("psi4", {"method": "b3lyp", "basis": args.basis, "esp": False, **grid}),
            args.threads,
        )
        xt, tx = _timed(xtb_engine.run, mol, filled("xtb", grid), args.threads)
        entry = {
            "spacing_bohr": spacing,
            "shape": list(ps.density.shape),
            "pyscf": ps.checks["captured_fraction"],
            "psi4": p4.checks["captured_fraction"],
            "xtb": xt.checks["captured_fraction"],
            "rho_max": ps.checks["rho_max"],
            "pyscf_s": tp,
            "psi4_s": t4,
            "xtb_s": tx,
        }
        raw.append(entry)
        print(entry, file=sys.stderr, flush=True)
        rows.append(
            [
                spacing,
                "×".join(map(str, entry["shape"])),
                entry["pyscf"],
                entry["psi4"],
                entry["xtb"],
                entry["rho_max"],
                tp,
                t4,
                tx,
            ]
        )
    print(f"{args.molecule}, B3LYP/{args.basis} (xtb: GFN2 valence), overage {args.overage} bohr")
    print(
        table(
            [
                "spacing",
                "grid",
                "captured pyscf",
                "captured psi4",
                "captured xtb",
                "ρ max",
                "pyscf s",
                "psi4 s",
                "xtb s",
            ],
            rows,
        )
    )
    return {"convergence": raw}


# --- basis --------------------------------------------------------------------------------


def heavy_halogen_molecules(n: int, reference: int) -> list[Molecule]:
    """The first ``n`` PCQM4Mv2 molecules with Br or I, then ``reference`` without (first 1000)."""
    halogens, others = [], []
    for mol in pcqm_molecules(1000):
        has = bool(set(int(z) for z in mol.atomic_numbers) & {35, 53})
        if has and len(halogens) < n:
            halogens.append(mol)
        elif not has and len(others) < reference:
            others.append(mol)
    return halogens + others


def _same(records: dict[str, dict], result: DensityResult) -> bool:
    """Does ``result`` hold the same functions as ``records`` (equal hashes per element)?"""
    return {s: r["sha256"] for s, r in records.items()} == _hashes(result)


def _hashes(result: DensityResult, key: str = "basis_functions") -> dict[str, str]:
    return {s: r["sha256"] for s, r in result.provenance.get(key, {}).items()}


def cmd_basis(args: argparse.Namespace) -> dict[str, Any]:
    grid = {"spacing_bohr": args.spacing, "overage_bohr": args.overage}
    common = {"method": "b3lyp", "basis": "6-31g*", "multiplicity": "lowest", **grid}
    psi4_runs = {  # name: (settings, with cubes)
        "psi4 DF cc-pVDZ-JKFIT": ({**common, "df_basis_scf": None, "esp": False}, True),
        "psi4 DF def2-qzvpp-jkfit": ({**common, "esp": False}, True),
        "psi4 PK": ({**common, "scf_type": "pk", "esp": False}, False),
    }
    pyscf_runs = {f"pyscf {src}": {**common, "basis_source": src, "esp": "none",
                                   "xc_grid_level": args.xc_grid_level}
                  for src in ("engine", "psi4")}
    raw = []
    for mol in heavy_halogen_molecules(args.n, args.reference)[args.start:]:
        entry: dict[str, Any] = {"id": mol.id, "elements": sorted({int(z) for z in
                                                                  mol.atomic_numbers})}
        results: dict[str, Any] = {}
        for name, (given, cubes) in psi4_runs.items():
            settings = filled("psi4", given)
            if cubes:
                results[name], wall = _timed(psi4_engine.run, mol, settings, args.threads)
                labels = results[name].labels
            else:
                (out, *_), wall = _timed(psi4_engine.compute, mol, settings, args.threads, False)
                labels = psi4_engine.parse_labels(out, settings["method"])
            entry[name] = {"energy": labels["total_energy_hartree"], "gap_ev": labels["gap_ev"],
                           "wall_s": wall}
        for name, given in pyscf_runs.items():
            settings = filled("pyscf", given)
            functions = pyscf_records(pyscf_engine.build_mole(mol, settings), "", "")
            if name != "pyscf engine" and _same(functions, results["pyscf engine"]):
                results[name] = results["pyscf engine"]  # the same functions: the same run
                entry[name] = {**entry["pyscf engine"], "same_functions_as_engine": True}
                continue
            results[name], wall = _timed(pyscf_engine.run, mol, settings, args.threads)
            entry[name] = {"energy": results[name].labels["total_energy_hartree"],
                           "gap_ev": results[name].labels["gap_ev"], "wall_s": wall}
        far = far_mask(results["pyscf engine"], 0.3)
        for name in ("psi4 DF cc-pVDZ-JKFIT", "psi4 DF def2-qzvpp-jkfit"):
            diff = np.abs(results[name].density.values - results["pyscf engine"].density.values)
            entry[name]["max_drho_far"] = float(diff[far].max())
            entry[name]["fit_hashes"] = _hashes(results[name], "fit_basis_functions")
        entry["hashes"] = {name: _hashes(results[name]) for name in
                           ("psi4 DF def2-qzvpp-jkfit", "pyscf engine", "pyscf psi4")}
        raw.append(entry)
        print(json.dumps(entry, default=float), file=sys.stderr, flush=True)
    reference = "pyscf engine"
    rows = []
    for e in raw:
        same = e["hashes"]["psi4 DF def2-qzvpp-jkfit"] == e["hashes"]["pyscf engine"] \
            == e["hashes"]["pyscf psi4"]
        row: list[Any] = [e["id"], "Br/I" if set(e["elements"]) & {35, 53} else "CHNO…"]
        for name in psi4_runs:
            row += [(e[name]["energy"] - e[reference]["energy"]) * 1e6,
                    (e[name]["gap_ev"] - e[reference]["gap_ev"]) * 1e3]
        row += [(e["pyscf psi4"]["energy"] - e[reference]["energy"]) * 1e6,
                e["psi4 DF cc-pVDZ-JKFIT"]["max_drho_far"],
                e["psi4 DF def2-qzvpp-jkfit"]["max_drho_far"], "yes" if same else "NO",
                e["psi4 DF def2-qzvpp-jkfit"]["wall_s"], e["psi4 DF cc-pVDZ-JKFIT"]["wall_s"],
                e["psi4 PK"]["wall_s"], e[reference]["wall_s"]]
        rows.append(row)
    print(f"B3LYP/6-31G* (Cartesian d), PCQM4Mv2 geometries; Δ = psi4 − pyscf (pyscf: exact "
          f"integrals, xc grid level {args.xc_grid_level}, basis_source engine); ΔE in "
          f"µHartree, Δgap in meV, max |Δρ| beyond 0.3 bohr in e/bohr³ (spacing "
          f"{args.spacing} bohr); walls in s ({args.threads} threads)")
    print(table(["molecule", "kind", "ΔE DF cc-pVDZ-JKFIT", "Δgap", "ΔE DF def2-qzvpp-jkfit",
                 "Δgap", "ΔE PK", "Δgap", "ΔE pyscf psi4-source", "max|Δρ| cc-pVDZ-JKFIT",
                 "max|Δρ| def2", "hashes equal", "psi4 def2 s", "psi4 ccJK s", "psi4 PK s",
                 "pyscf s"], rows))
    return {"basis": raw}


# --- main ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    sub = p.add_subparsers(dest="command", required=True)
    gap = sub.add_parser("gap")
    gap.add_argument("--n", type=int, default=10)
    gap.add_argument("--engines", nargs="+", default=["psi4", "pyscf"], choices=["psi4", "pyscf"])
    variants = sub.add_parser("variants")
    variants.add_argument("--first", type=int, default=0, help="first molecule index")
    variants.add_argument("--n", type=int, default=1, help="number of molecules")
    variants.add_argument("--xc", nargs="+", default=["b3lyp", "b3lyp5"])
    variants.add_argument("--functions", nargs="+", default=["cartesian", "spherical"],
                          choices=["cartesian", "spherical"])
    for s in (gap, variants):
        s.add_argument("--multiplicity", default="lowest", choices=["lowest", "molecule"])
        s.add_argument("--exact", action="store_true", help="pyscf without density fitting")
        s.add_argument("--auxbasis", default="def2-universal-jkfit")
    compare = sub.add_parser("compare")
    compare.add_argument("--basis", default="6-31g*")
    compare.add_argument("--spacing", type=float, default=0.4)
    compare.add_argument("--overage", type=float, default=4.0)
    compare.add_argument("--xc-grid-level", type=int, default=4)
    conv = sub.add_parser("convergence")
    conv.add_argument("--molecule", default="h2o", choices=sorted(SMALL))
    conv.add_argument("--basis", default="6-31g*")
    conv.add_argument("--spacings", type=float, nargs="+", default=[0.4, 0.2, 0.1])
    conv.add_argument("--overage", type=float, default=4.0)
    basis = sub.add_parser("basis")
    basis.add_argument("--n", type=int, default=6, help="molecules with Br or I")
    basis.add_argument("--reference", type=int, default=3, help="molecules without")
    basis.add_argument("--start", type=int, default=0, help="skip this many molecules")
    basis.add_argument("--spacing", type=float, default=0.4)
    basis.add_argument("--overage", type=float, default=4.0)
    basis.add_argument("--xc-grid-level", type=int, default=4)
    sub.add_parser("all")
    return p


COMMANDS = {
    "gap": cmd_gap,
    "variants": cmd_variants,
    "compare": cmd_compare,
    "convergence": cmd_convergence,
    "basis": cmd_basis,
}


def main() -> None:
    args = parser().parse_args()
    if args.command == "all":
        out: dict[str, Any] = {}
        for name in ("compare", "convergence", "gap"):
            sub = parser().parse_args(["--threads", str(args.threads), name])
            print(f"\n## {name}\n")
            out.update(COMMANDS[name](sub))
    else:
        out = COMMANDS[args.command](args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
