"""Energy + force training on non-equilibrium frames, with an optional auxiliary loss.

:class:`ForceTask` trains a :class:`~rhoflow.models.force_field.ForceField` on normalised
targets: E_n = (E − μ_E) / σ_E and F_n = F / σ_F (μ_E, σ_E: mean and std of the train energies,
kcal/mol; σ_F: RMS of the train force components, kcal/mol/Å). The model predicts Ê_n; its
forces are f̂_n = −(σ_E / σ_F) ∂Ê_n/∂X, the normalised forces of the energy μ_E + σ_E Ê_n, by
autograd (``create_graph`` while training, so the force loss trains the weights). The loss is

    L_orig = λ_E · mean_b |E_n* − Ê_n| + λ_F · mean_i ‖F_n*_i − f̂_n,i‖²     (λ_E : λ_F = 1 : 100)

plus, by ``variant`` (:mod:`rhoflow.ndem.noise`): ``ndem`` λ·L_NDeM, ``denoise`` λ·L_denoise
(the vector head on X̃), ``dens`` λ·L_denoise with the clean forces of the noised atoms
encoded into the input (with probability ``dens_probability`` per batch), ``edg`` EDG's
distillation (EDG §3.5, Eq. 8, on frames): λ·SmoothL1(EDP(mapper(h)), EDP(teacher(S))) with h
the mean of the backbone's scalar atom features of the clean frame, a trained
Linear(hidden → 512) mapper, the teacher's frozen EDPredictor and the teacher's features of the
frame's structure images (frames without them add nothing); ``baseline`` adds nothing.
Metrics in the papers' units: ``*_energy_mae`` (kcal/mol) and ``*_force_mae``
(kcal/mol/Å, over force components); ``val_loss`` (L_orig on val) selects the best checkpoint.
The test writes ``test_predictions.parquet`` (frame id, energy truth and prediction, kcal/mol,
and the force MAE of each frame).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter
from torchmetrics import MeanAbsoluteError, MeanMetric

from rhoflow.io import write_parquet
from rhoflow.models.force_field import ForceField
from rhoflow.ndem.noise import denoise_loss, ndem_loss, perturb
from rhoflow.train import EpochTask

VARIANTS = ("baseline", "ndem", "denoise", "dens", "edg")


class ForceTask(EpochTask):
    """Energy + force task (module docstring).

    Args:
        model: the force field (with ``vector_head`` for every variant but baseline and
            ``force_encoder`` for ``dens``).
        settings: the completed trainer settings.
        normalisation: ``energy_mean``, ``energy_std`` (kcal/mol), ``force_rms`` (kcal/mol/Å).
        loss: ``energy_weight``, ``force_weight``, ``variant``, ``weight`` (λ of the auxiliary
            loss), ``mask_ratio``, ``sigma_min``, ``sigma_max`` (Å), ``dens_probability``.
        predictor: the EDG teacher's EDPredictor (variant ``edg`` only); frozen here.
    """

    monitor = "val_loss"

    def __init__(self, model: ForceField, settings: dict, normalisation: dict[str, float],
                 loss: dict[str, Any], predictor: nn.Module | None = None) -> None:  # fmt: skip
        super().__init__(settings)
        if loss["variant"] not in VARIANTS:
            raise ValueError(f"variant {loss['variant']!r} is not one of {VARIANTS}")
        if (loss["variant"] == "edg") != (predictor is not None):
            raise ValueError("the edg variant, and only it, takes the teacher's EDPredictor")
        self.model = model
        self.predictor = predictor
        if predictor is not None:
            hidden = model.representation.hidden_channels
            self.mapper = nn.Linear(hidden, predictor.net[0].in_features)
            self.predictor = predictor.requires_grad_(False).eval()
        self.norm, self.loss = dict(normalisation), dict(loss)
        self.hparams.update(normalisation=self.norm, loss=self.loss)
        for stage in ("train", "val", "test"):
            self.metrics[f"{stage}_energy_mae"] = MeanAbsoluteError()
            self.metrics[f"{stage}_force_mae"] = MeanAbsoluteError()
        for name in ("train_loss", "train_aux", "val_loss", "test_loss"):
            self.metrics[name] = MeanMetric()
        self._test: list[tuple[Tensor, ...]] = []

    # --- prediction -----------------------------------------------------------------------

    def predict(self, batch: dict[str, Any], training: bool) -> tuple[Tensor, ...]:
        """Normalised energy Ê_n [B] and forces f̂_n [N, 3] at the batch's coordinates, and the
        backbone's features (x [N, H], vec [N, 3, H]) for the heads."""
        with torch.inference_mode(False), torch.enable_grad():  # forces also at val / test
            z, batch_index = batch["z"].clone(), batch["batch"].clone()
            pos = batch["pos"].clone().requires_grad_(True)
            x, vec = self.model.features(z, pos, batch_index)
            energy = self.model.energy(x, vec, z, pos, batch_index)  # [B]
            (gradient,) = torch.autograd.grad(energy.sum(), pos, create_graph=training)
        scale = self.norm["energy_std"] / self.norm["force_rms"]
        return energy, -scale * gradient, x, vec

    def targets(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Normalised energy [B] and forces [N, 3] of the batch."""
        n = self.norm
        energy = ((batch["energy"] - n["energy_mean"]) / n["energy_std"]).to(batch["pos"].dtype)
        return energy, batch["forces"] / n["force_rms"]

    def original_loss(self, energy: Tensor, forces: Tensor, batch: dict[str, Any]) -> Tensor:
        e_true, f_true = self.targets(batch)
        w = self.loss
        return (w["energy_weight"] * (energy - e_true).abs().mean()
                + w["force_weight"] * (forces - f_true).pow(2).sum(-1).mean())  # fmt: skip

    def _generator(self) -> torch.Generator:
        seed = int(self.settings["seed"]) * 1_000_003 + int(self.global_step) * 101
        return torch.Generator().manual_seed(seed + self.global_rank)

    def train(self, mode: bool = True) -> ForceTask:
        """Train mode for everything but a frozen EDPredictor (always eval)."""
        super().train(mode)
        if self.predictor is not None:
            self.predictor.eval()
        return self

    def auxiliary_loss(self, batch: dict[str, Any], clean_forces: Tensor, x: Tensor
                       ) -> Tensor | None:  # fmt: skip
        """The variant's auxiliary loss for this batch (None: none this batch); ``x`` [N, H]
        the backbone's scalar features of the clean frames."""
        w, variant = self.loss, self.loss["variant"]
        if variant == "baseline":
            return None
        if variant == "edg":
            teacher = batch["features"]  # teacher: [B, F], NaN rows without images
            have = torch.isfinite(teacher).all(dim=1)
            if not bool(have.any()):
                return None
            h = scatter(x, batch["batch"], dim=0, reduce="mean")  # h: [B, H]
            student = self.predictor(self.mapper(h[have]))  # student: [B', F]
            return nn.functional.smooth_l1_loss(student, teacher[have])
        g = self._generator()
        z, b = batch["z"], batch["batch"]
        if variant == "dens":
            if torch.rand((), generator=g).item() >= w["dens_probability"]:
                return None
            noise = perturb(batch["pos"], w["mask_ratio"], w["sigma_max"], w["sigma_max"], g)
            _, f_true = self.targets(batch)
            x, vec = self.model.features(z, noise.pos, b, f_true, noise.mask)
            return denoise_loss(self.model.vector(x, vec, z, noise.pos, b), noise)
        noise = perturb(batch["pos"], w["mask_ratio"], w["sigma_min"], w["sigma_max"], g)
        x, vec = self.model.features(z, noise.pos, b)
        head = self.model.vector(x, vec, z, noise.pos, b)  # [N, 3]
        if variant == "ndem":
            return ndem_loss(clean_forces, head, noise)
        return denoise_loss(head, noise)

    # --- steps ----------------------------------------------------------------------------

    def _update(self, stage: str, energy: Tensor, forces: Tensor, batch: dict[str, Any],
                loss: Tensor) -> None:  # fmt: skip
        n = self.norm
        e_kcal = energy.detach().double() * n["energy_std"] + n["energy_mean"]
        f_kcal = forces.detach() * n["force_rms"]
        self.metrics[f"{stage}_energy_mae"].update(e_kcal, batch["energy"])
        self.metrics[f"{stage}_force_mae"].update(f_kcal, batch["forces"])
        self.metrics[f"{stage}_loss"].update(loss.detach(), weight=len(batch["index"]))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        energy, forces, x, _ = self.predict(batch, training=True)
        loss = self.original_loss(energy, forces, batch)
        self._update("train", energy, forces, batch, loss)
        aux = self.auxiliary_loss(batch, forces, x)
        if aux is not None:
            self.metrics["train_aux"].update(aux.detach())
            return loss + self.loss["weight"] * aux
        # a batch without the auxiliary term (DeNS's coin, EDG frames without images) still
        # touches its parameters, so DDP finds a gradient for every parameter in every step
        heads = [m for m in (self.model.vector_head, self.model.force_encoder,
                             getattr(self, "mapper", None)) if m is not None]  # fmt: skip
        return loss + sum(p.sum() for m in heads for p in m.parameters()) * 0.0

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        energy, forces, _, _ = self.predict(batch, training=False)
        self._update("val", energy, forces, batch, self.original_loss(energy, forces, batch))

    def on_test_epoch_start(self) -> None:
        self._test = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        energy, forces, _, _ = self.predict(batch, training=False)
        self._update("test", energy, forces, batch, self.original_loss(energy, forces, batch))
        n = self.norm
        e_kcal = energy.detach().double() * n["energy_std"] + n["energy_mean"]
        error = (forces.detach() * n["force_rms"] - batch["forces"]).abs()  # [N, 3]
        per_frame = torch.zeros(len(batch["index"]), device=error.device, dtype=error.dtype)
        per_frame.index_add_(0, batch["batch"], error.mean(-1))
        per_frame = per_frame / torch.bincount(batch["batch"]).to(error.dtype)
        self._test.append((batch["index"], batch["energy"], e_kcal, per_frame.double()))

    def format_metric(self, name: str, value: float) -> str:
        unit = " kcal/mol" if name.endswith("energy_mae") else (
            " kcal/mol/Å" if name.endswith("force_mae") else "")  # fmt: skip
        return f"{name} {value:.4g}{unit}"

    def finish_test(self, run_dir: Path, data: Any, summary: dict[str, Any]) -> dict[str, Any]:
        index, truth, prediction, force_mae = self.gather_test_outputs(self._test)
        if self.trainer.is_global_zero:
            ids = np.asarray(data.datasets["test"].ids, dtype=object)[index]
            table = pa.table({
                "id": pa.array(ids.tolist(), pa.string()),
                "energy_truth_kcal_per_mol": truth,
                "energy_prediction_kcal_per_mol": prediction,
                "force_mae_kcal_per_mol_per_angstrom": force_mae,
            })  # fmt: skip
            write_parquet(Path(run_dir) / "test_predictions.parquet", table, [])
        return summary
