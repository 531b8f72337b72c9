"""GPU check: SchNet training on CUDA (bf16-mixed, 32-true) beside the CPU, and the pyscf engine
on CUDA (gpu4pyscf) against the CPU engine. Run through ``benchmarks/gpu_check.sh``, which
calls the steps below, each with the Python that can run it (the one with RDKit prepares, the
one whose torch sees CUDA trains, the one with pyscf computes densities):

    python benchmarks/gpu_check.py prepare --work DIR
    python benchmarks/gpu_check.py train   --work DIR --out OUT [--cpu-only] [--epochs 3]
    python benchmarks/gpu_check.py pyscf   --work DIR --out OUT [--cpu-only] [--molecules 3]
    python benchmarks/gpu_check.py report  --out OUT [--notes FILE]

``prepare`` writes, under DIR, micro_qm9 (``../shared/data/qm9/micro_qm9.csv``, 1,006 QM9
molecules; else the 5 valid molecules of ``tests/fixtures/qm9/gdb9.csv``, too few for the
numbers to mean anything, said in the report) through rhoflow's own stages: shards, ETKDG +
MMFF94 conformers (2 embeddings, the lowest kept), the source labels table and the seeded
80/10/10 split; and the ``--pcqm`` PCQM4Mv2 molecules with the fewest electrons (ties in file
order; of the first 1,000: ids 59, 750 and 915, 62-70 electrons, 12-19 atoms, where the median
molecule has 30 atoms and a bromine one costs ten times more) with their DFT coordinates
(``../shared/data/pcqm4mv2/pcqm4mv2_first1000.csv``, else ``tests/fixtures/pcqm4mv2/cxsmiles.csv``)
as a molecule table. Preparing takes ~75 core-seconds (ETKDG).

``train`` trains SchNet (PyG defaults, mean readout) on the gap (``source_gap_hartree``) for
``--epochs`` epochs on the CPU in 32-true and, where torch sees CUDA, on the GPU in 32-true and
bf16-mixed, with rhoflow's trainer (``rhoflow.train.build_trainer``). Reported per run: train
molecules per second (epoch wall time, validation included, median over the epochs after the
first, which pays for start-up), the last epoch's validation MAE (meV) and the first epoch's
seconds.

``pyscf`` runs the pyscf engine (``rhoflow.density.pyscf_engine.run``) at B3LYP/6-31G*
(density-fitted SCF, lowest multiplicity, density on the 0.4-bohr cubeprop grid, no ESP) with
``device: cpu`` and, where gpu4pyscf runs, ``device: cuda``, on the same molecules, and
compares: ΔE (µHartree), Δgap (meV), max |Δρ| on the grid (e/bohr³) and the engine's wall time
per molecule (SCF on the device; labels and grid on the CPU either way). One small warm-up
molecule runs on the GPU first (kernel loading is not counted).

``report`` merges the steps' ``train.json`` and ``pyscf.json`` into ``gpu_check.json`` and
``gpu_check.md`` in OUT. Any step that cannot run says why there instead of a number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
FIXTURES = REPO / "tests" / "fixtures"
QM9_SOURCES = (SHARED / "qm9" / "micro_qm9.csv", FIXTURES / "qm9" / "gdb9.csv")
PCQM_SOURCES = (
    SHARED / "pcqm4mv2" / "pcqm4mv2_first1000.csv",
    FIXTURES / "pcqm4mv2" / "cxsmiles.csv",
)
TARGET = "source_gap_hartree"
PCQM_LABEL = "homo_lumo_gap_ev"
HARTREE_EV = 27.211386245988
PYSCF_SETTINGS = {
    "method": "b3lyp",
    "basis": "6-31g*",
    "multiplicity": "lowest",
    "density_fitting": True,
    "esp": "none",
}
"""B3LYP/6-31G* as PCQM4Mv2's labels were computed; density-fitted, as GPU4PySCF runs best."""


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _first(paths: tuple[Path, ...]) -> Path:
    return next(p for p in paths if p.exists())


# --- prepare ------------------------------------------------------------------------------


def prepare(work: Path, threads: int, n_pcqm: int) -> None:
    """micro_qm9 tables, labels and split, and the ``n_pcqm`` PCQM4Mv2 molecules with the
    fewest electrons, under ``work``."""
    from rhoflow.config import section_settings
    from rhoflow.conformers import generate_shard
    from rhoflow.labels import build_labels
    from rhoflow.molecule import from_rdkit, read_molecules, write_molecules
    from rhoflow.shards import build_shards
    from rhoflow.sources import pcqm4mv2
    from rhoflow.splits import build_splits

    start = time.perf_counter()
    qm9 = _first(QM9_SOURCES)
    sources = [{"name": "qm9", "format": "qm9_csv", "path": str(qm9)}]
    shards = build_shards(sources, [qm9], 250, section_settings("shards")["filter"],
                          work / "shards", workers=threads)  # fmt: skip
    conformers = section_settings(
        "conformers", {"method": "etkdg", "n_conformers": 2, "k_lowest": 1, "reoptimize": "none"}
    )
    tables = []
    for shard in shards:
        done, _ = generate_shard(read_molecules(work / "shards" / f"{shard.shard}.parquet"),
                                 conformers, workers=threads)  # fmt: skip
        tables.append(work / "conformers" / f"{shard.shard}.parquet")
        tables[-1].parent.mkdir(parents=True, exist_ok=True)
        write_molecules(tables[-1], done)
    build_labels(work / "labels.parquet", [], tables)
    n_qm9 = sum(len(read_molecules(t)) for t in tables)
    few = {"counts": [n_qm9 - 2, 1, 1]} if n_qm9 < 20 else {}  # the fixtures: one val molecule
    build_splits(tables, work / "split.parquet", "qm9", "qm9_csv", section_settings("splits", few))

    pcqm_csv = _first(PCQM_SOURCES)
    parsed = []
    for entry in pcqm4mv2.read_cxsmiles(pcqm_csv, {}):
        record = pcqm4mv2.parse_cxsmiles(entry, {})
        if not record.failure:
            parsed.append(from_rdkit(f"pcqm4mv2:{entry.native_id}", record.mol, record.labels))
    electrons = [int(m.atomic_numbers.sum()) - m.charge for m in parsed]
    order = sorted(range(len(parsed)), key=lambda i: electrons[i])  # stable: file order in ties
    molecules = [parsed[i] for i in sorted(order[:n_pcqm])]
    write_molecules(work / "pcqm.parquet", molecules)
    _write_json(work / "prepared.json", {
        "qm9_source": str(qm9), "qm9_molecules": n_qm9, "pcqm_source": str(pcqm_csv),
        "pcqm_molecules": len(molecules), "seconds": round(time.perf_counter() - start, 1),
        "fixture_data": not qm9.is_relative_to(SHARED),
    })  # fmt: skip
    print(f"prepared {n_qm9} QM9 molecules ({qm9}) and {len(molecules)} PCQM4Mv2 molecules "
          f"in {time.perf_counter() - start:.0f} s -> {work}")  # fmt: skip


# --- train --------------------------------------------------------------------------------


def trainer_settings(given: dict[str, Any]) -> dict[str, Any]:
    """``train.trainer`` completed with the schema's defaults (read directly where this Python
    lacks jsonschema, as a CUDA image's may)."""
    try:
        from rhoflow.config import section_settings
    except ImportError:
        from importlib import resources

        import yaml

        text = (resources.files("rhoflow.schemas") / "config.schema.yaml").read_text()
        props = yaml.safe_load(text)["$defs"]["trainer"]["properties"]
        return {**{k: p["default"] for k, p in props.items()}, **given}
    return section_settings("train.trainer", given)


def train_once(work: Path, accelerator: str, precision: str, epochs: int) -> dict[str, Any]:
    """One SchNet fit on ``accelerator`` (``cpu``/``gpu``) in ``precision``."""
    import lightning as L
    import torch

    from rhoflow.models import build_model
    from rhoflow.train import GeometryDataModule, PropertyTask, build_trainer
    from rhoflow.train.normalize import default_readout
    from rhoflow.train.property import fit_scaler
    from rhoflow.units import display_unit

    class EpochTimes(L.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self.start)

    settings = trainer_settings({
        "max_epochs": epochs, "scheduler": "none", "progress_bar": False,
        "accelerator": accelerator, "precision": precision, "devices": 1,
    })  # fmt: skip
    data = GeometryDataModule(
        sorted((work / "conformers").glob("*.parquet")), work / "labels.parquet",
        work / "split.parquet", TARGET, batch_size=settings["batch_size"], seed=settings["seed"],
    )  # fmt: skip
    L.seed_everything(0, workers=True)
    data.setup("fit")
    scaler = fit_scaler(data, settings["atomref"])
    model = build_model("schnet", readout=default_readout(TARGET))
    task = PropertyTask(model, scaler, data.target, data.unit, settings)
    timer = EpochTimes()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(settings, run_dir)
        trainer.callbacks.append(timer)
        trainer.fit(task, datamodule=data)
    unit, factor = display_unit(data.unit)
    n_train = len(data.datasets["train"])
    steady = timer.seconds[1:] or timer.seconds
    return {
        "device": "cuda" if accelerator == "gpu" else "cpu",
        "precision": precision,
        "epochs": len(timer.seconds),
        "n_train": n_train,
        "n_val": len(data.datasets["val"]),
        "molecules_per_s": n_train / statistics.median(steady),
        "first_epoch_s": timer.seconds[0],
        f"val_mae_{unit}": float(trainer.callback_metrics["val_mae"]) * factor,
        "threads": torch.get_num_threads(),
    }


def train(work: Path, out: Path, epochs: int, cpu_only: bool, threads: int) -> None:
    """CUDA 32-true and bf16-mixed where available, then CPU 32-true; ``out/train.json`` is
    rewritten after each run (a step stopped at its time limit keeps what it finished)."""
    import logging

    import torch

    logging.getLogger("lightning").setLevel(logging.WARNING)
    torch.set_num_threads(threads)
    skipped = None
    if cpu_only:
        skipped = "--cpu-only"
    elif not torch.cuda.is_available():
        skipped = f"torch {torch.__version__} sees no CUDA device"
    if skipped:
        print(f"CUDA training skipped: {skipped}", flush=True)
    record: dict[str, Any] = {
        "python": sys.executable,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "prepared": json.loads((work / "prepared.json").read_text()),
        "runs": [],
        "cuda_skipped": skipped,
    }
    plan = [] if skipped else [("gpu", "32-true"), ("gpu", "bf16-mixed")]
    for accelerator, precision in [*plan, ("cpu", "32-true")]:
        record["runs"].append(train_once(work, accelerator, precision, epochs))
        print(f"{accelerator} {precision}: {record['runs'][-1]}", flush=True)
        _write_json(out / "train.json", record)


# --- pyscf --------------------------------------------------------------------------------


def _engine_row(result: Any) -> dict[str, float | None]:
    prov = result.provenance
    return {
        "energy_hartree": result.labels["total_energy_hartree"],
        "gap_ev": result.labels["gap_ev"],
        "wall_s": prov["wall_s"],
        "scf_s": prov.get("timings_s", {}).get("scf"),
        "scf_iterations": prov["scf_iterations"],
    }


def pyscf(work: Path, out: Path, n: int, cpu_only: bool, threads: int) -> None:
    """CPU and (where gpu4pyscf runs) CUDA pyscf engine on ``n`` molecules: ``out/pyscf.json``."""
    import numpy as np
    import pyscf as pyscf_module

    from rhoflow.config import section_settings
    from rhoflow.density import pyscf_engine
    from rhoflow.molecule import Molecule, read_molecules

    molecules = read_molecules(work / "pcqm.parquet")[:n]
    cpu = section_settings("density.pyscf", {**PYSCF_SETTINGS, "device": "cpu"})
    cuda = section_settings("density.pyscf", {**PYSCF_SETTINGS, "device": "cuda"})
    skipped, auto, warm_up_s, gpu4pyscf = None, "cpu", None, None
    if cpu_only:
        skipped = "--cpu-only"
    else:
        auto = pyscf_engine.resolve_device("auto")  # starts CUDA here, where it then runs
        if auto != "cuda":
            try:
                pyscf_engine.resolve_device("cuda")
            except RuntimeError as exc:
                skipped = str(exc)
        else:
            import gpu4pyscf

            gpu4pyscf = gpu4pyscf.__version__
            water = Molecule("warmup:h2o", "O", 0, 1, np.array([8, 1, 1]), "",
                             np.array([[0, 0, 0.1173], [0, 0.7572, -0.4692],
                                       [0, -0.7572, -0.4692]]))  # fmt: skip
            start = time.perf_counter()
            pyscf_engine.run(water, cuda, threads)
            warm_up_s = time.perf_counter() - start
    if skipped:
        print(f"pyscf on CUDA skipped: {skipped}", flush=True)
    record: dict[str, Any] = {
        "python": sys.executable,
        "pyscf": pyscf_module.__version__,
        "gpu4pyscf": gpu4pyscf,
        "settings": PYSCF_SETTINGS,
        "threads": threads,
        "device_auto": auto,
        "cuda_skipped": skipped,
        "cuda_warm_up_s": warm_up_s,
        "molecules": [],
    }
    _write_json(out / "pyscf.json", record)
    for mol in molecules:
        row: dict[str, Any] = {"id": mol.id, "n_atoms": int(len(mol.atomic_numbers)),
                               "label_gap_ev": mol.labels.get(PCQM_LABEL)}  # fmt: skip
        on_cpu = pyscf_engine.run(mol, cpu, threads)
        row["cpu"] = _engine_row(on_cpu)
        if skipped is None:
            on_gpu = pyscf_engine.run(mol, cuda, threads)
            assert on_gpu.provenance["device"] == "cuda", on_gpu.provenance
            row["cuda"] = _engine_row(on_gpu)
            rho_cpu, rho_gpu = on_cpu.density.values, on_gpu.density.values
            row["delta"] = {
                "energy_uhartree": (row["cuda"]["energy_hartree"] - row["cpu"]["energy_hartree"])
                * 1e6,
                "gap_mev": (row["cuda"]["gap_ev"] - row["cpu"]["gap_ev"]) * 1e3,
                "max_abs_rho_e_per_bohr3": float(np.abs(rho_gpu - rho_cpu).max()),
                "rho_max_e_per_bohr3": float(rho_cpu.max()),
            }
        print(f"{mol.id}: {row}", flush=True)
        record["molecules"].append(row)
        _write_json(out / "pyscf.json", record)


# --- report -------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 5) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]


def _train_section(t: dict[str, Any]) -> list[str]:
    prep = t["prepared"]
    fixture = " (test fixtures: too few for meaningful numbers)" if prep["fixture_data"] else ""
    rows = [
        [r["device"], r["precision"], round(r["molecules_per_s"], 1),
         round(next(v for k, v in r.items() if k.startswith("val_mae_")), 1),
         round(r["first_epoch_s"], 1), r["epochs"], r["threads"]]
        for r in t["runs"]
    ]  # fmt: skip
    headers = ["device", "precision", "train molecules/s", "val MAE (meV)", "first epoch (s)",
               "epochs", "threads"]  # fmt: skip
    about = (
        f"torch {t['torch']} (CUDA {t['cuda']}), GPU: {t['gpu'] or 'none'}; "
        f"{prep['qm9_molecules']} molecules from `{prep['qm9_source']}`{fixture}."
    )
    md = ["", "## SchNet on micro_qm9 (gap)", "", about, ""]
    md += _table(headers, rows)
    if t["cuda_skipped"]:
        md.append(f"\nCUDA training skipped: {t['cuda_skipped']}.")
    return md


def _pyscf_section(p: dict[str, Any]) -> list[str]:
    warm = f", GPU warm-up {p['cuda_warm_up_s']:.1f} s" if p["cuda_warm_up_s"] else ""
    rows = []
    for r in p["molecules"]:
        d, g = r.get("delta", {}), r.get("cuda", {})
        rows.append([
            r["id"], r["n_atoms"], r["label_gap_ev"], round(r["cpu"]["gap_ev"], 4),
            r["cpu"]["scf_s"], g.get("scf_s"), round(r["cpu"]["wall_s"], 1), g.get("wall_s"),
            d.get("energy_uhartree"), d.get("gap_mev"), d.get("max_abs_rho_e_per_bohr3"),
        ])  # fmt: skip
    headers = ["molecule", "atoms", "label gap (eV)", "CPU gap (eV)", "CPU SCF s",
               "CUDA SCF s", "CPU s", "CUDA s", "ΔE (µEh)", "Δgap (meV)",
               "max abs Δρ (e/bohr³)"]  # fmt: skip
    about = (
        f"pyscf {p['pyscf']}, gpu4pyscf {p['gpu4pyscf'] or '–'}, device `auto` here: "
        f"{p['device_auto']}, CPU threads {p['threads']}{warm}. Seconds per molecule: the SCF "
        "on its device, and the engine's whole run (labels and grid on the CPU either way)."
    )
    md = ["", "## pyscf engine, B3LYP/6-31G* (density-fitted), CPU vs CUDA", "", about, ""]
    md += _table(headers, rows)
    if p["cuda_skipped"]:
        md.append(f"\npyscf on CUDA skipped: {p['cuda_skipped']}.")
    return md


def report(out: Path, notes: Path | None) -> None:
    """``gpu_check.json`` and ``gpu_check.md`` from the steps' JSON files in ``out``."""
    parts = {
        name: json.loads((out / f"{name}.json").read_text())
        for name in ("train", "pyscf")
        if (out / f"{name}.json").exists()
    }
    text = notes.read_text() if notes is not None and notes.exists() else ""
    merged = {
        "host": platform.node(),
        "notes": [n.strip() for n in text.splitlines() if n],
        **parts,
    }
    _write_json(out / "gpu_check.json", merged)
    md = ["# GPU check", "", f"Host `{merged['host']}`."]
    md += [f"- {note}" for note in merged["notes"]]
    if "train" in parts:
        md += _train_section(parts["train"])
    if "pyscf" in parts:
        md += _pyscf_section(parts["pyscf"])
    (out / "gpu_check.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for name in ("prepare", "train", "pyscf", "report"):
        p = sub.add_parser(name)
        if name != "report":
            p.add_argument("--work", type=Path, required=True, help="prepared data folder")
            p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
        if name != "prepare":
            p.add_argument("--out", type=Path, required=True, help="result folder")
        if name in ("train", "pyscf"):
            p.add_argument("--cpu-only", action="store_true", help="skip every CUDA part")
    sub.choices["prepare"].add_argument("--pcqm", type=int, default=3, help="PCQM4Mv2 molecules")
    sub.choices["train"].add_argument("--epochs", type=int, default=3)
    sub.choices["pyscf"].add_argument("--molecules", type=int, default=3)
    sub.choices["report"].add_argument("--notes", type=Path, help="lines to add to the report")
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.work, args.threads, args.pcqm)
    elif args.step == "train":
        train(args.work, args.out, args.epochs, args.cpu_only, args.threads)
    elif args.step == "pyscf":
        pyscf(args.work, args.out, args.molecules, args.cpu_only, args.threads)
    else:
        report(args.out, args.notes)


if __name__ == "__main__":
    main()
