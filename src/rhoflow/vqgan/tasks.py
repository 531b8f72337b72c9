""":class:`VQGANTask`: the 3DGrid-VQGAN's training on the shared trainer, two optimisers in
Lightning's manual optimisation.

Each training step, on a batch ``x`` [B, 1, n, n, n] of log(1 + ρ) grids:

1. generator (encoder, quantiser, decoder): ``l1 · |x̂ − x|₁ + commitment`` and, from
   ``disc_start_step`` on, ``adversarial · (−D(x̂ slices))`` (hinge generator loss) and
   ``feature_matching · Σ_l |D_l(x̂ slices) − D_l(x slices)|₁`` (mean over the discriminator's
   layers): the perceptual-style term, on the discriminator's own features, because no
   pretrained network (LPIPS' VGG) can be downloaded here; it is not LPIPS;
2. discriminator, from ``disc_start_step`` on: hinge loss on ``slices`` random 2D slices per
   volume (random axis and position, the same for x and x̂).

Steps count in a buffer (``step``, saved in checkpoints), not in Lightning's ``global_step``,
which counts each optimiser's steps. Gradients are clipped by the trainer settings'
``gradient_clip_val`` here (Lightning clips only in automatic optimisation).

Logged per epoch: ``train_loss`` (generator), ``train_l1``, ``train_d_loss``; on the val
molecules ``val_l1`` (mean |x̂ − x| in log(1 + ρ): selects the checkpoint), ``val_psnr`` and
``val_ssim`` (3D, the data module's fixed range), ``val_electron_error`` (mean |∫ρ̂ − ∫ρ|,
electrons), ``val_usage`` (fraction of the codebook used over the epoch) and
``val_perplexity``; testing logs the same ``test_`` ones.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric

from rhoflow.models.vqgan3d import VQGAN3D, SliceDiscriminator
from rhoflow.train.task import EpochTask
from rhoflow.vqgan.metrics import electron_count, psnr, ssim3d


def random_slices(x: Tensor, y: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` random 2D slices per volume of x and y [B, 1, D, D, D], the same for both:
    [2, B·n, 1, D, D] (random axis and position per slice)."""
    out = []
    for b in range(len(x)):
        for _ in range(n):
            axis = int(torch.randint(3, (1,), generator=generator))
            k = int(torch.randint(x.shape[2 + axis], (1,), generator=generator))
            pair = torch.stack([x[b], y[b]])  # pair: [2, 1, D, D, D]
            out.append(pair.select(2 + axis, k))  # [2, 1, D, D]
    return torch.stack(out, dim=1)


class VQGANTask(EpochTask):
    """The VQ-GAN and its slice discriminator, trained as the module docstring says.

    Args:
        model: the :class:`~rhoflow.models.vqgan3d.VQGAN3D`.
        discriminator: the :class:`~rhoflow.models.vqgan3d.SliceDiscriminator`.
        settings: the completed trainer settings.
        losses: weights ``l1``, ``adversarial``, ``feature_matching``; ``disc_start_step``;
            ``slices`` per volume.
        data_range: the fixed range of log(1 + ρ) for PSNR and SSIM.
        voxel_volume_bohr3: a voxel's volume (bohr³), for electron counts.
    """

    monitor = "val_l1"

    def __init__(
        self,
        model: VQGAN3D,
        discriminator: SliceDiscriminator,
        settings: dict,
        losses: dict[str, Any],
        data_range: float,
        voxel_volume_bohr3: float,
    ) -> None:
        super().__init__(settings)
        self.automatic_optimization = False
        self.hparams.update(losses=dict(losses), data_range=data_range,
                            voxel_volume_bohr3=voxel_volume_bohr3)  # fmt: skip
        self.model, self.discriminator = model, discriminator
        self.losses, self.data_range = dict(losses), float(data_range)
        self.voxel_volume = float(voxel_volume_bohr3)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        n_codes = model.quantizer.n_codes
        self.register_buffer("code_counts", torch.zeros(n_codes), persistent=False)
        for name in ("train_loss", "train_l1", "train_d_loss"):
            self.metrics[name] = MeanMetric()
        for stage in ("val", "test"):
            for what in ("l1", "psnr", "ssim", "electron_error", "usage", "perplexity"):
                self.metrics[f"{stage}_{what}"] = MeanMetric()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """x [B, 1, n, n, n] -> (reconstruction, commitment loss, quantiser statistics)."""
        return self.model(x)

    def configure_optimizers(self) -> list[dict[str, Any]]:
        s = self.settings
        adam = {"lr": s["lr"], "weight_decay": s["weight_decay"], "betas": (0.5, 0.9)}
        return [
            self.scheduled(torch.optim.AdamW(self.model.parameters(), **adam)),
            self.scheduled(torch.optim.AdamW(self.discriminator.parameters(), **adam)),
        ]

    def _clip(self, optimizer: Any) -> None:
        if self.settings["gradient_clip_val"] is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.settings["gradient_clip_val"])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        w = self.losses
        x = batch["x"]  # x: [B, 1, n, n, n]
        reconstruction, commitment, _ = self.model(x)
        l1 = (reconstruction - x).abs().mean()
        loss = w["l1"] * l1 + commitment
        adversarial = int(self.step) >= w["disc_start_step"]
        if adversarial:
            g = torch.Generator().manual_seed(
                int(self.settings["seed"]) * 1_000_003 + int(self.step) * 101 + self.global_rank
            )
            real, fake = random_slices(x, reconstruction, w["slices"], g)  # [N, 1, n, n]
            real = real.detach()  # stacked beside the reconstruction: cut from its graph
            logits, fake_features = self.discriminator(fake)
            with torch.no_grad():
                _, real_features = self.discriminator(real)
            matching = torch.stack([
                (f - r).abs().mean() for f, r in zip(fake_features, real_features, strict=True)
            ]).mean()  # fmt: skip
            loss = loss - w["adversarial"] * logits.mean() + w["feature_matching"] * matching
        opt_g.zero_grad()
        self.manual_backward(loss)
        self._clip(opt_g)
        opt_g.step()
        if adversarial:
            real_logits, _ = self.discriminator(real)
            fake_logits, _ = self.discriminator(fake.detach())
            d_loss = 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            self._clip(opt_d)
            opt_d.step()
            self.metrics["train_d_loss"].update(d_loss.detach(), weight=len(x))
        self.step += 1
        self.metrics["train_loss"].update(loss.detach(), weight=len(x))
        self.metrics["train_l1"].update(l1.detach(), weight=len(x))

    def _evaluate(self, stage: str, batch: dict[str, Any]) -> None:
        x = batch["x"]
        reconstruction, _, stats = self.model(x)
        reconstruction = reconstruction.float()
        n = len(x)
        self.metrics[f"{stage}_l1"].update((reconstruction - x).abs().mean(), weight=n)
        self.metrics[f"{stage}_psnr"].update(psnr(reconstruction, x, self.data_range).mean(), n)
        self.metrics[f"{stage}_ssim"].update(ssim3d(reconstruction, x, self.data_range).mean(), n)
        error = electron_count(reconstruction, self.voxel_volume) - electron_count(
            x, self.voxel_volume
        )
        self.metrics[f"{stage}_electron_error"].update(error.abs().mean(), weight=n)
        self.code_counts += torch.bincount(
            stats["indices"].flatten(), minlength=len(self.code_counts)
        ).float()

    def _codebook(self, stage: str) -> None:
        """Usage and perplexity of the codes of every molecule of the epoch (all ranks)."""
        counts = self.code_counts
        if self.trainer.world_size > 1:
            counts = self.all_gather(counts).sum(dim=0)
        p = counts / counts.sum().clamp_min(1)
        self.metrics[f"{stage}_usage"].update((counts > 0).float().mean())
        self.metrics[f"{stage}_perplexity"].update(
            torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        )
        self.code_counts.zero_()

    def on_validation_epoch_start(self) -> None:
        self.code_counts.zero_()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._codebook("val")
        super().on_validation_epoch_end()

    def on_test_epoch_start(self) -> None:
        self.code_counts.zero_()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def on_test_epoch_end(self) -> None:
        self._codebook("test")
        super().on_test_epoch_end()

    def format_metric(self, name: str, value: float) -> str:
        units = {"psnr": " dB", "electron_error": " e"}
        unit = next((u for k, u in units.items() if name.endswith(k)), "")
        return f"{name} {value:.4g}{unit}"
