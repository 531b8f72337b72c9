"""xtb engine: GFN2-xTB (or GFN1) valence density from the ``xtb`` program's orbitals.

``xtb mol.xyz --gfn 2 --chrg C --uhf U --molden --json --norestart`` runs in a per-molecule
scratch directory. xtb's own ``density.cub`` is not used: it has a fixed 3-bohr border, a grid
stretched to fit, and tabulated exponentials (≈1 % error). Instead ``molden.input`` (the
minimal STO-nG valence basis and the MO coefficients) is loaded into a PySCF ``Mole`` and the
density is evaluated exactly on the same grid as the other engines
(:func:`rhoflow.density.gto_grid.density_on_grid`).

xtb 6.5.1's molden conventions, verified by requiring orthonormal MOs (|CᵀSC − 1| ≤ 1e-6) and
tr(DS) = the valence electron count for every molecule: primitive coefficients include the
primitive normalisation, cartesian d functions are normalised per component (xy, xz, yz are
√3 larger than in PySCF's common normalisation), order xx, yy, zz, xy, xz, yz. GFN2 has no f.

The density holds the **valence** electrons only (core electrons are absent, so there are no
core cusps); ``n_electrons_expected`` is the valence count. **No ESP** is provided: a valence
density with bare nuclear charges gives no meaningful potential, and xtb's own ESP is not a
grid property. Labels: total and electronic energy (Hartree), HOMO/LUMO (xtb's marked
orbitals), gap, dipole (Debye).

Settings: the ``density.xtb`` section of ``rhoflow/schemas/config.schema.yaml``, complete (filled
and checked once where the command enters the library).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.density.checks import check_electron_count, density_checks
from rhoflow.density.common import (
    coords_angstrom,
    die_with_parent,
    dipole_labels,
    element_symbols,
    frontier_labels,
    provenance,
    spin_multiplicity,
    timed,
)
from rhoflow.density.grid import grid_for
from rhoflow.density.gto_grid import density_on_grid
from rhoflow.elements import SYMBOLS
from rhoflow.molecule import Molecule
from rhoflow.parallel import StageFailure
from rhoflow.result import DensityResult
from rhoflow.units import DEBYE_PER_AU, EV_PER_HARTREE

NAME = "xtb"

METHODS = {"gfn1": "1", "gfn2": "2"}
METHOD_NAMES = {"gfn1": "GFN1-xTB", "gfn2": "GFN2-xTB"}
ORTHONORMALITY_TOLERANCE = 1e-6
_LIBCINT_COMMON = {0: 1.0 / (2.0 * math.sqrt(math.pi)), 1: math.sqrt(3.0 / (4.0 * math.pi))}
"""libcint's angular prefactors of s and p functions (d and higher: 1)."""


def valence_electrons(z: int) -> int:
    """Electrons xtb treats explicitly for element ``z`` (H–Xe): Z minus the noble-gas core
    and, from Ga/In on, the filled d shell."""
    if not 1 <= z <= 54:
        raise StageFailure("engine_error", f"xtb valence count not defined here for Z={z}")
    core = max(c for c in (0, 2, 10, 18, 36) if c < z)
    if 31 <= z <= 36 or 49 <= z <= 54:
        core += 10
    return z - core


def expected_valence(molecule: Molecule) -> int:
    """Σ valence electrons − charge."""
    return sum(valence_electrons(int(z)) for z in molecule.atomic_numbers) - int(molecule.charge)


def _write_xyz(path: Path, molecule: Molecule) -> None:
    symbols = element_symbols(molecule)
    lines = [str(len(symbols)), molecule.id]
    for symbol, (x, y, z) in zip(symbols, coords_angstrom(molecule), strict=True):
        lines.append(f"{symbol:<2s} {x:20.12f} {y:20.12f} {z:20.12f}")
    path.write_text("\n".join(lines) + "\n")


def run_xtb(workdir: Path, molecule: Molecule, settings: dict[str, Any], threads: int) -> str:
    """Run the xtb program in ``workdir``; return its standard output."""
    exe = shutil.which("xtb")
    if exe is None:
        raise StageFailure("engine_error", "xtb executable not found on PATH")
    _write_xyz(workdir / "mol.xyz", molecule)
    mult = spin_multiplicity(molecule, settings["multiplicity"])
    cmd = [exe, "mol.xyz", "--gfn", METHODS[settings["method"]],
           "--chrg", f"{int(molecule.charge):d}", "--uhf", f"{mult - 1:d}",
           "--acc", f"{float(settings['accuracy']):.6g}",
           "--etemp", f"{float(settings['electronic_temperature_k']):.6g}",
           "--iterations", f"{int(settings['max_iterations']):d}",
           "--molden", "--json", "--norestart"]
    env = dict(os.environ, OMP_NUM_THREADS=f"{threads},1", MKL_NUM_THREADS=str(threads),
               OMP_STACKSIZE="500M", OPENBLAS_NUM_THREADS=str(threads))
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=float(settings["timeout_s"]), preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired as exc:
        raise StageFailure("timeout", f"xtb exceeded {settings['timeout_s']:g} s") from exc
    if "did not converge" in proc.stdout or "cannot be satisfied" in proc.stdout:
        raise StageFailure("scf_not_converged", _last_lines(proc.stdout, "converge"))
    if proc.returncode != 0 or not (workdir / "molden.input").exists():
        text = proc.stdout + proc.stderr
        raise StageFailure("engine_error", f"xtb exit {proc.returncode}: {_last_lines(text)}")
    return proc.stdout


def _last_lines(text: str, keyword: str = "error") -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    hits = [ln for ln in lines if keyword in ln.lower()]
    return " | ".join((hits or lines)[-3:])[:400]


def _parse_atoms(section: str) -> tuple[list[int], np.ndarray]:
    numbers, coords = [], []
    for line in section.splitlines()[1:]:
        fields = line.split()
        if len(fields) == 6:
            numbers.append(int(fields[2]))
            coords.append([float(x) for x in fields[3:6]])
    return numbers, np.array(coords)


def _parse_shells(section: str) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(atom index, l, exponents, raw coefficients) per shell of the [GTO] section."""
    shells, atom, lines, i = [], -1, section.splitlines()[1:], 0
    while i < len(lines):
        fields = lines[i].split()
        if len(fields) == 2 and fields[0].isdigit():
            atom = int(fields[0]) - 1
        elif len(fields) == 3 and fields[0].lower() in "spd":
            n = int(fields[1])
            prims = np.array([[float(x) for x in lines[i + 1 + k].split()] for k in range(n)])
            shells.append((atom, "spd".index(fields[0].lower()), prims[:, 0], prims[:, 1]))
            i += n
        elif len(fields) == 3 and fields[0].isalpha():
            raise StageFailure("engine_error", f"xtb molden shell {fields[0]!r} not supported")
        i += 1
    return shells


def _parse_mos(section: str, nbf: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(energies, occupations, coefficients [nbf, nmo] in molden order, spins)."""
    energies, occupations, spins, columns = [], [], [], []
    for block in re.split(r"Sym=", section)[1:]:
        energies.append(float(re.search(r"Ene=\s*(\S+)", block).group(1)))
        occupations.append(float(re.search(r"Occup=\s*(\S+)", block).group(1)))
        spin = re.search(r"Spin=\s*(\w+)", block)
        spins.append(spin.group(1).lower() if spin else "alpha")
        column = np.zeros(nbf)
        for line in block.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0].isdigit():
                column[int(fields[0]) - 1] = float(fields[1])
        columns.append(column)
    return np.array(energies), np.array(occupations), np.array(columns).T, spins


def _radial_norm(ang: int, exponents: np.ndarray, coefficients: np.ndarray) -> float:
    """sqrt(∫ R(r)² r² dr) of R(r) = Σ c_i r^ang exp(−a_i r²)."""
    a = exponents[:, None] + exponents[None, :]
    integral = math.gamma(ang + 1.5) / (2.0 * a ** (ang + 1.5))
    return float(np.sqrt(coefficients @ integral @ coefficients))


_MOLDEN_TO_PYSCF_D = [0, 3, 4, 1, 5, 2]  # pyscf xx xy xz yy yz zz ← molden xx yy zz xy xz yz


def load_molden(path: Path):  # -> (pyscf Mole, occupations, coefficients, spins)
    """xtb's molden file as a PySCF cartesian ``Mole`` and MO coefficients in its AO order."""
    from pyscf import gto

    text = path.read_text()
    atoms_text, rest = text.split("[Atoms]")[1].split("[GTO]")
    numbers, coords = _parse_atoms(atoms_text)
    gto_text, mo_text = rest.split("[MO]")
    shells = sorted(_parse_shells(gto_text), key=lambda s: s[0])  # stable: keeps shell order
    basis: dict[str, list] = {}
    order, scale, offset = [], [], 0
    for atom, ang, exps, coefs in shells:
        label = f"{SYMBOLS[numbers[atom]]}{atom + 1}"
        raw = coefs / gto.gto_norm(ang, exps)  # pyscf multiplies its primitives' norm back in
        primitives = [[float(e), float(c)] for e, c in zip(exps, raw, strict=True)]
        basis.setdefault(label, []).append([ang, *primitives])
        n = (ang + 1) * (ang + 2) // 2
        factor = _radial_norm(ang, exps, coefs) / _LIBCINT_COMMON.get(ang, 1.0)
        per = np.full(n, factor)
        if ang == 2:
            per[3:] *= math.sqrt(3.0)
            order += [offset + k for k in _MOLDEN_TO_PYSCF_D]
        else:
            order += list(range(offset, offset + n))
        scale.append(per)
        offset += n
    mol = gto.M(atom=[(f"{SYMBOLS[z]}{i + 1}", tuple(xyz)) for i, (z, xyz) in
                      enumerate(zip(numbers, coords, strict=True))],
                basis=basis, unit="Bohr", cart=True, spin=sum(numbers) % 2, verbose=0)
    _, occ, coeff, spins = _parse_mos(mo_text, offset)
    coeff = (coeff * np.concatenate(scale)[:, None])[order]
    return mol, occ, coeff, spins


def check_orbitals(mol, coeff: np.ndarray, spins: list[str]) -> None:
    """Fail unless the MOs of each spin channel are orthonormal in the loaded basis."""
    overlap = mol.intor("int1e_ovlp")
    for spin in sorted(set(spins)):
        c = coeff[:, [i for i, s in enumerate(spins) if s == spin]]
        error = np.abs(c.T @ overlap @ c - np.eye(c.shape[1])).max()
        if error > ORTHONORMALITY_TOLERANCE:
            raise StageFailure("engine_error", f"xtb molden orbitals not orthonormal ({error:.2e})")


def parse_labels(stdout: str, result: dict[str, Any]) -> dict[str, float | None]:
    """Energies (Hartree), xtb's HOMO/LUMO (Hartree), gap (eV) and dipole (Debye)."""
    labels: dict[str, float | None] = {
        "final_energy_hartree": float(result["total energy"]),
        "total_energy_hartree": float(result["total energy"]),
        "electronic_energy_hartree": float(result["electronic energy"]),
    }
    marked = {}
    for tag in ("HOMO", "LUMO"):
        lines = [ln.split() for ln in stdout.splitlines() if ln.rstrip().endswith(f"({tag})")]
        marked[tag] = float(lines[-1][-3]) if lines else None
    labels.update(frontier_labels(marked["HOMO"], marked["LUMO"]))
    if "HOMO-LUMO gap/eV" in result:
        labels["gap_ev"] = float(result["HOMO-LUMO gap/eV"])
        labels["gap_hartree"] = labels["gap_ev"] / EV_PER_HARTREE
    labels.update(dipole_labels(np.asarray(result["dipole"], dtype=float) * DEBYE_PER_AU))
    return labels


def _iterations(stdout: str) -> int:
    found = re.findall(r"convergence criteria satisfied after\s+(\d+)\s+iterations", stdout)
    return int(found[-1]) if found else -1


def _version(result: dict[str, Any]) -> str:
    return str(result.get("xtb version", "unknown")).split()[0]


def run(
    molecule: Molecule, settings: dict[str, Any], threads: int = 1,
    scratch_root: str | Path | None = None,
) -> DensityResult:
    """Valence density of one molecule with validated ``settings`` (no ESP)."""
    start = time.perf_counter()
    timings_s: dict[str, float] = {}  # density_grid includes reading and checking the orbitals
    workdir = Path(tempfile.mkdtemp(prefix="xtb-", dir=scratch_root))
    try:
        with timed(timings_s, "scf"):
            stdout = run_xtb(workdir, molecule, settings, threads)
            result = json.loads((workdir / "xtbout.json").read_text())
        with timed(timings_s, "density_grid"):
            mol, occ, coeff, spins = load_molden(workdir / "molden.input")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    n_expected = expected_valence(molecule)
    if int(result["number of electrons"]) != n_expected:
        raise StageFailure("engine_error", f"xtb counts {result['number of electrons']} valence "
                           f"electrons, expected {n_expected}")
    with timed(timings_s, "density_grid"):
        check_orbitals(mol, coeff, spins)
        dm = (coeff * occ) @ coeff.T
        n_dm = float(np.einsum("ij,ji->", dm, mol.intor_symmetric("int1e_ovlp")))
        check_electron_count(n_dm, n_expected)
        coords = mol.atom_coords()
        spec = grid_for(coords, settings)
        density = spec.to_grid(density_on_grid(mol, coeff, occ, spec))
    prov = provenance(
        NAME, _version(result),
        method=METHOD_NAMES[settings["method"]],
        basis="xtb minimal valence STO-nG (from molden.input)",
        functional_definition=f"{result.get('method', settings['method'])} tight binding, "
        f"electronic temperature {float(settings['electronic_temperature_k']):g} K",
        multiplicity=spin_multiplicity(molecule, settings["multiplicity"]),
        density_kind="valence",
        grid={"kind": settings["grid"], **spec.describe()},
        esp="none",
        scf_converged=True,
        scf_iterations=_iterations(stdout),
        threads=threads,
        timings_s=timings_s,
        wall_s=time.perf_counter() - start,
    )
    return DensityResult(
        id=molecule.id,
        atomic_numbers=np.asarray(molecule.atomic_numbers, dtype=np.int64),
        coords_bohr=coords,
        density=density,
        esp=None,
        labels=parse_labels(stdout, result),
        checks=density_checks(density, n_expected, n_dm),
        provenance=prov,
    )
