"""Reconstruction metrics of density grids that compare across molecules (3DGrid-VQGAN,
issue 18).

Volumes are [B, 1, D, D, D] in the model's space, log(1 + ρ) with ρ in e/bohr³. The **3D**
metrics treat each molecule's grid as one volume with one **fixed** data range (the same for
every molecule, stated with the table), so a number means the same thing for every molecule:

- :func:`psnr`: 10 log10(R² / MSE) per volume (dB), R the fixed range.
- :func:`ssim3d`: SSIM over 3D Gaussian windows of 7³ points (torchmetrics, 5D input; its
  window follows σ, so σ is set to give 7 points), same fixed range.
- :func:`ms_ssim3d`: 3D MS-SSIM over the first three of Wang et al.'s five scales (their
  weights, renormalised): five scales need more than 16 (window − 1) points per axis, more than
  a 32³ or 48³ grid has.
- :func:`electron_count`: ∫ρ dV = Σ (exp(x) − 1) · ΔV (electrons), to compare a reconstruction's
  charge with its input's.

:func:`slicewise` is the paper's protocol, kept for parity only: 2D PSNR and SSIM of every
slice with that slice's own data range (max − min of the input slice), averaged over slices.
A slice's range shrinks to almost nothing far from the molecule, which inflates its scores:
these columns do not compare across molecules.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001)
"""Weights of the three finest MS-SSIM scales (Wang et al. 2003), renormalised in use."""


def psnr(prediction: Tensor, target: Tensor, data_range: float) -> Tensor:
    """PSNR (dB) per volume [B] of [B, C, D, H, W] volumes with the fixed ``data_range``."""
    mse = (prediction - target).double().pow(2).flatten(1).mean(dim=1)  # mse: [B]
    return 10.0 * torch.log10(data_range**2 / mse)


def _sigma(window: int) -> tuple[float, float, float]:
    """The Gaussian σ whose torchmetrics window (truncated at 3.5σ: 2·int(3.5σ + 0.5) + 1
    points, whatever ``kernel_size`` says) is ``window`` points wide: (window − 1) / 7."""
    return ((window - 1) / 7,) * 3


def ssim3d(prediction: Tensor, target: Tensor, data_range: float, kernel_size: int = 7) -> Tensor:
    """3D SSIM per volume [B] (Gaussian window ``kernel_size``³, σ = (kernel_size − 1) / 7,
    the fixed range)."""
    return structural_similarity_index_measure(
        prediction.double(), target.double(), data_range=data_range,
        kernel_size=(kernel_size,) * 3, sigma=_sigma(kernel_size), reduction="none",
    )  # fmt: skip


def ms_ssim3d(prediction: Tensor, target: Tensor, data_range: float) -> Tensor:
    """3D MS-SSIM per volume [B] over three scales (:data:`MS_SSIM_BETAS`), the fixed range,
    with a 5³ Gaussian window (3³ for grids under 20 points per axis, NaN under 12: the
    coarsest scale must hold the window)."""
    n = min(target.shape[2:])
    kernel_size = 5 if n // 4 > 4 else 3 if n // 4 > 2 else 0
    if kernel_size == 0:
        return torch.full((len(target),), float("nan"), dtype=torch.float64)
    betas = tuple(b / sum(MS_SSIM_BETAS) for b in MS_SSIM_BETAS)
    return multiscale_structural_similarity_index_measure(
        prediction.double(), target.double(), data_range=data_range,
        kernel_size=(kernel_size,) * 3, sigma=_sigma(kernel_size), betas=betas, reduction="none",
    )  # fmt: skip


def electron_count(log_grid: Tensor, voxel_volume_bohr3: float) -> Tensor:
    """∫ρ dV (electrons) per volume [B] of log(1 + ρ) grids [B, 1, D, D, D] (ρ in e/bohr³)."""
    return torch.expm1(log_grid.double()).flatten(1).sum(dim=1) * voxel_volume_bohr3


def slicewise(prediction: Tensor, target: Tensor, kernel_size: int = 7) -> dict[str, Tensor]:
    """The paper's slice protocol: mean over the slices along the first grid axis of 2D PSNR
    and SSIM (scikit-image's default: a uniform ``kernel_size``² window), each slice with its
    own data range (input slice max − min; slices with none are skipped). Returns ``psnr``
    and ``ssim`` per volume [B]. Each slice is scaled by its range first (SSIM's constants
    scale with the range squared, so this equals SSIM with that range), so a volume's slices
    go through torchmetrics as one batch."""
    out_psnr, out_ssim = [], []
    for p, t in zip(prediction.double(), target.double(), strict=True):  # [1, D, H, W]
        ts, ps = t[0].unsqueeze(1), p[0].unsqueeze(1)  # slices: [D, 1, H, W]
        low = ts.amin(dim=(1, 2, 3), keepdim=True)
        r = ts.amax(dim=(1, 2, 3), keepdim=True) - low
        keep = r.flatten() > 0
        ts, ps = (ts - low)[keep] / r[keep], (ps - low)[keep] / r[keep]
        out_psnr.append(psnr(ps, ts, 1.0).mean())
        out_ssim.append(structural_similarity_index_measure(
            ps, ts, data_range=1.0, gaussian_kernel=False, kernel_size=kernel_size,
            reduction="none").mean())  # fmt: skip
    return {"psnr": torch.stack(out_psnr), "ssim": torch.stack(out_ssim)}
