"""Readout by the target's kind: test MAE of one model and target with a sum and a mean readout.

A geometry model pools its atoms into the molecule with ``readout``; when a run does not name
one, rhoflow takes ``sum`` for extensive energies and ``mean`` for intensive properties (gap,
HOMO, LUMO, dipole norm). This trains the model with each readout given explicitly, for every
seed, with the workflow's trainer settings and split (a workdir prepared with
``benchmarks/qm9_micro.yaml`` up to its conformers, labels and split), one ``rhoflow train``
process per run (1 torch thread each, ``--jobs`` at once), and prints test MAE (best-validation
checkpoint) per seed, mean ± std, and the train-mean baseline on the same test molecules.

    .venv/bin/python benchmarks/readout.py --workdir ../qm9run --model schnet \\
        --target source_gap_hartree --seeds 0 1 2 --epochs 20 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from rhoflow.evaluate import read_predictions
from rhoflow.labels import read_labels
from rhoflow.splits import read_splits
from rhoflow.units import display_unit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--source", default="qm9")
    parser.add_argument("--model", default="schnet")
    parser.add_argument("--target", default="source_gap_hartree")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="default: the workdir config's max_epochs")
    parser.add_argument("--readouts", nargs="+", default=["sum", "mean"])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    config = yaml.safe_load((args.workdir / "config.yaml").read_text())
    train = config.get("train", {})
    trainer = dict(train.get("trainer", {}))
    if args.epochs is not None:
        trainer["max_epochs"] = args.epochs
    results = args.workdir / "results"
    tables = sorted((results / "conformers").glob(f"{args.source}-*.parquet"))
    labels = results / "labels" / f"{args.source}.parquet"
    split_path = results / "splits" / f"{args.source}.parquet"
    kwargs = train.get("models", {}).get(args.model, {})

    def run(readout: str, seed: int) -> tuple[str, int, float, float]:
        out = args.workdir / "readout" / f"{args.model}-{args.target}-{readout}" / f"seed{seed}"
        log = out.with_suffix(".log")
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(log, "w") as fh:
            subprocess.run(
                [sys.executable, "-m", "rhoflow", "train", "--threads", "1", "--model",
                 args.model, "--model-kwargs", json.dumps({**kwargs, "readout": readout}),
                 "--settings", json.dumps({**trainer, "seed": seed}), "--target", args.target,
                 "--labels", str(labels), "--split", str(split_path), "--out", str(out),
                 *map(str, tables)],
                check=True, stdout=fh, stderr=subprocess.STDOUT,
            )  # fmt: skip
        frame, _ = read_predictions(out / "test_predictions.parquet")
        mae = float(np.abs(frame["prediction"] - frame["truth"]).mean())
        return readout, seed, mae, time.perf_counter() - start

    jobs = [(r, s) for r in args.readouts for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda job: run(*job), jobs))

    y = read_labels(labels)
    unit = y.attrs["units"][args.target]
    shown, factor = display_unit(unit)
    split = read_splits(split_path)["split"]
    target = y[args.target].dropna()
    train_ids = [i for i in split.index[split == "train"] if i in target.index]
    test_ids = [i for i in split.index[split == "test"] if i in target.index]
    baseline = float(np.abs(target.loc[test_ids] - target.loc[train_ids].mean()).mean())
    print(f"{args.model} on {args.target}, {trainer.get('max_epochs')} epochs, "
          f"{len(test_ids)} test molecules; test MAE ({shown})")  # fmt: skip
    print("| readout | seeds | test MAE | per seed | minutes per run |")
    print("|---|---:|---:|---|---:|")
    print(f"| train mean | – | {baseline * factor:.1f} | | |")
    for readout in args.readouts:
        rows = [d for d in done if d[0] == readout]
        maes = np.array([d[2] for d in rows]) * factor
        minutes = np.mean([d[3] for d in rows]) / 60
        per_seed = ", ".join(f"{m:.1f}" for m in maes)
        print(f"| {readout} | {len(maes)} | {maes.mean():.1f} ± {maes.std(ddof=1):.1f} | "
              f"{per_seed} | {minutes:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
