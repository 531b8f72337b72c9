"""Learning curve: test MAE of one model and target at fractions of the train split.

For each ``--fractions`` value f < 1 it writes a split file with the same validation and test
molecules and a seeded random f of the train molecules (the others in no split), trains the
model with the workflow's trainer settings, and prints the test MAE beside the train-mean
baseline of that reduced train split. f = 1 is the workflow's own run
(``results/models/<source>/<model>/<target>/seed0``), read if present.

    .venv/bin/python benchmarks/learning_curve.py --workdir /tmp/qm9 --model schnet \\
        --target source_gap_hartree --fractions 0.1 0.3 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from rhoflow.config import section_settings
from rhoflow.io import write_parquet
from rhoflow.labels import read_labels
from rhoflow.splits import METADATA_KEY, read_splits
from rhoflow.train import train_geometry


def reduced_split(split_path: Path, fraction: float, out: Path, seed: int = 0) -> pd.DataFrame:
    """The split file with a seeded random ``fraction`` of its train ids (val and test kept;
    its metadata records the fraction and the new sizes)."""
    table = pq.read_table(split_path)
    split = table.column("split").to_numpy(zero_copy_only=False)
    train = np.flatnonzero(split == "train")
    n_keep = max(1, round(fraction * len(train)))
    drop = np.random.default_rng(seed).permutation(train)[n_keep:]
    kept = table.filter(pa.array(~np.isin(np.arange(len(split)), drop)))
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    meta["learning_curve_fraction"] = fraction
    meta["sizes"]["train"] = n_keep
    kept = kept.replace_schema_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True)})
    write_parquet(out, kept, ["split"])
    return read_splits(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--source", default="qm9")
    parser.add_argument("--model", default="schnet")
    parser.add_argument("--target", default="source_gap_hartree")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    args = parser.parse_args()
    config = yaml.safe_load((args.workdir / "config.yaml").read_text())
    train = config.get("train", {})
    results = args.workdir / "results"
    tables = sorted((results / "conformers").glob(f"{args.source}-*.parquet"))
    labels = results / "labels" / f"{args.source}.parquet"
    split_path = results / "splits" / f"{args.source}.parquet"
    split = read_splits(split_path)
    y = read_labels(labels)[args.target]
    for fraction in args.fractions:
        run_dir = results / "models" / args.source / args.model / args.target / "seed0"
        start = time.perf_counter()
        if fraction < 1:
            run_dir = args.workdir / "learning_curve" / f"{args.model}-{args.target}-{fraction:g}"
            run_dir.mkdir(parents=True, exist_ok=True)
            kept = reduced_split(
                split_path, fraction, run_dir.parent / f"split-{fraction:g}.parquet"
            )
            train_geometry(
                run_dir,
                tables,
                labels,
                run_dir.parent / f"split-{fraction:g}.parquet",
                args.target,
                args.model,
                train.get("models", {}).get(args.model, {}),
                section_settings("train.trainer", train.get("trainer", {})),
            )
        else:
            kept = split
        if not (run_dir / "test_predictions.parquet").exists():
            print(f"{fraction:5.0%}: no run in {run_dir}")
            continue
        p = pd.read_parquet(run_dir / "test_predictions.parquet")
        mae = float(np.abs(p["prediction"] - p["truth"]).mean())
        train_ids = kept.index[kept["split"] == "train"].intersection(y.dropna().index)
        baseline = float(np.abs(p["truth"] - y.loc[train_ids].mean()).mean())
        epochs = int(pd.read_csv(run_dir / "metrics.csv")["val_mae"].notna().sum())
        unit = json.loads((run_dir / "config.json").read_text())["target"]["unit"]
        took = f", {time.perf_counter() - start:.0f} s" if fraction < 1 else ""
        print(
            f"{fraction:5.0%} of train ({len(train_ids)} molecules): test MAE {mae:.5f} {unit} "
            f"vs train-mean {baseline:.5f} ({100 * mae / baseline:.0f} %), {epochs} epochs" + took
        )


if __name__ == "__main__":
    main()
