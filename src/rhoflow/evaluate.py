"""Evaluation: test-MAE tables and parity plots from the test predictions of training runs.

A run directory ``.../<model>/<target>/seed<k>/`` (:mod:`rhoflow.train`) holds
``test_predictions.parquet`` (``id``, ``truth``, ``prediction``, ``unit``: the label's unit,
one per file), written from the best-validation checkpoint. :func:`property_table` scores
every run and a **train-mean baseline** (each test molecule predicted as the mean target of
the split's train molecules) on the same test molecules, and lays the MAEs out like EDG's
Table 1: one row per model after the baseline, one column per target in the papers' units
(:data:`rhoflow.units.DISPLAY_UNITS`), targets in QM9's customary order (:data:`TARGET_NAMES`).

The test molecules of a target are the split's ``test`` ids whose target is finite in the
labels table (the molecules the trainer tests on). Every run must have been tested on exactly
these, with the labels' truth and unit: anything else is an error, so no table compares models
on different molecules.

Table files (:func:`write_property_table`):

=========  ===========================================================================
file       content
=========  ===========================================================================
CSV        one row per model (``model``: ``train mean`` first, then models by name); per
           target the columns ``<name> (<unit>)`` (MAE, mean over seeds),
           ``<name> (<unit>) std`` (sample standard deviation over seeds, ddof 1; empty
           for one seed and for the baseline) and ``<name> (<unit>) n_seeds`` (empty for
           the baseline and for a model not trained on the target)
Markdown   the same as ``mean ± std`` cells, a ``seeds`` column (most seeds of the row;
           a cell with fewer says ``(n=k)``) and a caption with the test molecules per
           target
=========  ===========================================================================

An EDG student ``edg-<model>`` (:mod:`rhoflow.edg`) follows its plain model, then the row
``Δ % edg-<model>``: (1 − mean MAE w/ EDG ÷ mean MAE w/o EDG) × 100 per target (EDG Table 1;
positive when EDG helps), in the ``mean`` column. :func:`lambda_table` lays the students of
several λ out against λ (EDG Fig. 4).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from rhoflow.io import atomic_path
from rhoflow.units import display_unit

PREDICTIONS = "test_predictions.parquet"
BASELINE = "train mean"
EDG = "edg-"
"""Prefix of an EDG student's model name (``edg-schnet``: SchNet distilled from the teacher)."""
DELTA = "Δ % "
"""Prefix of the row (1 − MAE w/ EDG ÷ MAE w/o EDG) × 100 of a student (``Δ % edg-schnet``)."""
STATS = ("mean", "std", "n_seeds")


TARGET_NAMES = {
    "source_alpha_bohr3": "α",
    "source_gap_hartree": "gap",
    "source_homo_lumo_gap_ev": "gap",
    "source_homo_hartree": "HOMO",
    "source_lumo_hartree": "LUMO",
    "source_mu_debye": "μ",
    "source_cv_cal_per_mol_k": "Cv",
    "source_g298_hartree": "G",
    "source_h298_hartree": "H",
    "source_r2_bohr2": "R²",
    "source_u298_hartree": "U",
    "source_u0_hartree": "U0",
    "source_zpve_hartree": "ZPVE",
    "gap_hartree": "gap (engine)",
    "homo_hartree": "HOMO (engine)",
    "lumo_hartree": "LUMO (engine)",
    "dipole_debye": "μ (engine)",
    "final_energy_hartree": "E (engine)",
}
"""Labels column → display name, in table order (EDG Table 1 / QM9; then the density
engine's own labels, e.g. the demo's psi4 ones); other targets follow, by column name, under
their own name."""


@dataclass(frozen=True)
class Run:
    """One training run, from its directory ``.../<model>/<target>/seed<k>``."""

    model: str
    target: str
    seed: int
    path: Path

    @classmethod
    def from_path(cls, path: str | Path) -> Run:
        path = Path(path)
        match = re.fullmatch(r"seed(\d+)", path.name)
        if match is None or len(path.parts) < 3:
            raise ValueError(f"{path}: not a run directory .../<model>/<target>/seed<k>")
        return cls(path.parent.parent.name, path.parent.name, int(match[1]), path)


def target_name(target: str) -> str:
    """Display name of a labels column (``source_gap_hartree`` → ``gap``)."""
    return TARGET_NAMES.get(target, target)


def header(target: str, unit: str) -> str:
    """Column header of a target with its label unit: ``gap (meV)``."""
    return f"{target_name(target)} ({display_unit(unit)[0]})"


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, str]:
    """A predictions file as a frame (``id``, ``truth``, ``prediction``; label unit) and its
    unit."""
    frame = pq.read_table(path, columns=["id", "truth", "prediction", "unit"]).to_pandas()
    units = frame.pop("unit").unique()
    if len(units) != 1:
        raise ValueError(f"{path}: expected one unit, found {list(units)}")
    return frame, str(units[0])


def _check_ids(path: Path, ids: pd.Series, expected: pd.Index) -> None:
    """Raise unless ``ids`` are the ``expected`` test molecules, each once."""
    got = set(ids)
    missing, extra = expected.difference(list(got)), sorted(got.difference(expected))
    if missing.empty and not extra and len(ids) == len(expected):
        return
    raise ValueError(
        f"{path}: test ids differ from the split's test molecules with this target "
        f"({len(expected)}): {len(missing)} missing {list(missing[:3])}, {len(extra)} extra "
        f"{extra[:3]}, {len(ids) - len(got)} repeated"
    )


def _target_order(target: str) -> tuple[int, str]:
    names = list(TARGET_NAMES)
    return (names.index(target) if target in names else len(names), target)


def property_table(
    runs: Sequence[str | Path], labels: str | Path, split: str | Path
) -> pd.DataFrame:
    """Test MAEs of training runs and of the train-mean baseline, in the papers' units.

    Args:
        runs: run directories ``.../<model>/<target>/seed<k>`` (each with ``PREDICTIONS``).
        labels: the typed labels table the runs were trained on (``rhoflow labels``).
        split: the dataset's split file (``rhoflow splits``).

    Returns:
        Frame indexed by ``model`` (``train mean`` first, then models by name), columns
        (``<name> (<unit>)``, stat) for stat in :data:`STATS`: MAE mean and sample std
        (ddof 1) over seeds and the number of seeds; NaN / NA where a model has no run of a
        target. ``.attrs["n_test"]``: test molecules per column header.
    """
    from rhoflow.labels import read_labels
    from rhoflow.splits import read_splits

    table = read_labels(labels)
    split_of = read_splits(split)["split"]
    scores: list[tuple[str, str, int, float]] = []  # model, target, seed, MAE (display unit)
    baseline: dict[str, float] = {}
    headers: dict[str, str] = {}
    n_test: dict[str, int] = {}
    for run in sorted(map(Run.from_path, runs), key=lambda r: (r.model, r.target, r.seed)):
        predictions, unit = read_predictions(run.path / PREDICTIONS)
        label_unit = table.attrs["units"].get(run.target)
        if label_unit != unit:
            raise ValueError(
                f"{run.path}: predictions in {unit!r}, labels column {run.target!r} in "
                f"{label_unit!r}"
            )
        y = table[run.target]
        y = y[np.isfinite(y.to_numpy())]
        test = split_of.index[split_of == "test"].intersection(y.index)
        _check_ids(run.path, predictions["id"], test)
        truth = y.loc[predictions["id"]].to_numpy()
        if not np.allclose(predictions["truth"].to_numpy(), truth, rtol=1e-9, atol=0.0):
            raise ValueError(f"{run.path}: truth differs from {run.target!r} in {labels}")
        factor = display_unit(unit)[1]
        mae = float(np.abs(predictions["prediction"] - predictions["truth"]).mean())
        scores.append((run.model, run.target, run.seed, mae * factor))
        if run.target not in baseline:
            train = y.loc[split_of.index[split_of == "train"].intersection(y.index)]
            baseline[run.target] = float(np.abs(y.loc[test] - train.mean()).mean()) * factor
            headers[run.target] = header(run.target, unit)
            n_test[headers[run.target]] = len(test)
    if not scores:
        raise ValueError("no runs to evaluate")
    if len(set(headers.values())) < len(headers):
        raise ValueError(f"two targets share a column: {headers}")
    frame = pd.DataFrame(scores, columns=["model", "target", "seed", "mae"])
    repeated = frame.duplicated(["model", "target", "seed"])
    if repeated.any():
        raise ValueError(f"runs given twice: {frame[repeated].to_dict('records')}")

    stats = frame.groupby(["model", "target"])["mae"].agg(["mean", "std", "count"])
    stats = stats.rename(columns={"count": "n_seeds"}).unstack("target").swaplevel(axis=1)
    stats.loc[BASELINE] = np.nan
    for target, mae in baseline.items():
        stats.loc[BASELINE, (target, "mean")] = mae
    targets = sorted(baseline, key=_target_order)
    models = _row_order(frame["model"].unique())
    for model in [m for m in models if m.startswith(EDG) and m[len(EDG) :] in models]:
        for target in targets:  # EDG Table 1's Δ: relative MAE reduction of the mean MAEs
            plain = stats.loc[model[len(EDG) :], (target, "mean")]
            ratio = stats.loc[model, (target, "mean")] / plain
            stats.loc[DELTA + model, (target, "mean")] = (1.0 - ratio) * 100.0
        models.insert(models.index(model) + 1, DELTA + model)
    out = stats.loc[[BASELINE, *models], [(t, s) for t in targets for s in STATS]]
    out.columns = pd.MultiIndex.from_tuples([(headers[t], s) for t, s in out.columns])
    for column in [c for c in out.columns if c[1] == "n_seeds"]:
        out[column] = out[column].astype("Int64")
    out.index.name = "model"
    out.attrs["n_test"] = n_test
    return out


def _row_order(models: Sequence[str]) -> list[str]:
    """Models by name, each EDG student right after its plain model."""
    plain = sorted(m for m in models if not m.startswith(EDG))
    order = []
    for model in plain:
        order += [model] + ([EDG + model] if EDG + model in models else [])
    return order + sorted(m for m in models if m not in order)


def _digits(value: float) -> int:
    """Decimals that show ``value`` to three significant figures (none for |value| ≥ 100)."""
    return max(0, 2 - math.floor(math.log10(abs(value)))) if value else 0


def _cell(mean: float, std: float, n: int | None, most: int) -> str:
    """``mean ± std`` (std only over two or more seeds), ``(n=k)`` when the row has more."""
    if pd.isna(mean):
        return "–"
    d = _digits(mean)
    text = f"{mean:.{d}f}" + ("" if pd.isna(std) else f" ± {std:.{d}f}")
    return text + ("" if pd.isna(n) or n == most else f" (n={n})")


def write_property_table(df: pd.DataFrame, csv_path: str | Path, md_path: str | Path) -> None:
    """Write a :func:`property_table` as CSV and Markdown (module docstring), atomically."""
    flat = df.copy()
    flat.columns = [h if s == "mean" else f"{h} {s}" for h, s in df.columns]
    with atomic_path(csv_path) as tmp:
        flat.to_csv(tmp, lineterminator="\n")

    headers = list(dict.fromkeys(h for h, _ in df.columns))
    n_test = df.attrs["n_test"]
    counts = ", ".join(f"{h} {n_test[h]}" for h in headers)
    if len(set(n_test.values())) == 1:
        counts = str(next(iter(n_test.values())))
    lines = [
        "Test MAE, mean ± sample std over seeds; "
        f"{BASELINE}: every test molecule predicted as the mean train target. "
        f"Test molecules: {counts}."
        + (f" {DELTA}edg-<model>: (1 − MAE w/ EDG ÷ MAE w/o EDG) × 100 of the mean MAEs."
           if any(str(m).startswith(DELTA) for m in df.index) else ""),
        "",
        "| model | seeds | " + " | ".join(headers) + " |",
        "|---|---:|" + "---:|" * len(headers),
    ]
    for model, row in df.iterrows():
        if str(model).startswith(DELTA):
            deltas = [row[(h, "mean")] for h in headers]
            cells = ["–" if pd.isna(v) else f"{v:+.1f} %" for v in deltas]
            lines.append(f"| {model} | – | " + " | ".join(cells) + " |")
            continue
        n = {h: row[(h, "n_seeds")] for h in headers}
        most = max((int(k) for k in n.values() if not pd.isna(k)), default=0)
        cells = [_cell(row[(h, "mean")], row[(h, "std")], n[h], most) for h in headers]
        lines.append(f"| {model} | {most or '–'} | " + " | ".join(cells) + " |")
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def parity_plot(predictions_path: str | Path, out_png: str | Path) -> None:
    """Truth against prediction of one predictions file, in the papers' unit, with the line
    y = x and the MAE in the title; a PNG written atomically (matplotlib, Agg canvas). The
    title names model, target and seed when the file is in a run directory."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(predictions_path)
    predictions, unit = read_predictions(path)
    name, factor = display_unit(unit)
    truth = predictions["truth"].to_numpy() * factor
    prediction = predictions["prediction"].to_numpy() * factor
    mae = float(np.abs(prediction - truth).mean())
    try:
        run = Run.from_path(path.parent)
        what = f"{run.model} · {target_name(run.target)} · seed {run.seed}"
    except ValueError:
        what = path.stem

    figure = Figure(figsize=(4.0, 4.0), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    lo, hi = min(truth.min(), prediction.min()), max(truth.max(), prediction.max())
    ax.plot([lo, hi], [lo, hi], color="0.4", linewidth=0.8)  # y = x
    ax.scatter(truth, prediction, s=4, alpha=0.5, linewidths=0)
    ax.set_xlabel(f"truth ({name})")
    ax.set_ylabel(f"prediction ({name})")
    ax.set_title(f"{what}\ntest MAE {mae:.{_digits(mae)}f} {name} ({len(truth)} molecules)")
    ax.set_aspect("equal")
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png")


def parity_plots(runs: Sequence[str | Path], outdir: str | Path) -> list[Path]:
    """Parity plots ``<outdir>/<model>/<target>.png``, one per model and target, of its run
    with the lowest seed; the paths written."""
    first: dict[tuple[str, str], Run] = {}
    for run in sorted(map(Run.from_path, runs), key=lambda r: r.seed, reverse=True):
        first[run.model, run.target] = run
    written = []
    for (model, target), run in sorted(first.items()):
        out = Path(outdir) / model / f"{target}.png"
        parity_plot(run.path / PREDICTIONS, out)
        written.append(out)
    return written


def run_lambda(path: str | Path) -> float:
    """λ of a run directory ``.../lambda<λ>/edg-<model>/<target>/seed<k>``; 0 for a plain run
    (no distillation)."""
    name = Path(path).parents[2].name
    return float(name[len("lambda") :]) if name.startswith("lambda") else 0.0


def lambda_table(
    runs: Sequence[str | Path], labels: str | Path, split: str | Path
) -> pd.DataFrame:
    """Test MAEs of EDG students over λ (EDG Fig. 4): :func:`property_table` per λ, rows
    indexed by (``lambda``, ``model``); λ 0 holds the plain models (w/o EDG) and the train-mean
    baseline. Columns as :func:`property_table` (no Δ rows)."""
    by_lambda: dict[float, list[Path]] = {}
    for run in runs:
        by_lambda.setdefault(run_lambda(run), []).append(Path(run))
    parts = []
    for lam, group in sorted(by_lambda.items()):
        table = property_table(group, labels, split)
        keep = [m for m in table.index if not str(m).startswith(DELTA)]
        if lam:
            keep = [m for m in keep if m != BASELINE]
        table = table.loc[keep]
        table.index = pd.MultiIndex.from_tuples([(lam, m) for m in keep], names=["lambda", "model"])
        parts.append(table)
    out = pd.concat(parts)
    out.attrs["n_test"] = parts[0].attrs["n_test"]
    return out


def write_lambda_table(
    df: pd.DataFrame, csv_path: str | Path, md_path: str | Path, png_path: str | Path
) -> None:
    """Write a :func:`lambda_table` as CSV, Markdown and a plot (MAE ± std over seeds against
    λ per target and model, the model w/o EDG and the train-mean baseline as horizontal
    lines), atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    flat = df.copy()
    flat.columns = [h if s == "mean" else f"{h} {s}" for h, s in df.columns]
    with atomic_path(csv_path) as tmp:
        flat.to_csv(tmp, lineterminator="\n")
    headers = list(dict.fromkeys(h for h, _ in df.columns))
    lines = [
        "Test MAE of EDG students against λ, mean ± sample std over seeds; λ 0: the models "
        f"without EDG and the {BASELINE} baseline.",
        "",
        "| λ | model | seeds | " + " | ".join(headers) + " |",
        "|---:|---|---:|" + "---:|" * len(headers),
    ]
    for (lam, model), row in df.iterrows():
        n = {h: row[(h, "n_seeds")] for h in headers}
        most = max((int(k) for k in n.values() if not pd.isna(k)), default=0)
        cells = [_cell(row[(h, "mean")], row[(h, "std")], n[h], most) for h in headers]
        lines.append(f"| {lam:g} | {model} | {most or '–'} | " + " | ".join(cells) + " |")
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")

    figure = Figure(figsize=(4.0 * len(headers), 3.6), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    students = [m for m in df.index.get_level_values("model").unique() if m.startswith(EDG)]
    for k, h in enumerate(headers):
        ax = figure.add_subplot(1, len(headers), k + 1)
        for i, student in enumerate(students):
            rows = df.xs(student, level="model")
            color = f"C{i}"
            ax.errorbar(rows.index, rows[(h, "mean")], yerr=rows[(h, "std")].fillna(0.0),
                        marker="o", capsize=3, color=color, label=student)
            plain = student[len(EDG) :]
            if (0.0, plain) in df.index:
                ax.axhline(df.loc[(0.0, plain), (h, "mean")], color=color, linestyle="--",
                           linewidth=0.8, label=f"{plain} (w/o EDG)")
        models = df.loc[[i for i in df.index if i[1] != BASELINE], (h, "mean")]
        if (0.0, BASELINE) in df.index:
            baseline = df.loc[(0.0, BASELINE), (h, "mean")]
            label = f"{BASELINE} ({baseline:.{_digits(baseline)}f})"
            if baseline <= 2.0 * models.max():  # else it would flatten the models: legend only
                ax.axhline(baseline, color="0.5", linestyle=":", linewidth=0.8, label=label)
            else:
                ax.plot([], [], color="0.5", linestyle=":", linewidth=0.8, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("λ")
        ax.set_ylabel(f"test MAE, {h}")
        ax.legend(fontsize=6)
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png")



# --- edrep: learning from density representations --------------------------------------------

ENERGY_NAMES = {
    "final_energy_hartree": "E1 final",
    "nuclear_repulsion_energy_hartree": "E2 nuclear repulsion",
    "one_electron_energy_hartree": "E3 one-electron",
    "two_electron_energy_hartree": "E4 two-electron",
    "xc_energy_hartree": "E5 exchange-correlation",
    "total_energy_hartree": "E6 total",
}
"""EDG's E1–E6 (EDBench's energy labels) by labels column."""

MODE_ORDER = ("atoms", "density", "gradient", "density+gradient", "shape", BASELINE)
"""Rows of the voxel-curves table."""

MEMORY_KINDS = {
    "cpu_rss": "peak resident memory of the training process (CPU)",
    "cuda_allocated": "peak GPU memory allocated by torch",
}
"""What a run's ``peak_memory_mb`` measures (rhoflow.edrep.tasks.peak_memory_mb)."""

REPRESENTATION_ORDER = ("pointclouds", "voxels", "images")
"""Columns of the representation table (EDG Table 4's order: point cloud, voxel, image)."""


def edrep_runs(runs: Sequence[str | Path]) -> pd.DataFrame:
    """One row per (edrep run, target): ``representation``, ``groups`` (the first of its input
    groups), ``mode``, ``fraction``, ``seed``,
    ``target``, ``unit``, ``train_molecules``, ``test_mae``, ``test_rmse``, ``baseline_mae``
    and ``baseline_rmse`` (every test molecule predicted as the run's train mean, its
    config.json normalisation), ``params``, ``epoch_time_s``, ``peak_memory_mb``, ``memory``;
    ``attrs["n_test"]``. Every run must have been tested on the same molecules."""
    rows: list[dict] = []
    test_ids: frozenset | None = None
    for run in map(Path, runs):
        config = json.loads((run / "config.json").read_text())
        table = pq.read_table(run / PREDICTIONS)
        summary = json.loads(table.schema.metadata[b"rhoflow.predictions"])
        frame = table.to_pandas()
        ids = frozenset(frame["id"])
        if test_ids is not None and ids != test_ids:
            raise ValueError(f"{run}: tested on other molecules than {runs[0]}")
        test_ids = ids
        columns, means = config["targets"]["columns"], config["normalization"]["mean"]
        mean = dict(zip(columns, means, strict=True))
        cost = ("params", "epoch_time_s", "peak_memory_mb", "memory", "train_molecules")
        for target, part in frame.groupby("target", sort=False):
            baseline = part["truth"].to_numpy() - mean[target]
            rows.append({
                "representation": config["data"]["representation"],
                "groups": config["data"]["groups"][0],
                "mode": config["data"]["mode"],
                "fraction": float(config["data"].get("train_fraction", 1.0)),
                "seed": int(config["train"]["seed"]),
                "target": target,
                "unit": part["unit"].iloc[0],
                "test_mae": summary["test_mae"][target],
                "test_rmse": summary["test_rmse"][target],
                "baseline_mae": float(np.abs(baseline).mean()),
                "baseline_rmse": float(np.sqrt((baseline**2).mean())),
                **{k: summary[k] for k in cost},
            })  # fmt: skip
    out = pd.DataFrame(rows)
    out.attrs["n_test"] = len(test_ids or ())
    return out


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _stats(values: pd.Series) -> dict[str, float]:
    """Mean, sample std (ddof 1; NaN for one value) and count."""
    std = float(values.std(ddof=1)) if len(values) > 1 else np.nan
    return {"mean": float(values.mean()), "std": std, "n_seeds": len(values)}


def voxel_curves_table(runs: Sequence[str | Path]) -> pd.DataFrame:
    """Test MAE of the voxel low-data curves ("Beyond Atoms") per input mode and training
    fraction, mean and sample std over seeds in the papers' unit, and the train-mean baseline
    per fraction (mode ``train mean``). Columns ``mode``, ``fraction``, ``train_molecules``,
    ``mean``, ``std``, ``n_seeds``; ``attrs``: ``target``, ``unit`` (shown), ``n_test``."""
    df = edrep_runs(runs)
    if df["target"].nunique() != 1:
        raise ValueError(f"curve runs of several targets: {sorted(df['target'].unique())}")
    unit, factor = display_unit(df["unit"].iloc[0])
    rows = []
    for (mode, fraction), group in df.groupby(["mode", "fraction"]):
        n = int(group["train_molecules"].max())
        rows.append({"mode": mode, "fraction": fraction, "train_molecules": n,
                     **_stats(group["test_mae"] * factor)})  # fmt: skip
    for fraction, group in df.groupby("fraction"):
        seeds = group.drop_duplicates("seed")  # the baseline depends on the subset, not the mode
        rows.append({"mode": BASELINE, "fraction": fraction,
                     "train_molecules": int(seeds["train_molecules"].max()),
                     **_stats(seeds["baseline_mae"] * factor)})  # fmt: skip
    out = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(MODE_ORDER)}
    out = out.sort_values(["mode", "fraction"], key=lambda c: c.map(order) if c.name == "mode"
                          else c, ignore_index=True)  # fmt: skip
    out.attrs.update(target=df["target"].iloc[0], unit=unit, n_test=df.attrs["n_test"])
    return out


def write_voxel_curves(
    df: pd.DataFrame, csv_path: str | Path, md_path: str | Path, png_path: str | Path
) -> None:
    """Write a :func:`voxel_curves_table` as CSV (its columns), Markdown (modes × training
    molecules, ``mean ± std`` cells) and a log-log plot of test MAE against training molecules
    per mode (error bars: std over seeds; dashed: the baseline), atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatter, NullFormatter

    target, unit = df.attrs["target"], df.attrs["unit"]
    with atomic_path(csv_path) as tmp:
        df.assign(unit=unit).to_csv(tmp, index=False, lineterminator="\n")
    fractions = sorted(df["fraction"].unique())
    sizes = {f: int(df.loc[df["fraction"] == f, "train_molecules"].max()) for f in fractions}
    most = int(df["n_seeds"].max())
    lines = [
        f"Test MAE of {target_name(target)} ({unit}) of the voxel 3D ResNet per input mode "
        f"against training molecules (fraction of the train split), mean ± sample std over "
        f"{_seeds(most)} (nested subsets per seed); {BASELINE}: every test molecule predicted as "
        f"the mean of the subset's targets. Test molecules: {df.attrs['n_test']}.",
        "",
        "| mode | " + " | ".join(f"{sizes[f]} ({f:g})" for f in fractions) + " |",
        "|---|" + "---:|" * len(fractions),
    ]
    for mode, group in df.groupby("mode", sort=False):
        by_f = group.set_index("fraction")
        cells = [_cell(by_f.loc[f, "mean"], by_f.loc[f, "std"], by_f.loc[f, "n_seeds"], most)
                 if f in by_f.index else "–" for f in fractions]  # fmt: skip
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")

    figure = Figure(figsize=(5.0, 3.8), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    for i, (mode, group) in enumerate(df.groupby("mode", sort=False)):
        style = {"color": "0.4", "linestyle": "--"} if mode == BASELINE else {"color": f"C{i}"}
        ax.errorbar(group["train_molecules"], group["mean"], yerr=group["std"].fillna(0.0),
                    marker="o", capsize=3, label=mode, **style)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(list(sizes.values()), [str(n) for n in sizes.values()])
    ax.xaxis.set_minor_formatter(NullFormatter())
    # plain numbers; minor ticks labelled only when the range spans less than ~2 decades
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_xlabel("training molecules")
    ax.set_ylabel(f"test MAE, {target_name(target)} ({unit})")
    ax.legend(fontsize=7)
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png")


def representations_table(runs: Sequence[str | Path]) -> pd.DataFrame:
    """Test RMSE per target and representation (EDG Table 4), mean and sample std over seeds
    (E1–E6 in Hartree, other targets in the papers' unit), the train-mean baseline, and per
    representation its cost (EDG Fig. 1b: parameters, mean epoch time, peak memory). Rows:
    targets; columns (``representation`` or ``train mean``, statistic). ``attrs``: ``units``,
    ``n_test``, ``memory`` (what peak memory measures), ``cost`` (per representation)."""
    df = edrep_runs(runs)
    rows, units = {}, {}
    targets = sorted(df["target"].unique(), key=lambda t: (list(ENERGY_NAMES) + [t]).index(t))
    for target in targets:
        part = df[df["target"] == target]
        unit, factor = display_unit(part["unit"].iloc[0])
        if target in ENERGY_NAMES:  # hundreds of Hartree across molecules: Hartree, not meV
            unit, factor = part["unit"].iloc[0], 1.0
        units[target] = unit
        row = {}
        for rep, group in part.groupby("representation"):
            for k, v in _stats(group["test_rmse"] * factor).items():
                row[(rep, k)] = v
        seeds = part.drop_duplicates("seed")
        for k, v in _stats(seeds["baseline_rmse"] * factor).items():
            row[(BASELINE, k)] = v
        rows[target] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    reps = [r for r in REPRESENTATION_ORDER if r in set(df["representation"])]
    out = out.reindex(columns=pd.MultiIndex.from_product([[*reps, BASELINE], ["mean", "std",
                                                                               "n_seeds"]]))
    cost = df.drop_duplicates(["representation", "seed"]).groupby("representation")
    out.attrs.update(
        units=units,
        n_test=df.attrs["n_test"],
        memory=str(df["memory"].iloc[0]),
        cost={rep: {"params": int(g["params"].iloc[0]),
                    "epoch_time_s": float(g["epoch_time_s"].mean()),
                    "peak_memory_mb": float(g["peak_memory_mb"].mean()),
                    "train_molecules": int(g["train_molecules"].iloc[0])}
              for rep, g in cost},
    )  # fmt: skip
    return out


def write_representations_table(
    df: pd.DataFrame, csv_path: str | Path, md_path: str | Path
) -> None:
    """Write a :func:`representations_table` as CSV (one row per target, ``<rep>``, ``<rep>
    std``, ``<rep> n_seeds`` columns, ``Δ % images``; then the cost rows) and Markdown
    (targets × representations, ``mean ± std``, the baseline and Δ % of the image model against
    the best other representation = (1 − RMSE images ÷ min RMSE others) × 100, positive when
    the images are better; then the cost table), atomically."""
    reps = [r for r in dict.fromkeys(c for c, _ in df.columns) if r != BASELINE]
    others = [r for r in reps if r != "images"]
    delta = pd.Series(np.nan, index=df.index)
    if "images" in reps and others:
        best = df[[(r, "mean") for r in others]].min(axis=1)
        delta = (1.0 - df[("images", "mean")] / best) * 100.0
    flat = df.copy()
    flat.columns = [c if s == "mean" else f"{c} {s}" for c, s in df.columns]
    flat.insert(0, "unit", [df.attrs["units"][t] for t in df.index])
    flat["Δ % images"] = delta
    cost = pd.DataFrame(df.attrs["cost"]).T.reindex(reps)
    with atomic_path(csv_path) as tmp:
        flat.rename_axis("target").to_csv(tmp, lineterminator="\n")
        tmp.write_text(tmp.read_text() + "\n" + cost.rename_axis("representation").to_csv(
            lineterminator="\n"))
    most = int(np.nanmax(df[[(r, "n_seeds") for r in reps]].to_numpy()))
    lines = [
        f"Test RMSE per energy and density representation, mean ± sample std over {_seeds(most)}"
        f", the three trained with one split, optimiser and number of epochs; {BASELINE}: "
        "every test molecule predicted as the mean train target; Δ % images: (1 − RMSE images ÷"
        f" RMSE of the best other) × 100. Test molecules: {df.attrs['n_test']}.",
        "",
        "| target | " + " | ".join(reps) + f" | {BASELINE} | Δ % images |",
        "|---|" + "---:|" * (len(reps) + 2),
    ]
    for target, row in df.iterrows():
        name = f"{ENERGY_NAMES.get(target, target_name(target))} ({df.attrs['units'][target]})"
        cells = [_cell(row[(r, "mean")], row[(r, "std")], row[(r, "n_seeds")], most)
                 for r in [*reps, BASELINE]]  # fmt: skip
        cells.append("–" if pd.isna(delta[target]) else f"{delta[target]:+.1f} %")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    memory = MEMORY_KINDS.get(df.attrs["memory"], df.attrs["memory"])
    lines += ["", f"Cost per representation (EDG Fig. 1b); memory: {memory}.", "",
              "| representation | parameters | train molecules | s / epoch | peak memory (MB) |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
    for rep, c in cost.iterrows():
        lines.append(f"| {rep} | {int(c['params']):,} | {int(c['train_molecules'])} | "
                     f"{c['epoch_time_s']:.2f} | {c['peak_memory_mb']:.0f} |")  # fmt: skip
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


EMBEDDINGS = {
    "vqgan_latent": "VQ-GAN latent (frozen encoder, mean-pooled)",
    "pooled_density": "pooled log(1 + ρ) (4³ cells, not learned)",
}
"""Rows of the fine-tuning table: the embeddings' ``kind`` attributes (rhoflow.vqgan.embed)."""


def finetune_table(runs: Sequence[str | Path]) -> pd.DataFrame:
    """Test MAE per target of the MLP heads on each embedding (the features groups' ``kind``),
    mean and sample std over seeds in the papers' unit, and the train-mean baseline. Columns
    ``embedding``, ``target``, ``unit``, ``train_molecules``, ``mean``, ``std``, ``n_seeds``;
    ``attrs["n_test"]``."""
    from rhoflow.features import open_features

    df = edrep_runs(runs)
    df["embedding"] = [open_features(g).attrs["kind"] for g in df["groups"]]
    rows = []
    for target, part in df.groupby("target", sort=False):
        unit, factor = display_unit(part["unit"].iloc[0])
        n = int(part["train_molecules"].max())
        for kind, group in part.groupby("embedding", sort=False):
            rows.append({"embedding": EMBEDDINGS.get(kind, kind), "target": target, "unit": unit,
                         "train_molecules": n, **_stats(group["test_mae"] * factor)})  # fmt: skip
        seeds = part.drop_duplicates("seed")
        rows.append({"embedding": BASELINE, "target": target, "unit": unit,
                     "train_molecules": n, **_stats(seeds["baseline_mae"] * factor)})  # fmt: skip
    out = pd.DataFrame(rows)
    out.attrs["n_test"] = df.attrs["n_test"]
    return out


def write_finetune_table(df: pd.DataFrame, csv_path: str | Path, md_path: str | Path) -> None:
    """Write a :func:`finetune_table` as CSV (its columns) and Markdown (embeddings × targets,
    ``mean ± std``), atomically."""
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    targets = list(dict.fromkeys(df["target"]))
    units = dict(zip(df["target"], df["unit"], strict=False))
    most = int(df["n_seeds"].max())
    lines = [
        f"Test MAE of an MLP (two hidden layers, dropout 0.1, L1 loss) on frozen per-molecule "
        f"embeddings, mean ± sample std over {_seeds(most)}; {BASELINE}: every test molecule "
        f"predicted as the mean train target. Train molecules: "
        f"{int(df['train_molecules'].max())}; test molecules: {df.attrs['n_test']}.",
        "",
        "| embedding | " + " | ".join(f"{target_name(t)} ({units[t]})" for t in targets) + " |",
        "|---|" + "---:|" * len(targets),
    ]
    for embedding, group in df.groupby("embedding", sort=False):
        by_t = group.set_index("target")
        cells = [_cell(by_t.loc[t, "mean"], by_t.loc[t, "std"], by_t.loc[t, "n_seeds"], most)
                 if t in by_t.index else "–" for t in targets]  # fmt: skip
        lines.append(f"| {embedding} | " + " | ".join(cells) + " |")
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


# --- force fields on non-equilibrium molecules (rhoflow.ndem) ---------------------------------

VARIANT_NAMES = {
    "baseline": "ET",
    "ndem": "ET + NDeM",
    "denoise": "ET + denoising",
    "dens": "ET + DeNS-style",
    "edg": "ET + EDG",
}
"""Row names of the force-field variants (TorchMD-NET's Equivariant Transformer, ET)."""
FORCE_COLUMNS = ("energy_mae", "force_mae")
FORCE_UNITS = {"energy_mae": "kcal/mol", "force_mae": "kcal/mol/Å"}


def _summaries(runs: Sequence[str | Path]) -> pd.DataFrame:
    """The ``summary.json`` of each ndem run directory (rhoflow.ndem.train_forces), one row each."""
    return pd.DataFrame([json.loads((Path(r) / "summary.json").read_text()) for r in runs])


def _force_row(part: pd.DataFrame) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for what in FORCE_COLUMNS:
        stats = _stats(part[f"test_{what}"])
        row[what], row[f"{what}_std"] = stats["mean"], stats["std"]
    row.update(n_seeds=len(part), epochs=float(part["epochs"].mean()),
               frames_per_s=float(part["frames_per_s"].mean()),
               wall_s=float(part["wall_s"].mean()))  # fmt: skip
    return row


def md_forces_table(runs: Sequence[str | Path]) -> pd.DataFrame:
    """Test energy MAE (kcal/mol) and force MAE (kcal/mol/Å, over force components) per
    trajectory and variant, mean and sample std over seeds, the train-mean baseline (energy:
    the mean train energy; forces: each atom's mean train force) and Δ % against the plain ET
    ((1 − variant ÷ ET) × 100: positive when the auxiliary loss helps). One row per
    (trajectory, model); ``attrs["frames"]`` maps trajectories to their split sizes."""
    df = _summaries(runs)
    rows, frames = [], {}
    for trajectory, part in df.groupby("trajectory", sort=True):
        frames[trajectory] = part["frames"].iloc[0]
        seeds = part.drop_duplicates("seed")
        rows.append({"trajectory": trajectory, "model": BASELINE,
                     "energy_mae": float(seeds["baseline_energy_mae"].mean()),
                     "force_mae": float(seeds["baseline_force_mae"].mean())})  # fmt: skip
        plain = part[part["variant"] == "baseline"]
        for variant in VARIANT_NAMES:
            group = part[part["variant"] == variant]
            if group.empty:
                continue
            row = {"trajectory": trajectory, "model": VARIANT_NAMES[variant], **_force_row(group)}
            if variant != "baseline" and not plain.empty:
                for what in FORCE_COLUMNS:
                    ref = float(plain[f"test_{what}"].mean())
                    row[f"{what}_delta_pct"] = (1 - row[what] / ref) * 100
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["frames"] = frames
    return out


def _force_cells(row: pd.Series, most: int) -> list[str]:
    n = None if pd.isna(row.get("n_seeds")) else int(row["n_seeds"])
    return [_cell(row[w], row.get(f"{w}_std", np.nan), n, most) for w in FORCE_COLUMNS]


def _delta(value: Any) -> str:
    return "" if pd.isna(value) else f"{value:+.1f} %"


def write_md_forces_table(df: pd.DataFrame, csv_path: str | Path, md_path: str | Path,
                          html_path: str | Path) -> None:  # fmt: skip
    """Write an :func:`md_forces_table` as CSV (its columns), Markdown and HTML."""
    from rhoflow.io import html_table, write_html

    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    most = int(df["n_seeds"].max()) if "n_seeds" in df and df["n_seeds"].notna().any() else 1
    header = ["trajectory", "model", "energy MAE (kcal/mol)", "force MAE (kcal/mol/Å)",
              "Δ % energy", "Δ % force", "seeds", "epochs", "training frames/s"]  # fmt: skip
    rows = []
    for _, r in df.iterrows():
        baseline = r["model"] == BASELINE
        rows.append([r["trajectory"], r["model"], *_force_cells(r, most),
                     _delta(r.get("energy_mae_delta_pct")), _delta(r.get("force_mae_delta_pct")),
                     "" if baseline else str(int(r["n_seeds"])),
                     "" if baseline else f"{r['epochs']:.0f}",
                     "" if baseline else f"{r['frames_per_s']:.0f}"])  # fmt: skip
    sizes = "; ".join(f"{t}: {s['train']} / {s['val']} / {s['test']}"
                      for t, s in df.attrs["frames"].items())  # fmt: skip
    caption = (
        f"Test MAE of energy and forces (force MAE over force components) from the "
        f"best-validation checkpoint, mean ± sample std over seeds; {BASELINE}: the mean train "
        f"energy and each atom's mean train force. Δ %: (1 − MAE ÷ ET's MAE) × 100, positive "
        f"when the auxiliary loss helps. Frames train / val / test: {sizes}."
    )
    lines = [caption, "", "| " + " | ".join(header) + " |",
             "|---|---|" + "---:|" * (len(header) - 2)]  # fmt: skip
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    write_html(html_path, "Energy and force MAE on non-equilibrium molecules",
               f"<p>{caption}</p>" + html_table(header, rows))


def ndem_ablation_table(
    lambda_runs: Sequence[str | Path], sigma_runs: Sequence[str | Path]
) -> pd.DataFrame:
    """NDeM's test energy and force MAE per λ (σ_max at its default) and per σ_max (λ at its
    default), mean ± std over seeds: columns ``sweep`` (``lambda``, ``sigma_max``), ``value``,
    ``trajectory`` and those of :func:`md_forces_table`."""

    rows = []
    for sweep, key, runs in (("lambda", "weight", lambda_runs),
                             ("sigma_max", "sigma_max", sigma_runs)):  # fmt: skip
        if not runs:
            continue
        df = _summaries(runs)
        for (trajectory, value), part in df.groupby(["trajectory", key], sort=True):
            rows.append({"sweep": sweep, "value": float(value), "trajectory": trajectory,
                         **_force_row(part)})  # fmt: skip
    return pd.DataFrame(rows)


def write_ndem_ablation(df: pd.DataFrame, csv_path: str | Path, md_path: str | Path,
                        html_path: str | Path, png_path: str | Path) -> None:  # fmt: skip
    """Write an :func:`ndem_ablation_table` as CSV, Markdown and HTML, and the force MAE
    against λ (log axis; λ = 0 drawn at the left edge) as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from rhoflow.io import html_table, write_html

    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    most = int(df["n_seeds"].max())
    header = ["sweep", "value", "trajectory", "energy MAE (kcal/mol)", "force MAE (kcal/mol/Å)",
              "seeds", "epochs"]  # fmt: skip
    rows = [[{"lambda": "λ", "sigma_max": "σ_max (Å)"}[r["sweep"]], f"{r['value']:g}",
             r["trajectory"], *_force_cells(r, most), str(int(r["n_seeds"])),
             f"{r['epochs']:.0f}"] for _, r in df.iterrows()]  # fmt: skip
    caption = ("NDeM ablations (the paper's Tables 4 and 5): test MAE from the best-validation "
               "checkpoint, mean ± sample std over seeds; λ rows at the default σ_max, σ_max "
               "rows at the default λ.")  # fmt: skip
    lines = [caption, "", "| " + " | ".join(header) + " |", "|---|---:|---|" + "---:|" * 4]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    write_html(html_path, "NDeM ablations", f"<p>{caption}</p>" + html_table(header, rows))

    figure = Figure(figsize=(4.5, 3.2), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    lam = df[df["sweep"] == "lambda"]
    positive = lam["value"][lam["value"] > 0]
    floor = positive.min() / 10 if len(positive) else 0.01
    for trajectory, part in lam.groupby("trajectory", sort=True):
        x = part["value"].where(part["value"] > 0, floor)
        ax.errorbar(x, part["force_mae"], yerr=part["force_mae_std"].fillna(0), marker="o",
                    capsize=3, label=trajectory)  # fmt: skip
    ax.set_xscale("log")
    zero = bool((lam["value"] == 0).any())
    ax.set_xlabel(f"λ_NDeM (λ = 0 drawn at {floor:g})" if zero else "λ_NDeM")
    ax.set_ylabel("test force MAE (kcal/mol/Å)")
    if len(lam):
        ax.legend(fontsize=7)
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png")
