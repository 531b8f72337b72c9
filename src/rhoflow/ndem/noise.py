r"""Coordinate noise and the auxiliary losses built on it: NDeM, classical denoising, DeNS.

**Noise.** Per batch, each atom is masked with probability ``mask_ratio`` (at least one atom
per batch), σ is drawn uniformly from [σ_min, σ_max] (Å) and ε ~ N(0, σ²) is added to the
masked atoms only: X̃ = X + m ⊙ ε. The target is the noise in units of the noise scale,
ε* = ε / σ_max, O(1) like the normalised forces (:func:`perturb`).

**NDeM** ("Coordinate Denoising for Non-Equilibrium Molecular Representation Learning"). For a
clean structure X that need not be a minimum, expand the forces around X:
F(X̃) = F(X) − H ε + O(ε²) ≈ F(X) − c·ε, so F(X) − F(X̃) ≈ c·ε whatever F(X) is. A separate
equivariant noisy-force head f̂′ reads the shared backbone's features of X̃ and is trained so that

    L_NDeM = mean over noised atoms i of ‖(f̂(X)_i − f̂′(X̃)_i) − ε*_i‖²        (:func:`ndem_loss`)

with f̂(X) the clean forces −∂Ê/∂X (normalised units); the total loss is
L_orig + λ_NDeM · L_NDeM. On a harmonic potential with curvature 1 in these units and the true
forces as both heads, the loss is zero at every X.

**Classical denoising** (Zaidi et al. 2023, the paper's Eq. 12) assumes X is a minimum, where
F(X) = 0 and so F(X̃) ≈ −c·ε: a head ĝ reads X̃ and predicts ε*,

    L_denoise = mean over noised atoms i of ‖ĝ(X̃)_i − ε*_i‖²           (:func:`denoise_loss`)

— with ĝ = −f̂ (the force field itself as the denoiser) this is zero only when X is the minimum.

**DeNS-style** (Liao et al. 2024, "Generalizing Denoising to Non-Equilibrium Structures"): the
clean forces of the noised atoms are encoded into the node input so the denoising target is
well defined off equilibrium; a head predicts ε* from X̃ and those forces with
:func:`denoise_loss`. With probability ``p`` per batch (DeNS's MD17 setting: 25 % of atoms,
σ = 0.05 Å, p = 0.25).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Noise:
    """One batch's perturbation: noisy coordinates pos [N, 3] (Å), the mask [N] (bool), the
    noise eps [N, 3] (Å, zero off the mask), its σ (Å) and the target eps* [N, 3]."""

    pos: Tensor
    mask: Tensor
    eps: Tensor
    sigma: float
    target: Tensor


def perturb(
    pos: Tensor,
    mask_ratio: float,
    sigma_min: float,
    sigma_max: float,
    generator: torch.Generator | None = None,
) -> Noise:
    """Noise on a random subset of atoms (module docstring).

    Args:
        pos: [N, 3] clean coordinates (Å).
        mask_ratio: probability that an atom is noised.
        sigma_min, sigma_max: σ is uniform in [sigma_min, sigma_max] (Å); equal for a fixed σ.
        generator: random source (the task's, so a resumed run draws the same noise).
    """
    n = pos.shape[0]
    u = torch.rand(n, generator=generator, device="cpu")
    mask = u < mask_ratio
    if not bool(mask.any()):
        mask[int(torch.argmin(u))] = True
    span = torch.rand((), generator=generator, device="cpu").item()
    sigma = sigma_min + (sigma_max - sigma_min) * span
    eps = torch.randn(n, 3, generator=generator, device="cpu", dtype=pos.dtype) * sigma
    mask, eps = mask.to(pos.device), eps.to(pos.device)
    eps = eps * mask[:, None].to(pos.dtype)
    return Noise(pos + eps, mask, eps, sigma, eps / sigma_max)


def ndem_loss(clean_forces: Tensor, noisy_head: Tensor, noise: Noise) -> Tensor:
    """L_NDeM = mean_i∈mask ‖(f̂(X)_i − f̂′(X̃)_i) − ε*_i‖² (module docstring); inputs [N, 3]."""
    residual = clean_forces - noisy_head - noise.target  # [N, 3]
    return residual[noise.mask].pow(2).sum(-1).mean()


def denoise_loss(prediction: Tensor, noise: Noise) -> Tensor:
    """L_denoise = mean_i∈mask ‖ĝ(X̃)_i − ε*_i‖² (module docstring); prediction [N, 3]."""
    return (prediction - noise.target)[noise.mask].pow(2).sum(-1).mean()
