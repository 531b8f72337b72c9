"""Tasks: what training means. :class:`EpochTask` holds what every task shares (optimiser,
epoch-wise schedule); :class:`PropertyTask` is property regression.

:class:`PropertyTask` wraps a plain model (``model(z, pos, batch) -> [B]``, built elsewhere) and
holds the loss, metrics, optimiser and schedule, as torchmd-net's ``LNNP``. The model learns the
normalised target (:class:`rhoflow.train.normalize.TargetScaler`, fitted on the train split);
metrics and predictions are in the label's unit. One model per target, as EDG and Geom3D train
QM9.

Logged once per epoch, after validation (so every value of epoch k is in the log before that
epoch's checkpoint is written): ``train_loss`` (mean L1 on normalised targets), ``val_mae``
(label unit), ``lr``; ``test_mae`` (label unit) when testing.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric

from rhoflow.train.normalize import TargetScaler


class EpochTask(L.LightningModule):
    """What every rhoflow task shares: AdamW over the trainable parameters (a frozen module
    is not optimised) and the learning-rate schedule of the ``train`` settings, stepped once
    per epoch after validation on the task's monitored value.

    Args:
        settings: the trainer settings (lr, weight_decay, scheduler, lr_factor, lr_patience,
            lr_min, max_epochs are used here).
    """

    monitor = "val_mae"
    """The logged value that selects the best checkpoint and drives ``plateau``."""

    def __init__(self, settings: dict) -> None:
        super().__init__()
        self.settings = settings

    def _step_scheduler(self, monitored: Tensor) -> None:
        # Stepped here, before the checkpoint of this epoch is written (Lightning would step it
        # after), so a run resumed from that checkpoint continues the schedule exactly.
        scheduler = self.lr_schedulers()
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
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": self.monitor},
        }


class PropertyTask(EpochTask):
    """L1 regression of one per-molecule property.

    Args:
        model: ``model(z [N], pos [N, 3] Å, batch [N]) -> [B]``.
        scaler: target normalisation fitted on the train split.
        target: the labels column (recorded in the checkpoint's hyperparameters).
        unit: the target's unit (recorded too).
        settings: the ``train`` config section (lr, weight_decay, scheduler, lr_factor,
            lr_patience, lr_min, max_epochs are used here).
    """

    def __init__(
        self, model: nn.Module, scaler: TargetScaler, target: str, unit: str, settings: dict
    ) -> None:
        super().__init__(settings)
        self.save_hyperparameters({"target": target, "unit": unit, "settings": settings})
        self.model, self.scaler = model, scaler
        self.train_loss = MeanMetric()
        self.val_mae = MeanAbsoluteError().set_dtype(torch.float64)
        self.test_mae = MeanAbsoluteError().set_dtype(torch.float64)
        self.test_outputs: list[tuple[Tensor, Tensor, Tensor]] = []
        self.test_predictions: dict[str, np.ndarray] | None = None

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        """Predictions [B] in the label's unit (float64)."""
        return self.scaler.denormalize(self.model(z, pos, batch), z, batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out = self.model(batch["z"], batch["pos"], batch["batch"]).float()  # out: [B]
        target = self.scaler.normalize(batch["y"], batch["z"], batch["batch"]).float()
        loss = torch.nn.functional.l1_loss(out, target)
        self.train_loss.update(loss.detach(), weight=len(target))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.val_mae.update(self(batch["z"], batch["pos"], batch["batch"]), batch["y"])

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.val_mae.reset()
            return
        val_mae = self.val_mae.compute()
        self.log("val_mae", self.val_mae)
        self.log("train_loss", self.train_loss)
        self.log("lr", self.optimizers().param_groups[0]["lr"], sync_dist=True)
        self._step_scheduler(val_mae)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        prediction = self(batch["z"], batch["pos"], batch["batch"])
        self.test_mae.update(prediction, batch["y"])
        self.test_outputs.append((batch["index"], batch["y"], prediction))
        self.log("test_mae", self.test_mae, batch_size=len(prediction))

    def on_test_epoch_start(self) -> None:
        self.test_outputs, self.test_predictions = [], None

    def on_test_epoch_end(self) -> None:
        index, truth, prediction = (torch.cat(t) for t in zip(*self.test_outputs, strict=True))
        if self.trainer.world_size > 1:  # every rank sees a padded share: gather, drop repeats
            index, truth, prediction = (
                self.all_gather(t).flatten() for t in (index, truth, prediction)
            )
        index, first = np.unique(index.cpu().numpy(), return_index=True)
        self.test_predictions = {
            "index": index,
            "truth": truth.cpu().numpy()[first],
            "prediction": prediction.cpu().numpy()[first],
        }
        self.test_outputs = []
