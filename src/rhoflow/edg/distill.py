"""Distillation of the ED-aware teacher into a geometric model (EDG §3.5, Eq. 8).

The student is any model of :mod:`rhoflow.models` (``forward_with_embedding -> ([B],
[B, hidden])``). A mapper Linear(hidden → 512) sends its molecule embedding h_G into the
teacher's embedding space, the teacher's **frozen** EDPredictor maps it to ImageED's feature
space, and the loss is

    L = L_task + λ · SmoothL1(EDP(mapper(h_G)), EDP(teacher(S)))

where EDP(teacher(S)) are the teacher's features of the molecule's structure images, computed
once per dataset (``teacher_features``). The EDPredictor stays in eval mode and is never
optimised; the student's inference path (``model(z, pos, batch)``) is unchanged, so ``rhoflow
predict`` reads a student's checkpoint like any other (mapper and EDPredictor are ignored).
A train molecule without teacher features (its structure images failed) contributes L_task
only; val and test molecules are exactly those of the plain runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from rhoflow.edg.features import features_by_id
from rhoflow.splits import SPLITS
from rhoflow.train.data import GeometryDataModule, GeometryDataset
from rhoflow.train.normalize import TargetScaler
from rhoflow.train.task import PropertyTask


class DistillationTask(PropertyTask):
    """:class:`rhoflow.train.task.PropertyTask` + λ · SmoothL1 to the teacher's features.

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
        self.train_distill = MeanMetric()

    @classmethod
    def from_teacher(
        cls,
        model: nn.Module,
        scaler: TargetScaler,
        target: str,
        unit: str,
        settings: dict,
        teacher: str | Path,
        **edg: Any,
    ) -> DistillationTask:
        """The task with the EDPredictor of a teacher model file; ``edg["lambda"]`` is λ."""
        from rhoflow.edg.pretrain import load_model

        network, meta = load_model(teacher)
        if meta["model"] != "ed_teacher":
            raise ValueError(f"{teacher}: not a teacher model file ({meta['model']})")
        return cls(model, scaler, target, unit, settings, network.predictor, edg["lambda"])

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
        self.train_loss.update(task_loss.detach(), weight=len(target))
        if not have.any():
            return task_loss
        student = self.predictor(self.mapper(h[have]))  # student: [B', F]
        distill = nn.functional.smooth_l1_loss(student, teacher[have])
        self.train_distill.update(distill.detach(), weight=int(have.sum()))
        return task_loss + self.lam * distill

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking and self.train_distill.update_count:
            self.log("train_distill", self.train_distill)
        super().on_validation_epoch_end()


class EDGDataModule(GeometryDataModule):
    """:class:`rhoflow.train.data.GeometryDataModule` whose train molecules carry the teacher's
    features (``features`` [F] per item; NaN for a molecule the group lacks).

    Args:
        features: the dataset's teacher features group (``teacher_features``).
        *args, **kwargs: as :class:`GeometryDataModule`.
    """

    def __init__(self, features: str | Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.features_path = Path(features)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "teacher_features": str(self.features_path)}

    def load_inputs(
        self, ids: dict[str, list[str]], y: dict[str, np.ndarray]
    ) -> dict[str, GeometryDataset]:
        out = super().load_inputs(ids, y)
        for name in SPLITS:
            d = out[name]
            out[name] = GeometryDataset(
                d.geometries, d.y, features_by_id(self.features_path, d.ids)
            )
        return out
