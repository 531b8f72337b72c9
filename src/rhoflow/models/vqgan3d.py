"""3DGrid-VQGAN's networks: a vector-quantised 3D convolutional autoencoder of density grids and
a patch discriminator on 2D slices ("A foundation model for simulation-grade molecular electron
densities"; VQGAN: Esser, Rombach, Ommer, CVPR 2021; EMA codebook: van den Oord et al.,
"Neural Discrete Representation Learning", 2017, appendix; Razavi et al., VQ-VAE-2, 2019).

A grid is [B, 1, D, D, D] (log(1 + ρ), ρ in e/bohr³, on a fixed box in bohr). The encoder
halves each axis ``log2(downsample)`` times (stride-2 convolutions between residual blocks with
GroupNorm and SiLU) to [B, embed_dim, D/f, D/f, D/f]; every latent vector is replaced by its
nearest codebook entry (:class:`VectorQuantizerEMA`); the decoder mirrors the encoder with
nearest-neighbour upsampling. The paper: codebook 16,384 × 256, f = 4, 128³ grids.

Training losses live in the method package; the networks here are plain modules.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups that divide ``channels``."""
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResBlock3D(nn.Module):
    """GroupNorm – SiLU – 3³ conv, twice, plus the input (1³ conv when channels change).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(in_channels), nn.SiLU(), nn.Conv3d(in_channels, out_channels, 3, 1, 1),
            _norm(out_channels), nn.SiLU(), nn.Conv3d(out_channels, out_channels, 3, 1, 1),
        )  # fmt: skip
        same = in_channels == out_channels
        self.skip = nn.Identity() if same else nn.Conv3d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C_in, D, D, D] -> [B, C_out, D, D, D]."""
        return self.skip(x) + self.body(x)


def _levels(downsample: int) -> int:
    levels = downsample.bit_length() - 1
    if downsample < 1 or 2**levels != downsample:
        raise ValueError(f"downsample must be a power of 2, got {downsample}")
    return levels


class Encoder3D(nn.Module):
    """[B, in_channels, D, D, D] -> [B, embed_dim, D/f, D/f, D/f], f = ``downsample``.

    Args:
        in_channels (int): grid channels (1: log(1 + ρ)). Default 1.
        channels (int): width of the first level; each downsampling doubles it. Default 64.
        embed_dim (int): latent (codebook vector) size. Default 256.
        downsample (int): f, a power of 2. Default 4.
    """

    def __init__(
        self, in_channels: int = 1, channels: int = 64, embed_dim: int = 256, downsample: int = 4
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(in_channels, channels, 3, 1, 1)]
        c = channels
        for _ in range(_levels(downsample)):
            layers += [ResBlock3D(c, c), nn.Conv3d(c, 2 * c, 3, 2, 1)]
            c *= 2
        layers += [ResBlock3D(c, c), _norm(c), nn.SiLU(), nn.Conv3d(c, embed_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, in_channels, D, D, D] -> z [B, embed_dim, D/f, D/f, D/f]."""
        return self.net(x)


class Decoder3D(nn.Module):
    """[B, embed_dim, D/f, D/f, D/f] -> [B, out_channels, D, D, D]; mirrors :class:`Encoder3D`.

    Args: as :class:`Encoder3D` (``out_channels`` for ``in_channels``).
    """

    def __init__(
        self, out_channels: int = 1, channels: int = 64, embed_dim: int = 256, downsample: int = 4
    ) -> None:
        super().__init__()
        levels = _levels(downsample)
        c = channels * 2**levels
        layers: list[nn.Module] = [nn.Conv3d(embed_dim, c, 3, 1, 1), ResBlock3D(c, c)]
        for _ in range(levels):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv3d(c, c // 2, 3, 1, 1),
                       ResBlock3D(c // 2, c // 2)]  # fmt: skip
            c //= 2
        layers += [_norm(c), nn.SiLU(), nn.Conv3d(c, out_channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """z [B, embed_dim, d, d, d] -> [B, out_channels, d·f, d·f, d·f]."""
        return self.net(z)


class VectorQuantizerEMA(nn.Module):
    """Nearest-codebook quantisation with EMA codebook updates and dead-code restarts.

    In training, each used code k moves to the EMA of the encoder vectors assigned to it:
    ``N_k ← γ N_k + (1 − γ) n_k``, ``m_k ← γ m_k + (1 − γ) Σ z``, ``e_k = m_k / N_k``; codes
    the batch does not use are left exactly as they are. A code unused for ``restart_after``
    training steps is restarted at a random encoder vector of the current batch. Under DDP the
    counts and sums are summed over the ranks and restarts come from rank 0's batch, so every
    rank keeps the same codebook. The encoder gets the decoder's gradient through the
    straight-through estimator (``z + (e − z).detach()``) and the commitment loss
    ``β ‖z − sg(e)‖²``; the codebook gets no gradient.

    Args:
        n_codes (int): codebook size K (paper 16,384).
        dim (int): code vector size (paper 256).
        decay (float): γ. Default 0.99.
        beta (float): commitment weight. Default 0.25.
        restart_after (int): training steps without use before a code restarts; 0: never.
            Default 100.
    """

    def __init__(
        self,
        n_codes: int,
        dim: int,
        decay: float = 0.99,
        beta: float = 0.25,
        restart_after: int = 100,
    ) -> None:
        super().__init__()
        self.n_codes, self.dim, self.decay, self.beta = n_codes, dim, decay, beta
        self.restart_after = restart_after
        codebook = torch.randn(n_codes, dim) / dim**0.5
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.ones(n_codes))
        self.register_buffer("ema_sum", codebook.clone())
        self.register_buffer("idle_steps", torch.zeros(n_codes, dtype=torch.long))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """z [B, dim, *S] -> (quantised z [B, dim, *S] with straight-through gradient, the
        commitment loss, {"indices": long [B, *S], "perplexity", "usage": codes used / K})."""
        moved = z.movedim(1, -1)  # moved: [B, *S, dim]
        flat = moved.reshape(-1, self.dim).float()  # flat: [N, dim]
        distances = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.codebook.t()
            + self.codebook.pow(2).sum(1)
        )  # distances: [N, K]
        indices = distances.argmin(dim=1)  # indices: [N]
        counts = torch.bincount(indices, minlength=self.n_codes).float()  # counts: [K]
        if self.training:
            self._update(flat.detach(), indices, counts)
        quantised = self.codebook[indices].view_as(moved).movedim(-1, 1).to(z.dtype)
        loss = self.beta * F.mse_loss(z, quantised.detach())
        p = counts / counts.sum()
        stats = {
            "indices": indices.view(moved.shape[:-1]),
            "perplexity": torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()),
            "usage": (counts > 0).float().mean(),
        }
        return z + (quantised - z).detach(), loss, stats

    @torch.no_grad()
    def _update(self, flat: Tensor, indices: Tensor, counts: Tensor) -> None:
        # flat: [N, dim]; only the codes this batch used move
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, flat)  # sums: [K, dim]
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if distributed:  # every rank's batch, so that the ranks' codebooks stay identical
            counts = counts.clone()
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        used = counts > 0
        g = self.decay
        self.ema_count[used] = g * self.ema_count[used] + (1 - g) * counts[used]
        self.ema_sum[used] = g * self.ema_sum[used] + (1 - g) * sums[used]
        self.codebook[used] = self.ema_sum[used] / self.ema_count[used].unsqueeze(1)
        self.idle_steps[used] = 0
        self.idle_steps[~used] += 1
        if self.restart_after > 0:
            dead = torch.nonzero(self.idle_steps >= self.restart_after).flatten()
            if len(dead):
                picks = flat[torch.randint(len(flat), (len(dead),), device=flat.device)]
                if distributed:
                    dist.broadcast(picks, src=0)
                self.codebook[dead] = picks
                self.ema_sum[dead] = picks
                self.ema_count[dead] = 1.0
                self.idle_steps[dead] = 0


class VQGAN3D(nn.Module):
    """Encoder – quantiser – decoder over density grids (module docstring).

    Args:
        channels (int): encoder width at full resolution. Default 64.
        embed_dim (int): code vector size (paper 256). Default 256.
        n_codes (int): codebook size (paper 16,384). Default 16,384.
        downsample (int): f per axis (paper 4). Default 4.
        decay, beta, restart_after: as :class:`VectorQuantizerEMA`.
    """

    def __init__(
        self,
        channels: int = 64,
        embed_dim: int = 256,
        n_codes: int = 16384,
        downsample: int = 4,
        decay: float = 0.99,
        beta: float = 0.25,
        restart_after: int = 100,
    ) -> None:
        super().__init__()
        self.encoder = Encoder3D(1, channels, embed_dim, downsample)
        self.quantizer = VectorQuantizerEMA(n_codes, embed_dim, decay, beta, restart_after)
        self.decoder = Decoder3D(1, channels, embed_dim, downsample)

    def encode(self, x: Tensor) -> Tensor:
        """x [B, 1, D, D, D] -> pre-quantisation latent [B, embed_dim, D/f, D/f, D/f]."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """x [B, 1, D, D, D] -> (reconstruction [B, 1, D, D, D], commitment loss, quantiser
        statistics)."""
        quantised, loss, stats = self.quantizer(self.encoder(x))
        return self.decoder(quantised), loss, stats


class SliceDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix, Isola et al. 2017) on 2D slices [N, 1, H, W]: 4×4
    stride-2 convolutions with GroupNorm and LeakyReLU(0.2), then a 1-channel 4×4 conv of
    patch logits. Returns the logits and every layer's features (for feature matching).

    Args:
        channels (int): first layer's width (doubles per layer). Default 64.
        layers (int): stride-2 layers. Default 3.
    """

    def __init__(self, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c_in, c = 1, channels
        for k in range(layers):
            norm = nn.Identity() if k == 0 else _norm(c)
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c, 4, 2, 1), norm, nn.LeakyReLU(0.2)))
            c_in, c = c, 2 * c
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c_in, 1, 4, 1, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """x [N, 1, H, W] -> (logits [N, 1, h, w], features of each block)."""
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return self.head(x), features
