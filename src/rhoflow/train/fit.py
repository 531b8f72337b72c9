"""The one trainer every method composes: a run directory, fitted and tested.

:func:`fit_and_test` takes a built task (a :class:`rhoflow.train.task.EpochTask`), a
DataModule, the completed trainer settings (the schema's ``$defs/trainer``) and the run's
config (recorded as config.json). It fits with best and last checkpoints, resumes exactly from
``checkpoints/last.ckpt``, tests the best checkpoint (never the last, never selecting on test),
lets the task write its test outputs and merges the CSV logs of every attempt into
``metrics.csv``. It knows no method: property regression, ImageED, the teacher and the EDG
students all call it.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ModelSummary,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import CSVLogger

from rhoflow.io import atomic_path
from rhoflow.train.task import EpochTask

log = logging.getLogger(__name__)

RESUMABLE = ("max_epochs", "max_time", "devices", "num_nodes", "num_workers", "progress_bar")
"""Trainer settings a resumed run may change (to extend a run or move it to other hardware)."""
UNCHECKED = ("versions",)
"""config.json keys a resumed run may change (a library upgrade does not restart a run)."""


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
    trainer settings: CUDA when present (``auto``), bf16-mixed there, 32-bit and
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
    # the plain summary (to the log) and tqdm bar, also where `rich` is installed (Lightning
    # would switch both to rich, whose summary goes to stdout)
    callbacks: list[Callback] = [best, last, RNGStates(), ModelSummary()]
    if settings["progress_bar"]:
        callbacks.append(TQDMProgressBar())
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


def _check_resumable(path: Path, config: dict[str, Any]) -> None:
    """Refuse to resume a run directory whose config.json differs from ``config`` beyond the
    :data:`RESUMABLE` trainer settings and the :data:`UNCHECKED` keys (paths compare as the
    files they name)."""
    old = json.loads(path.read_text())

    def real(value: Any) -> Any:  # the same files, however their paths were written
        if isinstance(value, list):
            return [real(v) for v in value]
        return os.path.realpath(value) if isinstance(value, str) else value

    def fixed(c: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in c.items() if k not in UNCHECKED}
        out["train"] = {k: v for k, v in c.get("train", {}).items() if k not in RESUMABLE}
        out["data"] = {k: real(v) for k, v in c.get("data", {}).items()}
        return out

    a, b = fixed(old), fixed(config)
    if a != b:
        keys = sorted(k for k in a | b if a.get(k) != b.get(k))
        raise ValueError(
            f"{path.parent} holds a run with other settings ({', '.join(keys)} differ); "
            "use a new run directory"
        )


def fit(
    run_dir: str | Path,
    task: EpochTask,
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


def fit_and_test(
    run_dir: str | Path,
    task: EpochTask,
    data: L.LightningDataModule,
    settings: dict[str, Any],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Fit (:func:`fit`: resumable), test the best checkpoint, let the task write its test
    outputs (:meth:`EpochTask.finish_test`) and merge metrics.csv with the test row.

    Args:
        run_dir: the run directory (created; resumed from its ``checkpoints/last.ckpt``).
        task: the task to train; ``task.monitor`` selects the best checkpoint.
        data: its DataModule (train, val and test loaders).
        settings: the completed trainer settings (``train.trainer``, ``edg.*.trainer``).
        config: what the run is, written to ``config.json`` (a resumed run must agree with it
            beyond :data:`RESUMABLE`); a ``train`` key holds ``settings``.

    Returns:
        The run's summary: ``checkpoint``, ``best_epoch`` (0-based: the first epoch is 0, as in
        metrics.csv), the best value of ``task.monitor`` and the test metrics the task logged,
        plus what :meth:`EpochTask.finish_test` adds.
    """
    run_dir = Path(run_dir)
    trainer = fit(run_dir, task, data, settings, config)
    best = run_dir / "checkpoints" / "best.ckpt"
    (tested,) = trainer.test(
        task, datamodule=data, ckpt_path=best, verbose=False, weights_only=True
    )
    state = torch.load(best, map_location="cpu", weights_only=True)
    score = state["callbacks"][trainer.checkpoint_callback.state_key]["best_model_score"]
    summary = {
        "checkpoint": "checkpoints/best.ckpt",
        "best_epoch": int(state["epoch"]),
        task.monitor: float(score),
        **{k: float(v) for k, v in tested.items()},
    }
    summary = task.finish_test(run_dir, data, summary)
    if trainer.is_global_zero:
        merge_metrics(run_dir)  # again, with the test row
    trainer.strategy.barrier()  # every rank returns once the run directory is complete
    return summary
