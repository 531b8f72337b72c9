"""EDG's tasks (LightningModules on :class:`rhoflow.train.task.EpochTask`): ImageED's
pre-training, the ED-aware teacher and the distilled students.

Logged per epoch (by the base): ImageED ``train_loss``, ``train_l_mp``, ``train_l_rp``,
``val_loss``, ``val_l_mp``, ``val_l_rp`` (MSE of normalised pixels; validation masks are drawn
from a fixed seed per batch, so epochs compare); the teacher ``train_loss``, ``val_loss`` (L1
to the ImageED features) and ``*_mean_l1`` (L1 of predicting the train molecules' mean
feature: the baseline); a student what :class:`rhoflow.train.property.PropertyTask` logs and
``train_distill``.

Distillation (EDG §3.5, Eq. 8): the student is any model of :mod:`rhoflow.models`
(``forward_with_embedding -> ([B], [B, hidden])``). A mapper Linear(hidden → 512) sends its
molecule embedding h_G into the teacher's embedding space, the teacher's **frozen**
EDPredictor maps it to ImageED's feature space, and the loss is

    L = L_task + λ · SmoothL1(EDP(mapper(h_G)), EDP(teacher(S)))

where EDP(teacher(S)) are the teacher's features of the molecule's structure images, computed
once per dataset (``teacher_features``). The EDPredictor stays in eval mode and is never
optimised; the student's inference path (``model(z, pos, batch)``) is unchanged, so ``rhoflow
predict`` reads a student's checkpoint like any other (mapper and EDPredictor are ignored).
A train molecule without teacher features (its structure images failed) contributes L_task
only; val and test molecules are exactly those of the plain runs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from rhoflow.train.normalize import TargetScaler
from rhoflow.train.property import PropertyTask
from rhoflow.train.task import EpochTask

VAL_SEED = 1_000_003
"""Seed of the validation and test masks of batch k: ``VAL_SEED * (k + 1)``."""
STAGES = ("train", "val", "test")


class ImageEDTask(EpochTask):
    """ImageED's masked-autoencoder pre-training (EDG §3.3): loss λ_MP·L_MP + λ_RP·L_RP.

    Args:
        model: :class:`rhoflow.models.imageed.ImageED`.
        settings: the completed trainer settings (``edg.imageed.trainer``).
    """

    monitor = "val_loss"
    PARTS = ("loss", "l_mp", "l_rp")

    def __init__(self, model: nn.Module, settings: dict) -> None:
        super().__init__(settings)
        self.model = model
        for stage in STAGES:
            for part in self.PARTS:
                self.metrics[f"{stage}_{part}"] = MeanMetric()

    def _update(self, stage: str, out: dict[str, Tensor], n: int) -> None:
        for p in self.PARTS:
            self.metrics[f"{stage}_{p}"].update(out[p].detach(), weight=n)

    def _fixed_masks(self, images: Tensor, batch_idx: int) -> dict[str, Tensor]:
        generator = torch.Generator(device=images.device).manual_seed(VAL_SEED * (batch_idx + 1))
        return self.model(images, generator=generator)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out = self.model(batch["images"])  # images: [B, 6, 4, S, S] uint8
        self._update("train", out, len(batch["images"]))
        return out["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._update("val", self._fixed_masks(batch["images"], batch_idx), len(batch["images"]))

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._update("test", self._fixed_masks(batch["images"], batch_idx), len(batch["images"]))


class TeacherTask(EpochTask):
    """The ED-aware teacher (EDG §3.5): L1 between ``EDP(teacher(S))`` and the frozen ImageED
    features of the same molecules.

    Args:
        model: :class:`rhoflow.models.ed_teacher.EDTeacher`.
        settings: the completed trainer settings (``edg.teacher.trainer``).
        mean_feature: the train molecules' mean ImageED feature [F] (the baseline).
    """

    monitor = "val_loss"

    def __init__(self, model: nn.Module, settings: dict, mean_feature: Tensor) -> None:
        super().__init__(settings)
        self.model = model
        self.register_buffer("mean_feature", mean_feature.float())
        for stage in STAGES:
            for what in ("loss", "mean_l1"):
                self.metrics[f"{stage}_{what}"] = MeanMetric()

    def _step(self, stage: str, batch: dict[str, Any]) -> Tensor:
        target = batch["features"]  # target: [B, F]
        loss = nn.functional.l1_loss(self.model(batch["images"]), target)
        baseline = (target - self.mean_feature).abs().mean()
        self.metrics[f"{stage}_loss"].update(loss.detach(), weight=len(target))
        self.metrics[f"{stage}_mean_l1"].update(baseline, weight=len(target))
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step("train", batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step("val", batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step("test", batch)


class DistillationTask(PropertyTask):
    """:class:`rhoflow.train.property.PropertyTask` + λ · SmoothL1 to the teacher's features
    (module docstring).

    Args:
        model, scaler, target, unit, settings: as :class:`PropertyTask`.
        predictor: the teacher's EDPredictor (512 → F); frozen here.
        lam: λ, the weight of the distillation term.
    """

    def __init__(
        self,
        model: nn.Module,
        scaler: TargetScaler,
        target: str,
        unit: str,
        settings: dict,
        predictor: nn.Module,
        lam: float,
    ) -> None:
        super().__init__(model, scaler, target, unit, settings)
        in_dim = predictor.net[0].in_features
        self.mapper = nn.Linear(model.hidden_channels, in_dim)
        self.predictor = predictor.requires_grad_(False).eval()
        self.lam = float(lam)
        self.metrics["train_distill"] = MeanMetric()

    def train(self, mode: bool = True) -> DistillationTask:
        """Train mode for everything but the frozen EDPredictor (always eval)."""
        super().train(mode)
        self.predictor.eval()
        return self

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out, h = self.model.forward_with_embedding(batch["z"], batch["pos"], batch["batch"])
        # out: [B], h: [B, hidden]
        target = self.scaler.normalize(batch["y"], batch["z"], batch["batch"]).float()
        task_loss = nn.functional.l1_loss(out.float(), target)
        teacher = batch["features"]  # teacher: [B, F], NaN rows without images
        have = torch.isfinite(teacher).all(dim=1)
        self.metrics["train_loss"].update(task_loss.detach(), weight=len(target))
        if not have.any():
            return task_loss
        student = self.predictor(self.mapper(h[have]))  # student: [B', F]
        distill = nn.functional.smooth_l1_loss(student, teacher[have])
        self.metrics["train_distill"].update(distill.detach(), weight=int(have.sum()))
        return task_loss + self.lam * distill
