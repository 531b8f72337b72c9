"""EDG on real data: what the pre-training learned and what distillation changed.

Reads a workdir that ran the EDG chain (``benchmarks/edg_pcqm_qm9.yaml``) and writes into
``--out``: ``imageed_loss.png`` (ImageED's train and validation loss per epoch, with L_MP and
L_RP), ``teacher_loss.png`` (teacher train/val L1 against the mean-feature baseline) and
``students.md`` (the properties table of the plain and EDG runs given, with Δ %). Prints the
numbers: ImageED's best epoch and test L_MP / L_RP, the spread of the ImageED features, the
teacher's test L1 against predicting the mean train feature, and the table.

    .venv/bin/python benchmarks/edg_report.py --workdir ../edgrun --source qm9 \\
        --runs ../edgrun/results/models/qm9/schnet/*/seed* \\
               ../edgrun/results/models/qm9/lambda1/edg-schnet/*/seed* --out ../edgrun/report
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def curves(metrics: Path, columns: list[str], out: Path, title: str, ylabel: str) -> None:
    """Per-epoch curves of ``columns`` of a run's metrics.csv as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = pd.read_csv(metrics)
    frame = frame[frame["val_loss"].notna()]
    figure = Figure(figsize=(5.0, 3.6), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for column in columns:
        ax.plot(frame["epoch"], frame[column], marker=".", label=column)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    figure.savefig(out, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--source", required=True, help="the students' source")
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="student run dirs")
    parser.add_argument("--labels", type=Path, help="default: results/labels/<source>.parquet")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from rhoflow.evaluate import property_table, write_property_table
    from rhoflow.features import read_features
    from rhoflow.splits import read_splits

    results = args.workdir / "results"
    args.out.mkdir(parents=True, exist_ok=True)
    imageed, teacher = results / "edg/imageed", results / "edg/teacher"
    curves(imageed / "metrics.csv", ["train_loss", "val_loss", "val_l_mp", "val_l_rp"],
           args.out / "imageed_loss.png", "ImageED (MSE, normalised pixels)", "loss")  # fmt: skip
    print("ImageED:", json.dumps(torch_summary(imageed / "model.pt")))
    ids, features = read_features(results / "edg/imageed_features.zarr")
    config = json.loads((imageed / "config.json").read_text())
    split_path = args.workdir / config["data"]["split"]  # relative to the workdir
    split = read_splits(split_path)["split"].reindex(ids)
    train = features[(split == "train").to_numpy()]
    print(f"ImageED features: {features.shape}, per-dimension std over train molecules: "
          f"median {np.median(train.std(axis=0)):.4f}, mean |f - train mean| "
          f"{np.abs(train - train.mean(axis=0)).mean():.4f}")  # fmt: skip
    if (teacher / "metrics.csv").exists():
        curves(teacher / "metrics.csv", ["train_loss", "val_loss", "val_mean_l1"],
               args.out / "teacher_loss.png", "ED-aware teacher (L1 to ImageED features)",
               "L1")  # fmt: skip
        print("teacher:", json.dumps(torch_summary(teacher / "model.pt")))
    if args.runs:
        labels = args.labels or results / f"labels/{args.source}.parquet"
        table = property_table(args.runs, labels, results / f"splits/{args.source}.parquet")
        write_property_table(table, args.out / "students.csv", args.out / "students.md")
        print((args.out / "students.md").read_text())


def torch_summary(model_file: Path) -> dict:
    import torch

    return torch.load(model_file, map_location="cpu", weights_only=True)["summary"]


if __name__ == "__main__":
    main()
