"""A training run: one model, one target, one run directory, resumable.

:func:`run` trains a model on a DataModule's train split, selects the checkpoint on val_mae,
tests the best checkpoint (never the last, never selecting on test) and writes the run
directory (:mod:`rhoflow.train`). :func:`build_trainer` is the configured Lightning trainer.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyarrow as pa
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from rhoflow.io import atomic_path, write_parquet
from rhoflow.train.data import GeometryDataModule, SplitDataModule
from rhoflow.train.normalize import TargetScaler, is_extensive
from rhoflow.train.task import PropertyTask

log = logging.getLogger(__name__)

RESUMABLE = ("max_epochs", "max_time", "devices", "num_nodes", "num_workers", "progress_bar")
"""Train settings a resumed run may change (to extend a run or move it to other hardware)."""
PREDICTIONS_KEY = b"rhoflow.predictions"


class RNGStates(Callback):
    """Saves the torch, CUDA, numpy and Python RNG states in each checkpoint and restores them
    on resume, so random draws after epoch k (dropout, augmentation) match an uninterrupted
    run. Stored as plain lists and tensors: checkpoints load with ``weights_only=True``."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
            "python": random.getstate(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))


def resolve_hardware(settings: dict[str, Any]) -> dict[str, Any]:
    """Lightning's accelerator, devices, num_nodes, precision and deterministic flag from the
    ``train`` settings: CUDA when present (``auto``), bf16-mixed there, 32-bit and
    deterministic on CPU."""
    cuda = settings["accelerator"] in ("auto", "gpu") and torch.cuda.is_available()
    if settings["accelerator"] == "gpu" and not cuda:
        raise RuntimeError("train.accelerator is 'gpu' but CUDA is not available")
    precision = settings["precision"]
    if precision == "auto":
        precision = "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true"
    return {
        "accelerator": "gpu" if cuda else "cpu",
        "devices": settings["devices"],
        "num_nodes": settings["num_nodes"],
        "precision": precision,
        "deterministic": not cuda,
    }


def build_trainer(
    settings: dict[str, Any], run_dir: str | Path, monitor: str = "val_mae"
) -> L.Trainer:
    """The Lightning trainer of a run directory: checkpoints (best on ``monitor``, and last),
    CSV log (+ TensorBoard when installed), early stopping when asked, RNG states saved."""
    run_dir = Path(run_dir)
    # Two checkpoint callbacks: Lightning's save_last writes last.ckpt only in epochs that
    # also wrote a top-k checkpoint, and a killed run must resume from its latest epoch.
    best = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode="min",
        save_top_k=1,
        enable_version_counter=False,
    )
    last = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="last", save_top_k=1, enable_version_counter=False
    )
    callbacks: list[Callback] = [best, last, RNGStates()]
    if settings["early_stopping_patience"] is not None:
        callbacks.append(EarlyStopping(monitor, patience=settings["early_stopping_patience"]))
    # one version folder per (resumed) process: nothing an earlier attempt logged is deleted
    loggers: list[Any] = [CSVLogger(run_dir, name="logs", flush_logs_every_n_steps=1)]
    if importlib.util.find_spec("tensorboard") is not None:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="tensorboard"))
    return L.Trainer(
        **resolve_hardware(settings),
        max_epochs=settings["max_epochs"],
        max_time=settings["max_time"],
        gradient_clip_val=settings["gradient_clip_val"],
        callbacks=callbacks,
        logger=loggers,
        enable_progress_bar=settings["progress_bar"],
        default_root_dir=run_dir,
    )


def merge_metrics(run_dir: str | Path) -> Path:
    """Write ``run_dir/metrics.csv`` from the CSV logs of every attempt
    (``logs/version_*/metrics.csv``): a later attempt replaces the rows of the epochs it
    logged again (an attempt resumed after epoch k logs from epoch k + 1 on)."""
    run_dir = Path(run_dir)
    versions = sorted(
        run_dir.glob("logs/version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])
    )
    rows: list[dict[str, str]] = []
    for path in versions:
        with open(path, newline="") as fh:
            new = list(csv.DictReader(fh))
        if new:
            first = min(int(r["epoch"]) for r in new)
            rows = [r for r in rows if int(r["epoch"]) < first] + new
    columns = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("epoch", "step"), k))
    out = run_dir / "metrics.csv"
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return out


def write_predictions(
    path: str | Path,
    ids: Sequence[str],
    truth: np.ndarray,
    prediction: np.ndarray,
    unit: str,
    metadata: dict[str, Any],
) -> None:
    """Test predictions (id, truth, prediction, unit) atomically; ``metadata`` in the schema
    (``rhoflow.predictions``)."""
    table = pa.table(
        {
            "id": pa.array(list(ids), pa.string()),
            "truth": pa.array(truth, pa.float64()),
            "prediction": pa.array(prediction, pa.float64()),
            "unit": pa.array([unit] * len(ids), pa.string()),
        }
    )
    table = table.replace_schema_metadata({PREDICTIONS_KEY: json.dumps(metadata, sort_keys=True)})
    write_parquet(path, table, ["unit"])


def fit(
    run_dir: str | Path,
    task: L.LightningModule,
    data: L.LightningDataModule,
    settings: dict[str, Any],
    config: dict[str, Any],
) -> L.Trainer:
    """Fit ``task`` in ``run_dir``, resuming from ``checkpoints/last.ckpt`` when present (and
    ``config`` agrees with the run's config.json beyond :data:`RESUMABLE`), and write
    config.json and the merged metrics.csv. ``task.monitor`` selects ``checkpoints/best.ckpt``.
    Returns the trainer (its ``checkpoint_callback`` knows the best score)."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        _check_resumable(run_dir / "config.json", config)
        log.info("resuming %s from %s", run_dir, last)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(settings, run_dir, task.monitor)
    if trainer.is_global_zero:
        with atomic_path(run_dir / "config.json") as tmp:
            tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    trainer.fit(task, datamodule=data, ckpt_path=last if last.exists() else None, weights_only=True)
    if trainer.is_global_zero:
        merge_metrics(run_dir)
    return trainer


def _check_resumable(path: Path, config: dict[str, Any]) -> None:
    """Refuse to resume a run directory whose config.json differs beyond :data:`RESUMABLE`."""
    old = json.loads(path.read_text())

    def real(value: Any) -> Any:  # the same files, however their paths were written
        if isinstance(value, list):
            return [real(v) for v in value]
        return os.path.realpath(value) if isinstance(value, str) else value

    def fixed(c: dict[str, Any]) -> dict[str, Any]:
        train = {k: v for k, v in c["train"].items() if k not in RESUMABLE}
        data = {k: real(v) for k, v in c["data"].items()}
        fixed = {k: c.get(k) for k in ("model", "target", "edg", "settings")}
        return {**fixed, "data": data, "train": train}

    a, b = fixed(old), fixed(config)
    if a != b:
        keys = sorted(k for k in a | b if a.get(k) != b.get(k))
        raise ValueError(
            f"{path.parent} holds a run with other settings ({', '.join(keys)} differ); "
            "use a new run directory"
        )


def run(
    run_dir: str | Path,
    data: SplitDataModule,
    model: str | Callable[..., nn.Module],
    model_kwargs: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    edg: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, select on val_mae, test the best checkpoint; resume when the run directory has a
    ``checkpoints/last.ckpt``. Returns the run's summary (best epoch, val_mae, test_mae, unit).

    Args:
        run_dir: the run directory (created).
        data: the DataModule (e.g. :class:`GeometryDataModule`); its batch size, workers and
            seed should be those of ``settings``.
        model: a name of :data:`rhoflow.models.MODELS` or a callable building the model.
        model_kwargs: the model's arguments.
        settings: the ``train`` config section (defaults filled from the schema).
        edg: distil an EDG teacher into the model: ``{"teacher": teacher model.pt,
            "lambda": λ}`` (:class:`rhoflow.edg.distill.DistillationTask`); ``data`` must then
            serve the teacher's ``features`` (:class:`rhoflow.edg.distill.EDGDataModule`).
    """
    from rhoflow.config import section_settings

    settings = section_settings("train.trainer", settings)
    model_kwargs = dict(model_kwargs or {})
    run_dir = Path(run_dir)
    L.seed_everything(settings["seed"], workers=True)
    data.setup("fit")
    scaler = fit_scaler(data, settings["atomref"])
    name = model if isinstance(model, str) else f"{model.__module__}.{model.__qualname__}"
    if isinstance(model, str):
        from rhoflow.models import build_model

        network = build_model(model, **model_kwargs)
    else:
        network = model(**model_kwargs)
    config = {
        "train": settings,
        "model": {"name": name, "kwargs": model_kwargs},
        "target": {"column": data.target, "unit": data.unit},
        "data": data.describe(),
        "normalization": scaler.summary(),
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
    }
    if edg is not None:
        from rhoflow.edg.distill import DistillationTask

        task = DistillationTask.from_teacher(
            network, scaler, data.target, data.unit, settings, **edg
        )
        config["edg"] = edg
    else:
        task = PropertyTask(network, scaler, data.target, data.unit, settings)
    trainer = fit(run_dir, task, data, settings, config)
    best = run_dir / "checkpoints" / "best.ckpt"
    trainer.test(task, datamodule=data, ckpt_path=best, verbose=False, weights_only=True)
    p = task.test_predictions  # every test molecule once (DDP padding repeats removed)
    best_state = torch.load(best, map_location="cpu", weights_only=True)
    score = best_state["callbacks"][trainer.checkpoint_callback.state_key]["best_model_score"]
    summary = {
        "target": data.target,
        "unit": data.unit,
        "checkpoint": "checkpoints/best.ckpt",
        "best_epoch": int(best_state["epoch"]),
        "val_mae": float(score),
        "test_mae": float(np.abs(p["prediction"] - p["truth"]).mean()),
    }
    if trainer.is_global_zero:
        ids = data.datasets["test"].ids[p["index"]]
        write_predictions(
            run_dir / "test_predictions.parquet",
            ids,
            p["truth"],
            p["prediction"],
            data.unit,
            summary,
        )
        merge_metrics(run_dir)  # again, with the test row
    trainer.strategy.barrier()  # every rank returns once the run directory is complete
    return summary


def fit_scaler(data: SplitDataModule, atomref: bool | None) -> TargetScaler:
    """The target normalisation of ``data``'s train split; with atomrefs when ``atomref`` (None:
    when the target is an extensive energy, :func:`is_extensive`), from the datasets'
    ``element_counts()``."""
    train = data.datasets["train"]
    if atomref is None:
        atomref = is_extensive(data.target)
    if not atomref:
        return TargetScaler.fit(train.y)
    counts, elements = train.element_counts()
    scaler = TargetScaler.fit(train.y, counts, elements)
    for name in ("val", "test"):
        unseen = set(data.datasets[name].element_counts()[1]) - set(elements)
        if unseen:
            log.warning(
                "%s molecules have elements absent from train (atomref 0): %s",
                name,
                sorted(int(z) for z in unseen),
            )
    return scaler


def train_geometry(
    run_dir: str | Path,
    tables: Sequence[str | Path],
    labels: str | Path,
    split: str | Path,
    target: str,
    model: str | Callable[..., nn.Module],
    model_kwargs: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    edg: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`run` on geometry data: molecule ``tables``, a ``labels`` table and a ``split``
    file, learning the labels column ``target``. ``edg``: ``{"teacher": model.pt, "lambda": λ,
    "features": teacher features group}`` distils the EDG teacher (:mod:`rhoflow.edg`)."""
    from rhoflow.config import section_settings

    settings = section_settings("train.trainer", settings)
    module: Any = GeometryDataModule
    if edg is not None:
        from rhoflow.edg.distill import EDGDataModule

        module = functools.partial(EDGDataModule, edg["features"])
        edg = {k: v for k, v in edg.items() if k != "features"}
    data = module(
        tables,
        labels,
        split,
        target,
        batch_size=settings["batch_size"],
        num_workers=settings["num_workers"],
        seed=settings["seed"],
    )
    return run(run_dir, data, model, model_kwargs, settings, edg)
