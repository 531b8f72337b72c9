"""Evaluation: MAE tables over seeds with a train-mean baseline, units, checks, parity plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

from rhoflow.cli import main
from rhoflow.evaluate import (
    PREDICTIONS,
    display_unit,
    header,
    lambda_table,
    parity_plot,
    property_table,
    write_lambda_table,
    write_property_table,
)
from rhoflow.labels import write_labels
from rhoflow.splits import METADATA_KEY, write_splits
from rhoflow.train.property import write_predictions

IDS = [f"m:{i}" for i in range(10)]
SPLIT = ["train"] * 6 + ["val", "test", "test", "test"]
GAP = [0.1, 0.2, 0.3, 0.2, 0.1, 0.3, 9.0, 0.25, 0.15, 0.40]  # Hartree; train mean 0.2
CV = [10.0, 20.0, 30.0, 20.0, 10.0, 30.0, 9.0, 25.0, 12.0, np.nan]  # cal/(mol K); m:9 has none
MEV_PER_HARTREE = 27211.386245988
# |error| of every test molecule per model, target and seed (label unit)
ERRORS = {
    ("schnet", "source_gap_hartree"): [0.01, 0.02, 0.03],
    ("schnet", "source_cv_cal_per_mol_k"): [1.0, 2.0, 6.0],
    ("painn", "source_gap_hartree"): [0.004, 0.004, 0.004],
    ("painn", "source_cv_cal_per_mol_k"): [0.5, 1.5],
}
UNITS = {"source_gap_hartree": "Hartree", "source_cv_cal_per_mol_k": "cal/(mol K)"}


@pytest.fixture()
def runs(tmp_path: Path) -> tuple[list[Path], Path, Path]:
    """Labels, split and run directories whose test MAE of seed k is ERRORS[...][k]."""
    frame = pd.DataFrame(
        {
            "shard": "s0",
            "n_atoms": np.full(10, 3, np.int32),
            "source_cv_cal_per_mol_k": CV,
            "source_gap_hartree": GAP,
        },
        index=pd.Index(IDS, name="id"),
    )
    labels = tmp_path / "labels.parquet"
    write_labels(labels, frame)
    split = tmp_path / "split.parquet"
    write_splits(
        split, pa.table({"id": IDS, "split": SPLIT}).replace_schema_metadata({METADATA_KEY: "{}"})
    )
    paths = []
    for (model, target), errors in ERRORS.items():
        truth = frame[target].iloc[7:].dropna()
        for seed, error in enumerate(errors):
            signs = np.resize([1.0, -1.0], len(truth))
            run = tmp_path / "models" / model / target / f"seed{seed}"
            write_predictions(
                run / PREDICTIONS, list(truth.index), truth.to_numpy(),
                truth.to_numpy() + signs * error, UNITS[target], {},
            )  # fmt: skip
            paths.append(run)
    return paths, labels, split


def test_display_units_and_names():
    assert display_unit("Hartree") == ("meV", pytest.approx(MEV_PER_HARTREE, rel=1e-12))
    assert display_unit("eV") == ("meV", 1000.0)
    assert display_unit("kcal/mol") == ("kcal/mol", 1.0)  # unknown: as it is
    assert header("source_alpha_bohr3", "bohr^3") == "α (a0³)"
    assert header("source_homo_lumo_gap_ev", "eV") == "gap (meV)"
    assert header("gap_ev", "eV") == "gap_ev (meV)"


def test_property_table_means_stds_and_baseline(runs):
    paths, labels, split = runs
    table = property_table(paths, labels, split)
    assert list(table.index) == ["train mean", "painn", "schnet"]
    assert list(dict.fromkeys(h for h, _ in table.columns)) == ["gap (meV)", "Cv (cal/mol/K)"]
    gap, cv = "gap (meV)", "Cv (cal/mol/K)"
    # schnet gap: MAEs 0.01, 0.02, 0.03 Hartree -> mean 0.02, sample std 0.01
    assert table.loc["schnet", (gap, "mean")] == pytest.approx(0.02 * MEV_PER_HARTREE)
    assert table.loc["schnet", (gap, "std")] == pytest.approx(0.01 * MEV_PER_HARTREE)
    assert table.loc["schnet", (gap, "n_seeds")] == 3
    assert table.loc["painn", (gap, "std")] == pytest.approx(0.0, abs=1e-9)
    # schnet Cv: 1, 2, 6 -> mean 3, std sqrt(((-2)² + (-1)² + 3²) / 2) = sqrt(7)
    assert table.loc["schnet", (cv, "mean")] == pytest.approx(3.0)
    assert table.loc["schnet", (cv, "std")] == pytest.approx(math.sqrt(7.0))
    assert table.loc["painn", (cv, "mean")] == pytest.approx(1.0)
    assert table.loc["painn", (cv, "std")] == pytest.approx(math.sqrt(0.5))
    assert table.loc["painn", (cv, "n_seeds")] == 2
    # baseline gap: train mean 0.2; |0.25-0.2| + |0.15-0.2| + |0.40-0.2| = 0.3 over 3
    assert table.loc["train mean", (gap, "mean")] == pytest.approx(0.1 * MEV_PER_HARTREE)
    # baseline Cv: train mean 20; test m:7, m:8 (m:9 has no Cv): (5 + 8) / 2
    assert table.loc["train mean", (cv, "mean")] == pytest.approx(6.5)
    assert pd.isna(table.loc["train mean", (cv, "std")])
    assert pd.isna(table.loc["train mean", (cv, "n_seeds")])
    assert table.attrs["n_test"] == {gap: 3, cv: 2}


def test_write_property_table(runs, tmp_path):
    paths, labels, split = runs
    csv, md = tmp_path / "t" / "qm9_properties.csv", tmp_path / "t" / "qm9_properties.md"
    write_property_table(property_table(paths, labels, split), csv, md)
    back = pd.read_csv(csv, index_col="model")
    assert list(back.columns[:3]) == ["gap (meV)", "gap (meV) std", "gap (meV) n_seeds"]
    assert back.loc["schnet", "Cv (cal/mol/K)"] == pytest.approx(3.0)
    text = md.read_text()
    assert "| model | seeds | gap (meV) | Cv (cal/mol/K) |" in text
    assert "| train mean | – | 2721 | 6.50 |" in text
    assert "| schnet | 3 | 544 ± 272 | 3.00 ± 2.65 |" in text
    assert "| painn | 3 | 109 ± 0 | 1.00 ± 0.71 (n=2) |" in text
    assert "Test molecules: gap (meV) 3, Cv (cal/mol/K) 2." in text
    assert sorted(p.name for p in csv.parent.iterdir()) == [csv.name, md.name]  # no temp files


def edg_runs(tmp_path: Path, errors: dict[float, list[float]]) -> list[Path]:
    """Gap runs of ``edg-schnet`` at each λ whose seed-k test MAE is ``errors[λ][k]``."""
    truth = pd.Series(GAP[7:], index=IDS[7:])
    paths = []
    for lam, per_seed in errors.items():
        for seed, error in enumerate(per_seed):
            run = tmp_path / "models" / f"lambda{lam:g}" / "edg-schnet" / "source_gap_hartree"
            run = run / f"seed{seed}"
            write_predictions(
                run / PREDICTIONS, list(truth.index), truth.to_numpy(),
                truth.to_numpy() + np.resize([1.0, -1.0], 3) * error, "Hartree", {},
            )  # fmt: skip
            paths.append(run)
    return paths


def test_edg_rows_follow_their_model_with_the_relative_change(runs, tmp_path):
    paths, labels, split = runs
    edg = edg_runs(tmp_path, {1.0: [0.01, 0.02, 0.015]})  # mean 0.015 vs schnet's 0.02
    table = property_table(paths + edg, labels, split)
    assert list(table.index) == ["train mean", "painn", "schnet", "edg-schnet", "Δ % edg-schnet"]
    gap, cv = "gap (meV)", "Cv (cal/mol/K)"
    assert table.loc["Δ % edg-schnet", (gap, "mean")] == pytest.approx(25.0)  # (1 − 0.015/0.02)
    assert pd.isna(table.loc["Δ % edg-schnet", (cv, "mean")])  # no EDG run of Cv
    csv, md = tmp_path / "p.csv", tmp_path / "p.md"
    write_property_table(table, csv, md)
    text = md.read_text()
    assert "| edg-schnet | 3 | 408 ± 136 | – |" in text
    assert "| Δ % edg-schnet | – | +25.0 % | – |" in text
    assert "(1 − MAE w/ EDG ÷ MAE w/o EDG) × 100" in text


def test_lambda_table_and_plot(runs, tmp_path):
    paths, labels, split = runs
    edg = edg_runs(tmp_path, {0.1: [0.03, 0.03], 1.0: [0.01, 0.02, 0.015]})
    gap_runs = [p for p in paths if p.parent.name == "source_gap_hartree"]
    table = lambda_table(gap_runs + edg, labels, split)
    assert list(table.index) == [
        (0.0, "train mean"), (0.0, "painn"), (0.0, "schnet"),
        (0.1, "edg-schnet"), (1.0, "edg-schnet"),
    ]  # fmt: skip
    gap = "gap (meV)"
    assert table.loc[(0.1, "edg-schnet"), (gap, "mean")] == pytest.approx(0.03 * MEV_PER_HARTREE)
    assert table.loc[(1.0, "edg-schnet"), (gap, "n_seeds")] == 3
    csv, md, png = tmp_path / "l.csv", tmp_path / "l.md", tmp_path / "l.png"
    write_lambda_table(table, csv, md, png)
    assert "| 0.1 | edg-schnet | 2 | 816 ± 0 |" in md.read_text()
    assert pd.read_csv(csv).shape[0] == 5
    with Image.open(png) as im:
        assert im.size[0] > 300


def test_test_ids_must_be_the_splits(runs):
    paths, labels, split = runs
    run = paths[0]
    predictions = pd.read_parquet(run / PREDICTIONS)
    write_predictions(
        run / PREDICTIONS, ["m:6", *predictions["id"][1:]], predictions["truth"].to_numpy(),
        predictions["prediction"].to_numpy(), "Hartree", {},
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"test ids differ .* 1 missing \['m:7'\], 1 extra"):
        property_table(paths, labels, split)
    write_predictions(run / PREDICTIONS, ["m:7", "m:8", "m:9"], GAP[7:], GAP[7:], "eV", {})
    with pytest.raises(ValueError, match="predictions in 'eV'"):
        property_table(paths, labels, split)


def test_parity_plot_and_cli(runs, tmp_path):
    paths, labels, split = runs
    png = tmp_path / "parity.png"
    parity_plot(paths[0] / PREDICTIONS, png)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
    out = tmp_path / "out"
    argv = ["evaluate", "--labels", str(labels), "--split", str(split), "--csv",
            str(out / "p.csv"), "--md", str(out / "p.md"), "--plots", str(out / "plots"),
            *map(str, paths)]  # fmt: skip
    assert main(argv) == 0
    assert "±" in (out / "p.md").read_text()
    plots = sorted(p.relative_to(out / "plots").as_posix() for p in out.rglob("*.png"))
    assert plots == [f"{m}/{t}.png" for m in ("painn", "schnet") for t in sorted(UNITS)]
