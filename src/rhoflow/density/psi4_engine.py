"""psi4 engine: a generated psithon input run as ``psi4 -n THREADS input.dat`` in a scratch dir.

The input (see :func:`build_input`) sets ``symmetry c1``, ``no_reorient`` and ``no_com`` so the
molecule keeps its input frame, runs ``energy(method)`` with reference rks/uks (rhf/uhf for
``method: hf``) chosen from the multiplicity, then ``cubeprop`` with tasks ``density`` and
``esp`` on the grid of :mod:`rhoflow.density.grid`. Instead of regexes over ``output.dat`` the
input dumps psi4's variables, orbital energies, tr(DS), the superfunctional's components, the
shells of the orbital and fitting bases as used (:mod:`rhoflow.density.basis` hashes them) and
the cube grid's bohr constant to ``rhoflow.json``, which is read back. Scratch (``PSI_SCRATCH``
and the cubes) lives in a per-molecule temporary directory removed after parsing.

psi4 1.3.2 specifics this relies on (checked): ``psi4.ConvergenceError`` is raised when the SCF
does not converge; ``SCF DIPOLE X/Y/Z`` are in Debye; ``SCF ITERATIONS`` exists; ``b3lyp`` is
libxc ``HYB_GGA_XC_B3LYP`` (VWN_RPA); 6-31G* / 6-31G** are cartesian in psi4's basis files;
the ESP electronic part is density-fitted with ``DF_BASIS_SCF``, which rhoflow sets to
``df_basis_scf`` (default def2-qzvpp-jkfit: psi4's own choice for 6-31G*/6-31G**, cc-pVDZ-JKFIT,
cannot fit bromine's core — 0.13 Hartree too high in a DF SCF);
cube values are written with six significant digits (``%12.5E``).

Nothing user-given enters the input unchecked: the method and basis must match the schema's
strict patterns and every number is formatted here.

Settings: the ``density.psi4`` section of ``rhoflow/schemas/config.schema.yaml``, complete (filled
and checked once where the command enters the library).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.density.basis import psi4_basis_file, psi4_records
from rhoflow.density.checks import check_electron_count, density_checks
from rhoflow.density.common import (
    annotate_functional,
    coords_angstrom,
    die_with_parent,
    dipole_labels,
    element_symbols,
    frontier_from_spins,
    frontier_labels,
    provenance,
    spin_multiplicity,
    timed,
    total_electrons,
)
from rhoflow.density.grid import GridSpec, grid_for
from rhoflow.molecule import Molecule
from rhoflow.parallel import StageFailure
from rhoflow.result import DensityResult, Grid

NAME = "psi4"

PSI4_BOHR_ANGSTROM = 0.52917721067
"""psi4 1.3.2's bohr (CODATA 2014); checked against the running psi4 after every run."""

DF_SCF_TYPES = ("df", "mem_df", "disk_df")
"""SCF types after which the wavefunction carries DF_BASIS_SCF (cubeprop's ESP needs it)."""
JSON_NAME = "rhoflow.json"
NOT_CONVERGED = re.compile(r"Could not converge SCF|ConvergenceError: ", re.IGNORECASE)
"""psi4 convergence failures raised where the input cannot catch them (C++ PsiException)."""
MISSING_BASIS = re.compile(
    r"Unable to find a basis set for atom (\d+) .*?Shell Entries: \[([^\]]*)\]"
    r"\s*Basis Sets: \[\('([^']*)'",
    re.DOTALL,
)
"""psi4's BasisSetNotFound text: atom number, its shell entries (label, element), basis."""
BASIS_MISSING_TEXT = " has no functions for element "
"""In the message of a run whose basis lacks an element (reason ``basis_missing``)."""
BOX_NUDGE = 1e-9
"""Relative shrink of the overage passed for box grids so psi4's ceil lands on n − 1 steps."""


def _is_hf(method: str) -> bool:
    return method.lower() in ("hf", "scf")


def psi4_reference(method: str, reference: str, multiplicity: int) -> str:
    """rhf/uhf (HF) or rks/uks (DFT): restricted for singlets unless told otherwise."""
    restricted = reference == "restricted" or (reference == "auto" and multiplicity == 1)
    if restricted and multiplicity != 1:
        raise ValueError("reference 'restricted' needs a singlet; use auto or unrestricted")
    return ("r" if restricted else "u") + ("hf" if _is_hf(method) else "ks")


def psi4_grid_options(spec: GridSpec, coords_bohr: np.ndarray) -> tuple[list[float], list[float]]:
    """(spacing, overage) per axis that make psi4's cubeprop build exactly ``spec``.

    psi4 takes ``N = ceil((span + 2·overage) / spacing)`` steps; asking for an overage a hair
    smaller than ``(spacing·(n − 1) − span) / 2`` gives ``N = n − 1`` and the same centred
    origin. Works for both grid kinds (the cubeprop kind gives back its own overage).
    """
    span = np.ptp(np.asarray(coords_bohr).reshape(-1, 3), axis=0)
    spacing = [float(d) for d in spec.spacing_bohr]
    overage = [
        (d * (n - 1) - s) / 2.0 - BOX_NUDGE * d
        for d, n, s in zip(spacing, spec.shape, span, strict=True)
    ]
    return spacing, overage


def _geometry_lines(molecule: Molecule, multiplicity: int) -> list[str]:
    lines = [f"{int(molecule.charge):d} {multiplicity:d}"]
    for symbol, (x, y, z) in zip(element_symbols(molecule), coords_angstrom(molecule), strict=True):
        lines.append(f"{symbol:<2s} {x:20.12f} {y:20.12f} {z:20.12f}")
    return lines + ["units angstrom", "symmetry c1", "no_reorient", "no_com"]


def _options(settings: dict[str, Any], reference: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "basis": settings["basis"],
        "reference": reference,
        "scf_type": settings["scf_type"],
        "e_convergence": float(settings["e_convergence"]),
        "d_convergence": float(settings["d_convergence"]),
        "maxiter": int(settings["maxiter"]),
        "fail_on_maxiter": True,
        "dft_radial_points": int(settings["dft_radial_points"]),
        "dft_spherical_points": int(settings["dft_spherical_points"]),
    }
    if settings["cartesian"] is not None:
        options["puream"] = not settings["cartesian"]
    if settings["df_basis_scf"] is not None:
        options["df_basis_scf"] = settings["df_basis_scf"]
    return options


_BODY = '''
result = {"converged": False, "version": psi4.__version__, "datadir": psi4.core.get_datadir(),
          "bohr_angstrom": float(psi4.constants.bohr2angstroms), "timings_s": {}, "cpu_s": {}}


def shells(bs):
    """The functions of a basis as used: [center, l, pure, exponents, file coefficients]."""
    return {"blend": bs.blend(), "shells": [
        [s.ncenter, s.am, bool(s.is_pure()), [s.exp(k) for k in range(s.nprimitive)],
         [s.original_coef(k) for k in range(s.nprimitive)]]
        for s in (bs.shell(i) for i in range(bs.nshell()))]}


def fitting_shells(wfn):
    try:
        aux = wfn.get_basisset("DF_BASIS_SCF")
    except Exception:  # no fitting basis on this wavefunction
        return None
    empty = aux.nshell() == 0 or (aux.nshell() == 1 and aux.shell(0).exp(0) == 0.0)
    return None if empty else shells(aux)  # a non-DF SCF carries psi4's zero (1, exp 0) basis


start, start_cpu = time.perf_counter(), time.process_time()
try:
    energy, wfn = psi4.energy(METHOD, return_wfn=True)
    result["converged"] = True
except psi4.ConvergenceError as exc:
    wfn = None
    result["iterations"] = getattr(exc, "iteration", None)
    result["message"] = str(exc).strip()
result["timings_s"]["scf"] = time.perf_counter() - start
result["cpu_s"]["scf"] = time.process_time() - start_cpu
if wfn is not None:
    result["variables"] = {k: float(v) for k, v in psi4.core.variables().items()}
    result["eps_a"] = [float(x) for x in wfn.epsilon_a().to_array()]
    result["eps_b"] = [float(x) for x in wfn.epsilon_b().to_array()]
    result["nalpha"], result["nbeta"] = int(wfn.nalpha()), int(wfn.nbeta())
    total = wfn.Da().clone()
    total.add(wfn.Db())
    result["n_electrons_dm"] = float(total.vector_dot(wfn.S()))
    result["puream"] = bool(wfn.basisset().has_puream())
    result["nbf"] = int(wfn.basisset().nbf())
    result["basis"] = shells(wfn.basisset())
    result["fit_basis"] = fitting_shells(wfn)
    sf = wfn.functional()
    result["functional"] = {
        "name": sf.name(), "x_alpha": float(sf.x_alpha()), "x_omega": float(sf.x_omega()),
        "x": [[f.name(), float(f.alpha())] for f in sf.x_functionals()],
        "c": [[f.name(), float(f.alpha())] for f in sf.c_functionals()],
    }
    if "esp" in CUBE_TASKS and BUILD_ESP_AUX:  # non-DF SCF: cubeprop's ESP needs the fit basis
        aux = psi4.core.BasisSet.build(wfn.molecule(), "DF_BASIS_SCF",
                                       psi4.core.get_global_option("DF_BASIS_SCF"), "JKFIT",
                                       psi4.core.get_global_option("BASIS"))
        wfn.set_basisset("DF_BASIS_SCF", aux)
        result["fit_basis"] = shells(aux)
    for task in CUBE_TASKS:  # one cubeprop call per task, so each is timed
        psi4.set_options({"cubeprop_tasks": [task], "cubeprop_filepath": ".",
                          "cubic_grid_spacing": SPACING, "cubic_grid_overage": OVERAGE})
        start, start_cpu = time.perf_counter(), time.process_time()
        psi4.cubeprop(wfn)
        result["timings_s"][task] = time.perf_counter() - start
        result["cpu_s"][task] = time.process_time() - start_cpu
with open(JSON_NAME, "w") as fh:
    json.dump(result, fh)
'''


def build_input(
    molecule: Molecule,
    settings: dict[str, Any],
    multiplicity: int,
    grid: tuple[list[float], list[float]] | None,
) -> str:
    """psithon input text; ``grid = (spacing, overage)`` per axis (bohr) or None for no cubes."""
    reference = psi4_reference(settings["method"], settings["reference"], multiplicity)
    tasks = (["density", "esp"] if settings["esp"] else ["density"]) if grid else []
    spacing, overage = grid if grid else ([], [])
    header = [
        "# generated by rhoflow.density.psi4_engine",
        "import json",
        "import time",
        f"psi4.set_memory({int(settings['memory_mb']) * 1_000_000:d})",
        "molecule mol {",
        *_geometry_lines(molecule, multiplicity),
        "}",
        f"psi4.set_options({_literal(_options(settings, reference))})",
        f"METHOD = {_literal(settings['method'])}",
        f"CUBE_TASKS = {_literal(tasks)}",
        f"SPACING = {_literal(spacing)}",
        f"OVERAGE = {_literal(overage)}",
        f"JSON_NAME = {_literal(JSON_NAME)}",
        f"BUILD_ESP_AUX = {_literal(settings['scf_type'] not in DF_SCF_TYPES)}",
    ]
    return "\n".join(header) + "\n" + _BODY


def _literal(value: Any) -> str:
    """Python literal of validated settings values (str, bool, int, float, lists, dicts)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return f"{value:d}"
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, str):
        if not re.fullmatch(r"[A-Za-z0-9*+(),._-]*", value):
            raise ValueError(f"refusing to put {value!r} into a psi4 input")
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot put {type(value).__name__} into a psi4 input")


def run_psi4(workdir: Path, text: str, threads: int, timeout_s: float) -> dict[str, Any]:
    """Run ``psi4 -n threads input.dat`` in ``workdir``; return the parsed ``rhoflow.json``."""
    exe = shutil.which("psi4")
    if exe is None:
        raise StageFailure("engine_error", "psi4 executable not found on PATH")
    (workdir / "input.dat").write_text(text)
    env = dict(os.environ, PSI_SCRATCH=str(workdir), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    try:
        proc = subprocess.run(
            [exe, "-n", str(threads), "input.dat", "-o", "output.dat"],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout_s,
            preexec_fn=die_with_parent,
        )
    except subprocess.TimeoutExpired as exc:
        raise StageFailure("timeout", f"psi4 exceeded {timeout_s:g} s") from exc
    result_path = workdir / JSON_NAME
    result = json.loads(result_path.read_text()) if result_path.exists() else None
    if result is not None and not result["converged"]:  # psi4 may still abort on exit
        raise StageFailure("scf_not_converged", f"psi4: {result.get('message', '')} "
                           f"(iterations {result.get('iterations')})")
    if proc.returncode != 0 or result is None:
        tail = _error_tail(workdir, proc)
        reason = ("basis_missing" if BASIS_MISSING_TEXT in tail else
                  "scf_not_converged" if NOT_CONVERGED.search(tail) else "engine_error")
        raise StageFailure(reason, f"psi4 {_exit_status(proc.returncode)}: {tail}")
    return result


def _exit_status(returncode: int) -> str:
    """``exit N``, or ``killed by signal SIGKILL`` for a psi4 process a signal ended."""
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        return f"killed by signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def _error_tail(workdir: Path, proc: subprocess.CompletedProcess) -> str:
    """The most telling lines of a failed run: a basis lacking an element, else psi4's error
    text or the last output lines."""
    text = (proc.stderr or "") + (proc.stdout or "")
    output = workdir / "output.dat"
    if output.exists():
        text += output.read_text(errors="replace")
    if missing := MISSING_BASIS.search(text):
        element = missing[2].split(",")[-1].strip(" '\"")
        return f"basis {missing[3]}{BASIS_MISSING_TEXT}{element} (atom {missing[1]})"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"error|exception|fatal", ln, re.IGNORECASE)]
    return " | ".join((errors or lines)[-4:])[:400]


def parse_labels(result: dict[str, Any], method: str) -> dict[str, float | None]:
    """Energies (Hartree), frontier orbitals (Hartree, eV) and dipole (Debye) from the JSON."""
    v = result["variables"]
    labels: dict[str, float | None] = {
        "final_energy_hartree": v.get("CURRENT ENERGY"),
        "total_energy_hartree": v.get("SCF TOTAL ENERGY"),
        "nuclear_repulsion_energy_hartree": v.get("NUCLEAR REPULSION ENERGY"),
        "one_electron_energy_hartree": v.get("ONE-ELECTRON ENERGY"),
        "two_electron_energy_hartree": v.get("TWO-ELECTRON ENERGY"),
        "xc_energy_hartree": 0.0 if _is_hf(method) else v.get("DFT XC ENERGY"),
    }
    energies = [np.asarray(result["eps_a"]), np.asarray(result["eps_b"])]
    labels.update(frontier_labels(*frontier_from_spins(energies,
                                                      [result["nalpha"], result["nbeta"]])))
    if all(f"SCF DIPOLE {c}" in v for c in "XYZ"):  # psi4 ≤ 1.3: Debye
        labels.update(dipole_labels(np.array([v[f"SCF DIPOLE {c}"] for c in "XYZ"])))
    return labels


def functional_definition(result: dict[str, Any], version: str) -> str:
    """The superfunctional psi4 ran, component by component."""
    f = result["functional"]
    if not f["x"] and not f["c"] and f["x_alpha"] == 1.0:
        return f"Hartree-Fock (psi4 {version})"
    parts = [f"{w:g}*{name}" for name, w in f["x"] + f["c"]]
    text = f"{f['name']} = " + " + ".join(parts)
    if f["x_alpha"] and not any("HYB_" in name for name, _ in f["x"] + f["c"]):
        text += f" + {f['x_alpha']:g}*HF exchange"
    if f["x_omega"]:
        text += f" (range separation omega {f['x_omega']:g})"
    notes = annotate_functional([name for name, _ in f["x"] + f["c"]])
    return text + (f" [{notes}]" if notes else "") + f" (psi4 {version})"


def basis_provenance(result: dict[str, Any], symbols: list[str]) -> dict[str, Any]:
    """Per-element records (:mod:`rhoflow.density.basis`) of the orbital basis and, where psi4
    used one (a DF SCF, the cubeprop ESP), of its fitting basis ``DF_BASIS_SCF``."""
    out = {}
    for key, field in (("basis", "basis_functions"), ("fit_basis", "fit_basis_functions")):
        if result.get(key):
            name = result[key]["blend"]
            try:
                source = str(psi4_basis_file(name, Path(result["datadir"])))
            except FileNotFoundError:
                source = f"psi4 {result['version']} basis {name!r}"
            out[field] = psi4_records(result[key]["shells"], symbols, name, source)
    return out


def _read_grid(path: Path, spec: GridSpec) -> Grid:
    """A psi4 cube, checked to lie on ``spec`` (origin to the cube's 1e-6 bohr precision)."""
    from rhoflow.cube import read_cube  # rhoflow.cube imports this package: import late
    _, _, grid = read_cube(path)
    if grid.shape != spec.shape or np.abs(grid.origin_bohr - spec.origin_bohr).max() > 2e-6:
        raise StageFailure("engine_error", f"psi4 grid {grid.shape} at {grid.origin_bohr} "
                           f"differs from the requested {spec.shape} at {spec.origin_bohr}")
    return spec.to_grid(grid.values)


def _check_bohr(result: dict[str, Any]) -> None:
    if abs(result["bohr_angstrom"] - PSI4_BOHR_ANGSTROM) > 1e-12:
        raise StageFailure("engine_error", f"psi4 bohr {result['bohr_angstrom']} differs from "
                           f"{PSI4_BOHR_ANGSTROM} the grid was built with")


def compute(
    molecule: Molecule,
    settings: dict[str, Any],
    threads: int = 1,
    cubes: bool = True,
    scratch_root: str | Path | None = None,
) -> tuple[dict[str, Any], GridSpec | None, Grid | None, Grid | None]:
    """Run psi4 once: (parsed JSON, grid spec, density, ESP); grids are None without cubes."""
    mult = spin_multiplicity(molecule, settings["multiplicity"])
    coords_bohr = coords_angstrom(molecule) / PSI4_BOHR_ANGSTROM
    spec = grid_for(coords_bohr, settings) if cubes else None
    grid_options = psi4_grid_options(spec, coords_bohr) if spec else None
    text = build_input(molecule, settings, mult, grid_options)
    workdir = Path(tempfile.mkdtemp(prefix="psi4-", dir=scratch_root))
    try:
        result = run_psi4(workdir, text, threads, float(settings["timeout_s"]))
        _check_bohr(result)
        result["multiplicity"] = mult
        psi4_s = result["timings_s"]  # inside psi4: energy(), cubeprop per task
        timings_s = {"scf": psi4_s["scf"], "density_grid": psi4_s.get("density", 0.0)}
        with timed(timings_s, "density_grid"):
            density = _read_grid(workdir / "Dt.cube", spec) if spec else None
        if spec and settings["esp"]:
            timings_s["esp_grid"] = psi4_s.get("esp", 0.0)
            with timed(timings_s, "esp_grid"):
                esp = _read_grid(workdir / "ESP.cube", spec)
        else:
            esp = None
        result["timings_s"] = timings_s
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result, spec, density, esp


def run(
    molecule: Molecule, settings: dict[str, Any], threads: int = 1,
    scratch_root: str | Path | None = None,
) -> DensityResult:
    """Density (and ESP) of one molecule with validated ``settings``."""
    start = time.perf_counter()
    result, spec, density, esp = compute(molecule, settings, threads, True, scratch_root)
    assert spec is not None and density is not None
    n_expected = total_electrons(molecule)
    check_electron_count(result["n_electrons_dm"], n_expected)
    v = result["variables"]
    prov = provenance(
        NAME,
        result["version"],
        method=settings["method"],
        reference=psi4_reference(settings["method"], settings["reference"],
                                 result["multiplicity"]).upper(),
        basis=settings["basis"],
        cartesian=not result["puream"],
        **basis_provenance(result, element_symbols(molecule)),
        functional_definition=functional_definition(result, result["version"]),
        scf_type=settings["scf_type"],
        multiplicity=result["multiplicity"],
        grid={"kind": settings["grid"], **spec.describe()},
        esp="psi4 cubeprop, density-fitted (DF_BASIS_SCF)" if settings["esp"] else "none",
        scf_converged=True,
        scf_iterations=int(v.get("SCF ITERATIONS", -1)),
        threads=threads,
        timings_s=result["timings_s"],
        wall_s=time.perf_counter() - start,
    )
    return DensityResult(
        id=molecule.id,
        atomic_numbers=np.asarray(molecule.atomic_numbers, dtype=np.int64),
        coords_bohr=coords_angstrom(molecule) / PSI4_BOHR_ANGSTROM,
        density=density,
        esp=esp,
        labels=parse_labels(result, settings["method"]),
        checks=density_checks(density, n_expected, result["n_electrons_dm"]),
        provenance=prov,
    )
