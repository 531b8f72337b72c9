"""Where a molecule's time goes in each density engine: SCF, density, ESP, store write.

Runs each engine on the first ``--n`` (5) PCQM4Mv2 molecules of
../shared/data/pcqm4mv2/pcqm4mv2_first1000.csv at their source (DFT) coordinates, at the EDBench
settings, one molecule at a time in this process, limited to ``--threads`` threads (OpenMP and
BLAS, as every density worker is; default 1):

=======  ===================================================================================
psi4     the engine defaults: B3LYP/6-31G** (cartesian), ``scf_type df``, cubeprop grid 0.4 bohr
         spacing, 4.0 bohr overage, density + ESP cubes
pyscf    the same method, basis (cartesian, as psi4) and grid; density-fitted SCF (as psi4's
         ``scf_type df``), ESP ``df`` (the engine default, made as psi4's cubeprop makes it)
xtb      GFN2-xTB (the engine defaults), valence density on the same grid; no ESP
=======  ===================================================================================

Phases per molecule, each as wall time (s) and CPU time (s: this process plus finished child
processes, every thread counted), and how they are timed:

``scf``           provenance ``timings_s.scf``: psi4 — ``psi4.energy()`` inside psi4 (timed in
                  the generated input); pyscf — building the Mole and the SCF kernel; xtb — the
                  xtb program (its start-up included) and reading its JSON.
``density``       provenance ``timings_s.density_grid``: psi4 — cubeprop's ``density`` task
                  inside psi4 plus rhoflow reading ``Dt.cube``; pyscf — ``density_on_grid``;
                  xtb — reading the orbitals (molden), their checks and ``density_on_grid``.
``esp``           provenance ``timings_s.esp_grid``: psi4 — cubeprop's ``esp`` task plus
                  reading ``ESP.cube``; pyscf — ``esp_on_grid`` (density fit + potential).
``write``         the molecule's marginal cost in a shard store: a
                  :class:`~rhoflow.store.StoreWriter` store holding 8 copies of the molecule
                  (fastest of ``--write-repeat``) minus an empty store (fastest), divided by 8.
                  That fixed cost per shard (creating the arrays, tables, consolidated metadata;
                  printed) is shared by ~1,000 molecules in production and left out.
``other``         wall time − the phases above: program start-up (psi4 ≈ 1–2 s), labels,
                  checks.
``overhead %``    (density + esp + write) / scf × 100, of wall and of CPU time; the goal is
                  ≤ 25 %.

The CPU times come from wrapping the engines' ``timed`` blocks (and psi4's own split, written
by the generated input); psi4's cube-text parsing is also timed alone (``cube read``, wall).

``--as-rule`` runs each molecule as the density rule runs it instead
(:func:`rhoflow.density.iter_shard`: a forked worker): ``other`` is then the parent's wall time
− the phases and adds the worker's start-up (imports), scratch and the result's way back; CPU
times, ``cube read`` and ``--retime`` need the in-process run and are left empty.

    .venv/bin/python benchmarks/engine_time_split.py                       # all, 5 molecules
    .venv/bin/python benchmarks/engine_time_split.py --engines xtb pyscf --repeat 2 \\
        --json /tmp/split.json --save-arrays /tmp/split-arrays
    .venv/bin/python benchmarks/engine_time_split.py --compare /tmp/before /tmp/after

``--save-arrays DIR`` keeps every molecule's density and ESP (float64, as the engine returned
them) as ``DIR/<engine>/<id>.npz``; ``--compare A B`` prints the largest differences between two
such folders (a speed-up must leave the values unchanged). ``--profile DIR`` writes a cProfile
of every engine run. ``--retime N`` re-times pyscf's density and ESP N more times on each
converged SCF through the functions the engine calls (rows ``<run>.<k>``): a pyscf
B3LYP/6-31G** SCF of these molecules takes minutes, its grid phases seconds. Timings on a
shared machine are noisy: compare the ratios, and rerun (the 1-minute load average after every
run is in the JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import itertools
import json
import os
import resource
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from store_formats_data import pcqm_molecules  # the benchmarks' one PCQM4Mv2 reader

from rhoflow.config import section_settings
from rhoflow.density import ENGINES, iter_shard, psi4_engine, pyscf_engine, xtb_engine
from rhoflow.density.grid import grid_for
from rhoflow.ledger import LedgerRow
from rhoflow.molecule import Molecule
from rhoflow.parallel import limit_threads
from rhoflow.result import DensityResult
from rhoflow.store import StoreWriter

SETTINGS: dict[str, dict[str, Any]] = {
    "psi4": {},
    "pyscf": {"method": "b3lyp", "basis": "6-31g**", "density_fitting": True},
    "xtb": {},
}
"""What each engine is given on top of its defaults (the EDBench settings, module docstring)."""
WRITE_COPIES = 8
"""Copies of a molecule written into one store to time its marginal write cost."""
PHASES = ("scf", "density", "esp", "write")
ENGINE_MODULES = (psi4_engine, pyscf_engine, xtb_engine)


def cpu_seconds() -> float:
    """CPU time (s) of this process and of its finished, waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _store_seconds(results: list[DensityResult], path: Path) -> tuple[float, float]:
    """(wall s, CPU s) of writing ``results`` as one shard store at ``path`` (then removed)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    with StoreWriter(path) as writer:
        for result in results:
            writer.add(result)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    shutil.rmtree(path)
    return seconds, cpu


def write_seconds(
    result: DensityResult, empty: list[tuple[float, float]], tmp: Path, repeat: int
) -> tuple[float, float]:
    """Marginal store-write (wall s, CPU s) of one molecule (module docstring); ``empty`` are
    the timings of empty stores."""
    copies = [dataclasses.replace(result, id=f"{result.id}#{k}") for k in range(WRITE_COPIES)]
    runs = [_store_seconds(copies, tmp / f"w{k}.zarr") for k in range(repeat)]
    return tuple(  # type: ignore[return-value]
        (min(r[i] for r in runs) - min(e[i] for e in empty)) / WRITE_COPIES for i in (0, 1)
    )


class Probe:
    """Wraps engine functions during an in-process run: CPU time per ``timed`` phase, psi4's
    own CPU split (its JSON), the seconds spent parsing psi4 cubes, pyscf's converged SCF."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.psi4_cpu: dict[str, float] = {}
        self.cube_read_s = 0.0
        self.mf: Any = None
        self._saved: list[tuple[Any, str, Any]] = []

    def _patch(self, module: Any, name: str, replacement: Any) -> None:
        self._saved.append((module, name, getattr(module, name)))
        setattr(module, name, replacement)

    def __enter__(self) -> Probe:
        original_timed = ENGINE_MODULES[0].timed

        @contextlib.contextmanager
        def timed(timings_s: dict[str, float], phase: str) -> Iterator[None]:
            start = cpu_seconds()
            with original_timed(timings_s, phase):
                yield
            self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu_seconds() - start

        for module in ENGINE_MODULES:
            self._patch(module, "timed", timed)
        read_grid, run_psi4, run_scf = (
            psi4_engine._read_grid,
            psi4_engine.run_psi4,
            pyscf_engine.run_scf,
        )

        def timed_read(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return read_grid(*args, **kwargs)
            finally:
                self.cube_read_s += time.perf_counter() - start

        def keep_psi4_cpu(*args: Any, **kwargs: Any) -> Any:
            result = run_psi4(*args, **kwargs)
            self.psi4_cpu = dict(result.get("cpu_s", {}))
            return result

        def keep_scf(*args: Any, **kwargs: Any) -> Any:
            self.mf = run_scf(*args, **kwargs)
            return self.mf

        self._patch(psi4_engine, "_read_grid", timed_read)
        self._patch(psi4_engine, "run_psi4", keep_psi4_cpu)
        self._patch(pyscf_engine, "run_scf", keep_scf)
        return self

    def __exit__(self, *exc: object) -> None:
        for module, name, value in reversed(self._saved):
            setattr(module, name, value)

    def phase_cpu(self, engine: str) -> dict[str, float]:
        """CPU s of the phases scf, density, esp."""
        cpu = {
            "scf": self.cpu.get("scf", 0.0),
            "density": self.cpu.get("density_grid", 0.0),
            "esp": self.cpu.get("esp_grid", 0.0),
        }
        if engine == "psi4":  # psi4's phases run inside psi4; rhoflow's part is reading cubes
            cpu["scf"] = self.psi4_cpu.get("scf", 0.0)
            cpu["density"] += self.psi4_cpu.get("density", 0.0)
            cpu["esp"] += self.psi4_cpu.get("esp", 0.0)
        return cpu


def run_in_process(
    engine: str,
    molecule: Molecule,
    settings: dict[str, Any],
    threads: int,
    scratch: Path,
    profile: Path | None,
) -> tuple[DensityResult, Probe]:
    """One engine run in this process, probed (:class:`Probe`)."""
    spec = ENGINES[engine]
    kwargs: dict[str, Any] = {"threads": threads}
    if spec.takes_scratch:
        kwargs["scratch_root"] = str(scratch)
    with Probe() as probe:
        if profile is None:
            result = spec.run(molecule, settings, **kwargs)
        else:
            profiler = cProfile.Profile()
            result = profiler.runcall(spec.run, molecule, settings, **kwargs)
            profiler.dump_stats(profile)
    return result, probe


def run_as_rule(
    engine: str, molecule: Molecule, settings: dict[str, Any], threads: int
) -> tuple[DensityResult, float]:
    """One engine run as the density rule makes it (:func:`rhoflow.density.iter_shard`: a forked
    worker per molecule): (result, wall time seen by the parent, s)."""
    start = time.perf_counter()
    (item,) = iter_shard(engine, [molecule], settings, workers=1, threads=threads)
    wall_s = time.perf_counter() - start
    if isinstance(item, LedgerRow):
        raise RuntimeError(f"{engine} failed on {molecule.id}: {item.reason}: {item.message}")
    return item, wall_s


def retime_pyscf(mf: Any, settings: dict[str, Any]) -> dict[str, float]:
    """Density and ESP (wall and CPU s) once more on a converged SCF, through the functions
    that :func:`rhoflow.density.pyscf_engine.run` calls."""
    mol, dm = mf.mol, pyscf_engine.total_dm(mf)
    spec = grid_for(mol.atom_coords(), settings)
    out: dict[str, float] = {}
    start, start_cpu = time.perf_counter(), cpu_seconds()
    spec.to_grid(pyscf_engine.density_on_grid(mol, *pyscf_engine.occupied_orbitals(mf), spec))
    out["density"], out["density_cpu"] = time.perf_counter() - start, cpu_seconds() - start_cpu
    start, start_cpu = time.perf_counter(), cpu_seconds()
    pyscf_engine.esp_on_grid(mol, dm, spec, settings)
    out["esp"], out["esp_cpu"] = time.perf_counter() - start, cpu_seconds() - start_cpu
    return out


def with_ratios(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with ``other`` and the overhead ratios (%) of wall and CPU time."""
    row["other"] = row["wall"] - row["scf"] - row["density"] - row["esp"]
    row["overhead_pct"] = 100.0 * (row["density"] + row["esp"] + row["write"]) / row["scf"]
    if row.get("scf_cpu"):
        grid_cpu = row["density_cpu"] + row["esp_cpu"] + row["write_cpu"]
        row["overhead_cpu_pct"] = 100.0 * grid_cpu / row["scf_cpu"]
    return row


def save_arrays(result: DensityResult, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"density": result.density.values}
    if result.esp is not None:
        arrays["esp"] = result.esp.values
    np.savez(folder / f"{result.id.replace(':', '_')}.npz", **arrays)


def compare(first: Path, second: Path) -> None:
    """Print the largest differences between two ``--save-arrays`` folders: absolute, relative
    to the field's largest magnitude, and in float32 (the store's values) how many differ."""
    print("| engine | molecule | field | max abs diff | max abs | diff / max | float32 differ |")
    print("|---|---|---|---|---|---|---|")
    for path in sorted(first.glob("*/*.npz")):
        other = second / path.parent.name / path.name
        if not other.exists():
            print(f"| {path.parent.name} | {path.stem} | missing in {second} | | | | |")
            continue
        a, b = np.load(path), np.load(other)
        for field in a.files:
            diff, peak = np.abs(a[field] - b[field]).max(), np.abs(a[field]).max()
            f32 = int(np.count_nonzero(a[field].astype(np.float32) != b[field].astype(np.float32)))
            print(
                f"| {path.parent.name} | {path.stem} | {field} | {diff:.3e} | {peak:.3e} | "
                f"{diff / peak:.2e} | {f32:,} of {a[field].size:,} |"
            )


def _cell(row: dict[str, Any], key: str, digits: int = 2) -> str:
    value = row.get(key)
    return "" if value is None else f"{value:.{digits}f}"


def _bold(row: dict[str, Any], key: str) -> str:
    value = _cell(row, key, 1)
    return f"**{value}**" if value else ""


def print_table(engine: str, rows: list[dict[str, Any]], fixed_s: float) -> None:
    print(f"\n### {engine} (fixed store cost per shard {fixed_s:.3f} s, not per molecule)\n")
    print(
        "| molecule | run | points | scf s | density s | esp s | write s | other s | "
        "overhead % | scf cpu s | density cpu s | esp cpu s | write cpu s | overhead % cpu |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        print(
            f"| {r['id']} | {r['run']} | {r['n_points']:,} | {_cell(r, 'scf')} | "
            f"{_cell(r, 'density')} | {_cell(r, 'esp')} | {_cell(r, 'write', 3)} | "
            f"{_cell(r, 'other')} | {_cell(r, 'overhead_pct', 1)} | {_cell(r, 'scf_cpu')} | "
            f"{_cell(r, 'density_cpu')} | {_cell(r, 'esp_cpu')} | {_cell(r, 'write_cpu', 3)} | "
            f"{_cell(r, 'overhead_cpu_pct', 1)} |"
        )
        total = totals.setdefault(str(r["run"]), {"id": "**sum**", "run": r["run"], "n_points": 0})
        for key in (*PHASES, "wall", *(f"{p}_cpu" for p in PHASES)):
            if r.get(key) is not None:
                total[key] = total.get(key, 0.0) + r[key]
    for total in totals.values():
        with_ratios(total)
        print(
            f"| **sum** | {total['run']} | | {_cell(total, 'scf')} | {_cell(total, 'density')} | "
            f"{_cell(total, 'esp')} | {_cell(total, 'write', 3)} | {_cell(total, 'other')} | "
            f"{_bold(total, 'overhead_pct')} | {_cell(total, 'scf_cpu')} | "
            f"{_cell(total, 'density_cpu')} | {_cell(total, 'esp_cpu')} | "
            f"{_cell(total, 'write_cpu', 3)} | {_bold(total, 'overhead_cpu_pct')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--n", type=int, default=5, help="PCQM4Mv2 molecules (the first N)")
    parser.add_argument("--threads", type=int, default=1, help="threads per engine run")
    parser.add_argument("--repeat", type=int, default=2, help="runs of every engine/molecule")
    parser.add_argument("--write-repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--save-arrays", type=Path, help="keep densities/ESPs (first run)")
    parser.add_argument("--profile", type=Path, help="cProfile every engine run into DIR")
    parser.add_argument("--retime", type=int, default=0, help="pyscf: re-time density + ESP")
    parser.add_argument("--as-rule", action="store_true", help="run as the density rule does")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    limit_threads(args.threads)  # as every density worker does (numpy's BLAS included)
    molecules = pcqm_molecules(args.n)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "host": socket.gethostname(),
        "threads": args.threads,
        "as_rule": args.as_rule,
        "engines": {},
    }
    with tempfile.TemporaryDirectory(prefix="rhoflow-split-") as tmp:
        tmp_path = Path(tmp)
        for engine in args.engines:
            given = {**SETTINGS[engine], "timeout_s": 36000.0}
            settings = section_settings(f"density.{engine}", given)
            empty = [_store_seconds([], tmp_path / f"e{k}.zarr") for k in range(args.write_repeat)]
            rows = []
            for run, molecule in itertools.product(range(1, args.repeat + 1), molecules):
                stem = f"{engine}-{molecule.id.replace(':', '_')}-{run}"
                profile = args.profile / f"{stem}.prof" if args.profile else None
                if args.as_rule:
                    result, wall_s = run_as_rule(engine, molecule, settings, args.threads)
                    probe = None
                else:
                    result, probe = run_in_process(
                        engine, molecule, settings, args.threads, tmp_path, profile
                    )
                    wall_s = result.provenance["wall_s"]
                timings = result.provenance["timings_s"]
                write_s, write_cpu = write_seconds(result, empty, tmp_path, args.write_repeat)
                row: dict[str, Any] = {
                    "id": molecule.id,
                    "run": run,
                    "n_points": int(result.density.values.size),
                    "scf": timings["scf"],
                    "density": timings.get("density_grid", 0.0),
                    "esp": timings.get("esp_grid", 0.0),
                    "write": write_s,
                    "wall": wall_s,
                    "load_1min": os.getloadavg()[0],
                }
                if probe is not None:
                    cpu = probe.phase_cpu(engine)
                    row.update({f"{p}_cpu": cpu[p] for p in cpu}, write_cpu=write_cpu)
                    row["cube_read"] = probe.cube_read_s
                rows.append(with_ratios(row))
                print(f"{engine} {molecule.id} run {run}: " + json.dumps(row), flush=True)
                if args.save_arrays and run == 1:
                    save_arrays(result, args.save_arrays / engine)
                mf = probe.mf if probe is not None and engine == "pyscf" else None
                for k in range(args.retime if mf is not None else 0):
                    extra = {
                        **row,
                        "run": f"{run}.{k + 1}",
                        "wall": None,
                        **retime_pyscf(mf, settings),
                    }
                    extra["wall"] = extra["scf"] + extra["density"] + extra["esp"]
                    rows.append(with_ratios(extra))
                    print(f"  re-timed: {json.dumps(extra)}", flush=True)
            report["engines"][engine] = {
                "settings": settings,
                "fixed_store_s": min(e[0] for e in empty),
                "rows": rows,
            }
            print_table(engine, rows, min(e[0] for e in empty))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
