""":class:`EpochTask`: what every rhoflow task shares, whatever it learns.

A task (a LightningModule, as torchmd-net's ``LNNP``) wraps a plain model built elsewhere and
holds what training means: losses, metrics, optimiser and schedule. Every task keeps its
metrics in ``self.metrics`` (a ``ModuleDict`` of torchmetrics, named ``<stage>_<what>``:
``train_loss``, ``val_mae``, ``test_l_mp``) and updates them in its steps; this base logs them.

Once per epoch, after validation (so every value of epoch k is in the log before that epoch's
checkpoint is written), it logs every updated ``train_*`` and ``val_*`` metric, ``lr``,
``epoch_time_s`` (wall time of the epoch: training and validation, s) and
``molecules_per_s`` (training molecules per second of that time), steps the learning-rate
schedule on ``monitor`` and writes one line to the ``rhoflow.train`` log, whether or not a
progress bar is shown::

    epoch 3/30: train_loss 0.412, val_mae 51.2 meV, lr 1.00e-03, 4.1 s, 97.0 molecules/s

Test metrics (``test_*``) are logged once, at the end of the test epoch. Epochs count from 0
(metrics.csv, ``best_epoch``); the log line counts from 1.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

log = logging.getLogger("rhoflow.train")


class EpochTask(L.LightningModule):
    """AdamW over the trainable parameters (a frozen module is not optimised), the trainer
    settings' learning-rate schedule stepped once per epoch after validation on
    :attr:`monitor`, and the per-epoch logging of ``self.metrics`` (module docstring).

    Args:
        settings: the completed trainer settings (lr, weight_decay, scheduler, lr_factor,
            lr_patience, lr_min, max_epochs are used here).

    ``scheduler: none`` keeps the learning rate at ``lr`` for the whole run.
    """

    monitor = "val_mae"
    """The logged value that selects the best checkpoint and drives ``plateau``."""

    def __init__(self, settings: dict) -> None:
        super().__init__()
        self.settings = settings
        self.metrics = nn.ModuleDict()
        self._epoch_start = time.perf_counter()
        self._epoch_molecules = 0

    # --- hooks every task shares --------------------------------------------------------

    def on_train_epoch_start(self) -> None:
        self._epoch_start, self._epoch_molecules = time.perf_counter(), 0

    def on_train_batch_end(self, outputs: Any, batch: dict[str, Any], batch_idx: int) -> None:
        self._epoch_molecules += len(batch["index"])

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            for name, metric in self.metrics.items():
                if name.startswith("val_"):
                    metric.reset()
            return
        monitored = self.metrics[self.monitor].compute()
        values = {}
        for name, metric in self.metrics.items():
            if name.startswith(("train_", "val_")) and metric.update_count:
                values[name] = float(metric.compute())
                self.log(name, metric)
        optimizers = self.optimizers()
        first = optimizers[0] if isinstance(optimizers, list) else optimizers
        lr = first.param_groups[0]["lr"]  # the (first) optimiser's
        elapsed = time.perf_counter() - self._epoch_start
        rate = self._epoch_molecules * self.trainer.world_size / elapsed
        self.log("lr", lr, sync_dist=True)
        self.log("epoch_time_s", elapsed, sync_dist=True)
        self.log("molecules_per_s", rate, sync_dist=True)
        self._step_scheduler(monitored)
        if self.trainer.is_global_zero:
            shown = ", ".join(self.format_metric(k, v) for k, v in sorted(values.items()))
            log.info(
                "epoch %d/%d: %s, lr %.2e, %.1f s, %.1f molecules/s",
                self.current_epoch + 1,
                self.trainer.max_epochs,
                shown,
                lr,
                elapsed,
                rate,
            )

    def on_test_epoch_end(self) -> None:
        for name, metric in self.metrics.items():
            if name.startswith("test_") and metric.update_count:
                self.log(name, metric)

    def gather_test_outputs(self, outputs: list[tuple[Tensor, ...]]) -> tuple[np.ndarray, ...]:
        """This rank's test steps' (index [B], *values [B, ...]) -> numpy arrays over every test
        molecule once, sorted by index: under DDP each rank saw a padded share, so the ranks'
        outputs are gathered and repeated molecules dropped."""
        columns = [torch.cat(c) for c in zip(*outputs, strict=True)]
        if self.trainer.world_size > 1:
            columns = [self.all_gather(c).flatten(0, 1) for c in columns]
        index, first = np.unique(columns[0].cpu().numpy(), return_index=True)
        return (index, *(c.cpu().numpy()[first] for c in columns[1:]))

    def format_metric(self, name: str, value: float) -> str:
        """How the epoch log line shows a metric (a task may add its unit)."""
        return f"{name} {value:.4g}"

    def finish_test(self, run_dir: Path, data: Any, summary: dict[str, Any]) -> dict[str, Any]:
        """Called on every rank after the best checkpoint's test (rhoflow.train.fit_and_test):
        write the task's test outputs into ``run_dir`` (rank 0) and return the run's summary.
        The base writes nothing."""
        return summary

    # --- optimiser and schedule ---------------------------------------------------------

    def _step_scheduler(self, monitored: Tensor) -> None:
        # Stepped here, before the checkpoint of this epoch is written (Lightning would step it
        # after), so a run resumed from that checkpoint continues the schedule exactly.
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(monitored)
            elif scheduler is not None:
                scheduler.step()

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Lightning's own stepping is off: the task steps in ``on_validation_epoch_end``."""

    def configure_optimizers(self) -> dict[str, Any]:
        s = self.settings
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=s["lr"], weight_decay=s["weight_decay"])
        return self.scheduled(optimizer)

    def scheduled(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """``optimizer`` with the settings' schedule, as ``configure_optimizers`` returns it (a
        task with several optimisers, in manual optimisation, returns a list of these)."""
        s = self.settings
        if s["scheduler"] == "none":
            return {"optimizer": optimizer}
        if s["scheduler"] == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=s["lr_factor"],
                patience=s["lr_patience"],
                min_lr=s["lr_min"],
            )
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=s["max_epochs"], eta_min=s["lr_min"]
            )
        schedule = {"scheduler": scheduler, "interval": "epoch"}
        if self.automatic_optimization:  # Lightning checks a plateau schedule's monitor there
            schedule["monitor"] = self.monitor
        return {"optimizer": optimizer, "lr_scheduler": schedule}
