"""The one trainer every method composes: a run directory, fitted and tested.

:func:`fit_and_test` takes a built task (a :class:`rhoflow.train.task.EpochTask`), a
DataModule, the completed trainer settings (the schema's ``$defs/trainer``) and the run's
config (recorded as config.json). It fits with best and last checkpoints, resumes exactly from
``checkpoints/last.ckpt``, tests the best checkpoint (never the last, never selecting on test),
lets the task write its test outputs and merges the CSV logs of every attempt into
``metrics.csv``. It knows no method: property regression, ImageED, the teacher and the EDG
students all call it.

Faults, for every task alike:

- checkpoints are written like every rhoflow file (:func:`rhoflow.io.atomic_path`): a full
  disk or a killed job leaves the previous ``last.ckpt`` / ``best.ckpt`` intact;
- a non-finite training loss stops the run (:class:`FiniteLoss`) naming the epoch, the batch
  and its molecules, before that step changes any weight: the last checkpoint is the last
  complete epoch;
- an unreadable ``last.ckpt`` (a copy cut short) is not resumed from: the run resumes from
  ``best.ckpt``, which holds the complete training state of its epoch, so it ends as an
  uninterrupted run does; with neither readable it stops naming both files
  (:func:`resume_checkpoint`).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import random
import shutil
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
from lightning.pytorch.plugins.io import TorchCheckpointIO

from rhoflow.io import atomic_path
from rhoflow.train.task import EpochTask

log = logging.getLogger(__name__)

RESUMABLE = (
    "max_epochs", "max_time", "devices", "num_nodes", "num_workers", "progress_bar",
    "keep_every_n_epochs",
)  # fmt: skip
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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary sibling and renamed into place
    (:func:`rhoflow.io.atomic_path`). Lightning's own writer goes through a file in the system
    temporary folder and ``shutil.move``, which copies (not atomically) when that folder is on
    another file system, as on cluster nodes: a job killed during the copy would leave a
    truncated ``last.ckpt``, and a full ``/tmp`` would fail a run whose output disk has room."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class FiniteLoss(Callback):
    """Stops training at the first non-finite loss, before its backward pass, naming the epoch
    (0-based, as in metrics.csv), the batch and its first molecules.

    A run stops rather than skips the batch: a molecule without a finite label never reaches
    a property batch (:mod:`rhoflow.train.data` leaves it out), so a NaN or infinite loss means
    that the optimisation diverged or the model computed a NaN, and a run that skipped such
    batches would go on silently with fewer and fewer of them. Stopping before the step keeps
    the weights finite and ``last.ckpt`` at the last complete epoch. All ranks take the same
    decision (one any-reduce per step), so a DDP run stops on every rank together."""

    def __init__(self) -> None:
        super().__init__()
        self._where = ""

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        ids = list(batch.get("ids", ())) if isinstance(batch, dict) else []
        shown = ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")
        self._where = f"epoch {trainer.current_epoch}, batch {batch_idx}" + (
            f" (molecules {shown})" if ids else ""
        )

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            raise FloatingPointError(
                f"non-finite training loss ({float(loss.detach().float().mean())}) in "
                f"{self._where}: training stopped before this step; the last checkpoint is the "
                "last complete epoch (lower lr or set gradient_clip_val, in a new run directory)"
            )


def _unreadable(path: Path) -> str | None:
    """Why ``path`` is not a loadable checkpoint, or None when it is (read memory-mapped: the
    zip directory at its end is what a truncated file lacks)."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch says, the file cannot be resumed
        return f"{type(exc).__name__}: {' '.join(str(exc).split()).split('. ')[0][:200]}"
    return None


def resume_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint a run in ``run_dir`` resumes from: ``checkpoints/last.ckpt``; when that
    is unreadable (a truncated copy), ``checkpoints/best.ckpt`` (its epoch's complete training
    state: the run redoes the later epochs exactly); None for a new run. Raises
    ``RuntimeError`` naming the files when neither can be read."""
    folder = Path(run_dir) / "checkpoints"
    last, best = folder / "last.ckpt", folder / "best.ckpt"
    if not last.exists():
        return None
    problem = _unreadable(last)
    if problem is None:
        return last
    if best.exists() and _unreadable(best) is None:
        log.warning("%s is unreadable (%s); resuming from %s", last, problem, best)
        return best
    raise RuntimeError(
        f"cannot resume {run_dir}: {last} is unreadable ({problem}) and {best} is missing or "
        f"unreadable too; delete {folder} to train the run again from the start"
    )


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
    settings: dict[str, Any], run_dir: str | Path, monitor: str = "val_mae", manual: bool = False
) -> L.Trainer:
    """The Lightning trainer of a run directory: checkpoints (best on ``monitor``, last, and
    every ``keep_every_n_epochs``-th epoch's ``epoch<k>.ckpt`` when set), CSV log (+
    TensorBoard when installed), early stopping when asked, RNG states saved. ``manual``: the
    task optimises itself (Lightning's manual optimisation) and clips its own gradients by
    ``gradient_clip_val``."""
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
    callbacks: list[Callback] = [best, last, RNGStates(), FiniteLoss(), ModelSummary()]
    if settings["keep_every_n_epochs"] is not None:
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                filename="epoch{epoch:03d}",
                monitor="epoch",  # always present; keeps its state apart from last's
                mode="max",
                auto_insert_metric_name=False,
                every_n_epochs=settings["keep_every_n_epochs"],
                save_top_k=-1,
                enable_version_counter=False,
            )
        )
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
        gradient_clip_val=None if manual else settings["gradient_clip_val"],
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
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


def changed_settings(path: Path, config: dict[str, Any]) -> list[str]:
    """The keys in which the run's config.json (``path``) differs from ``config`` beyond the
    :data:`RESUMABLE` trainer settings and the :data:`UNCHECKED` keys (paths compare as the
    files they name): none when the run may resume."""
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
    return sorted(k for k in a | b if a.get(k) != b.get(k))


def fit(
    run_dir: str | Path,
    task: EpochTask,
    data: L.LightningDataModule,
    settings: dict[str, Any],
    config: dict[str, Any],
) -> L.Trainer:
    """Fit ``task`` in ``run_dir``, resuming from ``checkpoints/last.ckpt`` when present and
    ``config`` agrees with the run's config.json beyond :data:`RESUMABLE` (from ``best.ckpt``
    when ``last.ckpt`` is unreadable, :func:`resume_checkpoint`); a run directory holding other
    settings or data (:func:`changed_settings`) is emptied and trained anew. Writes config.json
    and the merged metrics.csv. ``task.monitor`` selects ``checkpoints/best.ckpt``.
    Returns the trainer (its ``checkpoint_callback`` knows the best score)."""
    run_dir = Path(run_dir)
    resume = resume_checkpoint(run_dir)
    changed = changed_settings(run_dir / "config.json", config) if resume is not None else []
    if changed:  # a rerun for new settings or data (Snakemake's), not a retry: start over
        log.warning("%s held a run with other %s: starting a new run", run_dir, ", ".join(changed))
        shutil.rmtree(run_dir)
        resume = None
    if resume is not None:
        log.info("resuming %s from %s", run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(settings, run_dir, task.monitor, not task.automatic_optimization)
    if trainer.is_global_zero:
        with atomic_path(run_dir / "config.json") as tmp:
            tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    trainer.fit(task, datamodule=data, ckpt_path=resume, weights_only=True)
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
