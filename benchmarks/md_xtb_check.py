"""GFN2-xTB MD checks (rhoflow.md.dynamics): energy drift in NVE and the temperature in NVT.

One molecule (aspirin by default) from ETKDG + MMFF94, optimised with GFN2-xTB, then
(1) velocity Verlet (NVE) at ``--dt`` fs from Maxwell–Boltzmann velocities at ``--temperature``
K for ``--ps`` ps, every step kept: the drift of E + K per ps (least squares) and its RMS
fluctuation; (2) Langevin NVT at the same temperature, time step and length (friction
0.01 /fs): the temperature trace (PNG) and its mean ± std after the first 0.5 ps.
Usage: ``.venv/bin/python benchmarks/md_xtb_check.py [--smiles CC(=O)Oc1ccccc1C(=O)O]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from rhoflow.conformers.xtb import XtbEngine, optimize
from rhoflow.md import energy_drift, run_md
from rhoflow.units import ANGSTROM_PER_BOHR, KCAL_PER_MOL_PER_HARTREE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smiles", default="CC(=O)Oc1ccccc1C(=O)O")
    parser.add_argument("--temperature", type=float, default=500.0)
    parser.add_argument("--dt", type=float, default=0.5, help="time step (fs)")
    parser.add_argument("--ps", type=float, default=2.0, help="length of each run (ps)")
    parser.add_argument("--png", default="md_xtb_temperature.png")
    args = parser.parse_args()

    mol = Chem.AddHs(Chem.MolFromSmiles(args.smiles))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    AllChem.MMFFOptimizeMolecule(mol)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    start = optimize(z, mol.GetConformer().GetPositions()).coords_bohr * ANGSTROM_PER_BOHR
    steps = round(args.ps * 1000 / args.dt)
    base = {"temperature_k": args.temperature, "timestep_fs": args.dt, "equilibration_steps": 0,
            "friction_per_fs": 0.01, "seed": 0}  # fmt: skip

    t0 = time.perf_counter()
    nve = run_md(XtbEngine(z, 0, 1), z, start, {**base, "ensemble": "nve", "frames": steps,
                                                "stride": 1}, "nve")  # fmt: skip
    wall = time.perf_counter() - t0
    total = (nve.energy + nve.md["kinetic_energy"]) * KCAL_PER_MOL_PER_HARTREE
    drift = energy_drift(nve) * KCAL_PER_MOL_PER_HARTREE
    print(f"{args.smiles}: {len(z)} atoms, NVE {args.ps} ps at {args.dt} fs ({steps} steps, "
          f"{steps / wall:.0f} steps/s)")  # fmt: skip
    print(f"  E + K drift {drift:+.4f} kcal/mol per ps; RMS fluctuation {total.std():.4f} "
          f"kcal/mol; mean T {nve.md['temperature_k'].mean():.0f} K")  # fmt: skip

    stride = 10
    nvt = run_md(XtbEngine(z, 0, 1), z, start, {**base, "ensemble": "nvt",
                                                "frames": steps // stride, "stride": stride},
                 "nvt")  # fmt: skip
    t, temp = nvt.md["time_fs"], nvt.md["temperature_k"]
    late = temp[t >= 500]
    print(f"  NVT (Langevin, 0.01/fs): T after 0.5 ps {late.mean():.0f} ± {late.std():.0f} K "
          f"(target {args.temperature:.0f})")  # fmt: skip

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(t / 1000, temp, linewidth=0.8)
    ax.axhline(args.temperature, color="0.4", linewidth=0.8)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("instantaneous T (K)")
    ax.set_title(f"GFN2-xTB Langevin NVT, {args.dt} fs")
    figure.savefig(args.png)
    print(f"  temperature trace: {args.png}")


if __name__ == "__main__":
    main()
