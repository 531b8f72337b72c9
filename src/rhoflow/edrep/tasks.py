""":class:`RepresentationTask`: regression of one or more per-molecule targets from a density
representation (voxels, point clouds or images), on the shared trainer.

The model maps a batch's ``x`` to [B, T] outputs that learn the targets standardised on the
train split ((y − mean) / std per target, :func:`standardise`); metrics and predictions are in
the labels' units. The loss is L1 or MSE on the standardised targets (the low-data curves
report MAE and train with L1; the representation table reports RMSE and trains with MSE).
Logged per epoch: ``train_loss``, ``val_nmae`` (the mean over targets of MAE / std: the one
number that selects the checkpoint, as MAE does for one target), and per target
``val_mae_<target>`` and ``val_rmse_<target>``; when testing the ``test_`` ones.

``test_predictions.parquet``: one row per test molecule and target (id, target, truth,
prediction, unit), from the best checkpoint; schema metadata ``rhoflow.predictions`` holds the
run's summary: per-target ``test_mae`` and ``test_rmse``, ``best_epoch``, ``val_nmae``, and
the cost (EDG Fig. 1b) — ``params``, ``train_molecules``, ``epoch_time_s`` (mean wall time of
an epoch: training and validation), ``peak_memory_mb`` and ``memory`` (what it measures,
:func:`peak_memory_mb`).
"""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError

from rhoflow.edrep.augment import cube_symmetries, random_rotations
from rhoflow.io import write_parquet
from rhoflow.train.property import PREDICTIONS_KEY
from rhoflow.train.task import EpochTask

AUGMENTATIONS = {"cube": cube_symmetries, "rotation": random_rotations}
"""Training-time augmentations of :mod:`rhoflow.edrep.augment` by name."""


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """The process's peak memory (MB) and what it measures: ``cuda_allocated``
    (``torch.cuda.max_memory_allocated``) on a GPU, else ``cpu_rss`` (the peak resident set,
    ``ru_maxrss``: model, activations, data and the Python runtime)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_rss"


def standardise(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [T] and standard deviation [T] (1 where a target is constant) of train targets
    ``y`` [M, T]."""
    mean, std = y.mean(axis=0), y.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


class RepresentationTask(EpochTask):
    """Standardised regression of ``targets`` from a batch's ``x`` (module docstring).

    Args:
        model: ``model(x) -> [B, T]``.
        targets: the labels columns, in output order.
        units: their units.
        mean, std: [T] train statistics of the targets (label units).
        settings: the completed trainer settings.
        loss: ``l1`` or ``mse``.
        augment: ``cube`` (voxels), ``rotation`` (point clouds) or None; drawn from a
            generator seeded by (seed, global step, rank), so a resumed run augments as an
            uninterrupted one.
    """

    monitor = "val_nmae"

    def __init__(
        self,
        model: nn.Module,
        targets: list[str],
        units: list[str],
        mean: np.ndarray,
        std: np.ndarray,
        settings: dict,
        loss: str = "l1",
        augment: str | None = None,
    ) -> None:
        super().__init__(settings)
        if loss not in ("l1", "mse"):
            raise ValueError(f"loss must be l1 or mse, got {loss!r}")
        self.hparams.update(targets=list(targets), units=list(units), loss=loss, augment=augment)
        self.model, self.targets, self.units = model, list(targets), list(units)
        self.loss, self.augment = loss, augment
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float64)))
        self.register_buffer("std", torch.as_tensor(np.asarray(std, dtype=np.float64)))
        self.metrics["train_loss"] = MeanMetric()
        self.metrics["val_nmae"] = MeanMetric()
        for stage in ("val", "test"):
            for t in self.targets:
                self.metrics[f"{stage}_mae_{t}"] = MeanAbsoluteError().set_dtype(torch.float64)
                self.metrics[f"{stage}_rmse_{t}"] = MeanSquaredError(squared=False).set_dtype(
                    torch.float64
                )
        self.test_outputs: list[tuple[Tensor, Tensor, Tensor]] = []
        self.test_arrays: tuple[np.ndarray, ...] | None = None

    def forward(self, x: Tensor) -> Tensor:
        """Predictions [B, T] in the labels' units (float64)."""
        return self.model(x).double() * self.std + self.mean

    @staticmethod
    def _targets(batch: dict[str, Any]) -> Tensor:
        y = batch["y"].double()
        return y.unsqueeze(1) if y.dim() == 1 else y  # [B, T]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        x = batch["x"]
        if self.augment is not None:
            g = torch.Generator().manual_seed(
                int(self.settings["seed"]) * 1_000_003 + self.global_step * 101 + self.global_rank
            )
            x = AUGMENTATIONS[self.augment](x, g)
        out = self.model(x).float()  # out: [B, T]
        target = ((self._targets(batch) - self.mean) / self.std).float()
        if self.loss == "l1":
            loss = torch.nn.functional.l1_loss(out, target)
        else:
            loss = torch.nn.functional.mse_loss(out, target)
        self.metrics["train_loss"].update(loss.detach(), weight=len(target))
        return loss

    def _evaluate(self, stage: str, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        prediction, truth = self(batch["x"]), self._targets(batch)
        for k, t in enumerate(self.targets):
            self.metrics[f"{stage}_mae_{t}"].update(prediction[:, k], truth[:, k])
            self.metrics[f"{stage}_rmse_{t}"].update(prediction[:, k], truth[:, k])
        return prediction, truth

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        prediction, truth = self._evaluate("val", batch)
        nmae = ((prediction - truth).abs() / self.std).mean(dim=1)  # nmae: [B]
        self.metrics["val_nmae"].update(nmae.mean(), weight=len(nmae))

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        prediction, truth = self._evaluate("test", batch)
        self.test_outputs.append((batch["index"], truth, prediction))

    def on_test_epoch_start(self) -> None:
        self.test_outputs, self.test_arrays = [], None

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.test_arrays = self.gather_test_outputs(self.test_outputs)
        self.test_outputs = []

    def finish_test(self, run_dir: Path, data: Any, summary: dict[str, Any]) -> dict[str, Any]:
        """Per-target test MAE and RMSE over every test molecule once, into the summary, and
        ``test_predictions.parquet`` (module docstring)."""
        index, truth, prediction = self.test_arrays
        error = prediction - truth  # error: [M, T]
        epochs = pd.read_csv(run_dir / "metrics.csv")["epoch_time_s"].dropna()
        memory, kind = peak_memory_mb(self.device)
        summary = {
            "targets": self.targets,
            "units": self.units,
            **summary,
            "params": sum(p.numel() for p in self.model.parameters()),
            "train_molecules": len(data.datasets["train"]),
            "epoch_time_s": float(epochs.mean()),
            "peak_memory_mb": memory,
            "memory": kind,
            "test_mae": {t: float(np.abs(error[:, k]).mean()) for k, t in enumerate(self.targets)},
            "test_rmse": {
                t: float(np.sqrt((error[:, k] ** 2).mean())) for k, t in enumerate(self.targets)
            },
        }
        per_target = ("test_mae_", "test_rmse_")  # logged per target: now in the dicts above
        summary = {k: v for k, v in summary.items() if not k.startswith(per_target)}
        if self.trainer.is_global_zero:
            ids = data.datasets["test"].ids[index]
            n, t = truth.shape
            table = pa.table(
                {
                    "id": pa.array(np.repeat(ids, t).tolist(), pa.string()),
                    "target": pa.array(self.targets * n, pa.string()),
                    "truth": pa.array(truth.reshape(-1), pa.float64()),
                    "prediction": pa.array(prediction.reshape(-1), pa.float64()),
                    "unit": pa.array(self.units * n, pa.string()),
                }
            )
            metadata = {PREDICTIONS_KEY: json.dumps(summary, sort_keys=True)}
            write_parquet(
                run_dir / "test_predictions.parquet",
                table.replace_schema_metadata(metadata),
                ["target", "unit"],
            )
        return summary
