"""Reconstruction metrics of density grids that compare across molecules (3DGrid-VQGAN,
issue 18).

Volumes are [B, 1, D, D, D] in the model's space, log(1 + ρ) with ρ in e/bohr³. The **3D**
metrics treat each molecule's grid as one volume with one **fixed** data range (the same for
every molecule, stated with the table), so a number means the same thing for every molecule:

- :func:`psnr`: 10 log10(R² / MSE) per volume (dB), R the fixed range.
- :func:`ssim3d`: SSIM over 3D Gaussian windows (torchmetrics, 5D input), same fixed range.
- :func:`electron_count`: ∫ρ dV = Σ (exp(x) − 1) · ΔV (electrons), to compare a reconstruction's
  charge with its input's.

:func:`slicewise` is the paper's protocol, kept for parity only: 2D PSNR and SSIM of every
z-slice with that slice's own data range (max − min of the input slice), averaged over slices.
A slice's range shrinks to almost nothing far from the molecule, which inflates its scores:
these columns do not compare across molecules.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure


def psnr(prediction: Tensor, target: Tensor, data_range: float) -> Tensor:
    """PSNR (dB) per volume [B] of [B, C, D, H, W] volumes with the fixed ``data_range``."""
    mse = (prediction - target).double().pow(2).flatten(1).mean(dim=1)  # mse: [B]
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim3d(prediction: Tensor, target: Tensor, data_range: float, kernel_size: int = 7) -> Tensor:
    """3D SSIM per volume [B] (Gaussian window ``kernel_size``³, σ 1.5, the fixed range)."""
    return structural_similarity_index_measure(
        prediction.double(), target.double(), data_range=data_range,
        kernel_size=kernel_size, reduction="none",
    )  # fmt: skip


def electron_count(log_grid: Tensor, voxel_volume_bohr3: float) -> Tensor:
    """∫ρ dV (electrons) per volume [B] of log(1 + ρ) grids [B, 1, D, D, D] (ρ in e/bohr³)."""
    return torch.expm1(log_grid.double()).flatten(1).sum(dim=1) * voxel_volume_bohr3


def slicewise(prediction: Tensor, target: Tensor, kernel_size: int = 7) -> dict[str, Tensor]:
    """The paper's slice protocol: mean over z-slices of 2D PSNR and SSIM, each slice with its
    own data range (input slice max − min; slices with none are skipped). Returns ``psnr`` and
    ``ssim`` per volume [B]."""
    p, t = prediction.double(), target.double()  # [B, 1, D, H, W]
    out_psnr, out_ssim = [], []
    for b in range(len(t)):
        values_p, values_s = [], []
        for z in range(t.shape[2]):
            ts, ps = t[b : b + 1, :, z], p[b : b + 1, :, z]  # [1, 1, H, W]
            r = float(ts.max() - ts.min())
            if r <= 0:
                continue
            values_p.append(psnr(ps, ts, r)[0])
            values_s.append(
                structural_similarity_index_measure(ps, ts, data_range=r, kernel_size=kernel_size)
            )
        out_psnr.append(torch.stack(values_p).mean())
        out_ssim.append(torch.stack(values_s).mean())
    return {"psnr": torch.stack(out_psnr), "ssim": torch.stack(out_ssim)}
