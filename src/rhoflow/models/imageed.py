"""ImageED of EDG (Xiang et al., "Electron Density-enhanced Molecular Geometry Learning"): a
masked autoencoder (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022)
over six RGB-D views of a molecule's electron density, written after MAE's ``models_mae.py``.

All six views are cut into patches by one view-agnostic patch embedding; the tokens of all views
form one sequence (view-major: all tokens of view 0, then view 1, ...), with the same fixed 2D
sin-cos position embedding repeated in every view. A random ``mask_ratio`` of the tokens of all
views together is hidden; the decoder reconstructs the masked patches (L_MP) and restores the
visible ones (L_RP). The ED feature of a molecule is the mean of its encoder tokens, unmasked.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Per-RGB-channel ImageNet statistics (torchvision's), for images scaled to [0, 1].
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Encoder / decoder sizes; "base" is ViT-B/16 with MAE's 512-d, 8-layer, 16-head decoder.
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(
        embed_dim=192, depth=4, num_heads=3, decoder_embed_dim=128, decoder_depth=2,
        decoder_num_heads=4,
    ),
    "base": dict(
        embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=512, decoder_depth=8,
        decoder_num_heads=16,
    ),
}  # fmt: skip


def rgb_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """ImageNet mean and std [3, 1, 1] as float32 on the device of x."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device)[:, None, None]
    return mean, std


def normalize(images: Tensor) -> Tensor:
    """uint8 RGB-D images [..., 4, H, W] -> float32: RGB (x / 255 - mean) / std, depth x / 255."""
    if images.dim() < 3 or images.size(-3) != 4:
        raise ValueError(f"expected images [..., 4, H, W], got {tuple(images.shape)}")
    mean, std = rgb_stats(images)
    x = images.to(torch.float32) / 255.0
    return torch.cat([(x[..., :3, :, :] - mean) / std, x[..., 3:, :, :]], dim=-3)


def denormalize(x: Tensor) -> Tensor:
    """Normalised images [..., 4, H, W] -> uint8, the inverse of :func:`normalize` (clipped)."""
    mean, std = rgb_stats(x)
    x = torch.cat([x[..., :3, :, :].float() * std + mean, x[..., 3:, :, :].float()], dim=-3)
    return (x * 255.0).round().clamp(0, 255).to(torch.uint8)


def sincos_pos_embed_2d(embed_dim: int, grid_size: int) -> Tensor:
    """MAE's ``get_2d_sincos_pos_embed`` (no cls token): [grid_size², embed_dim] float32.

    Patches in row-major order; the first half of the channels encodes the column, the second
    the row, each as [sin(pos · ω), cos(pos · ω)] with ω_d = 10000^(-d / (embed_dim / 4)).
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4 for 2D sin-cos, got {embed_dim}")
    coords = torch.arange(grid_size, dtype=torch.float64)
    cols, rows = torch.meshgrid(coords, coords, indexing="xy")  # each: [gs, gs]
    omega = torch.arange(embed_dim // 4, dtype=torch.float64) / (embed_dim / 4)
    omega = 1.0 / 10000**omega  # omega: [D/4]

    def embed_1d(pos: Tensor) -> Tensor:
        out = pos.reshape(-1, 1) * omega  # out: [L, D/4]
        return torch.cat([out.sin(), out.cos()], dim=1)  # [L, D/2]

    return torch.cat([embed_1d(cols), embed_1d(rows)], dim=1).float()  # [L, D]


class Attention(nn.Module):
    """Multi-head self-attention: one qkv Linear, scaled dot-product attention, output Linear."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, N, D] -> [B, N, D]."""
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, D // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each: [B, heads, N, D / heads]
        x = F.scaled_dot_product_attention(q, k, v)  # x: [B, heads, N, D / heads]
        return self.proj(x.transpose(1, 2).reshape(B, N, D))  # [B, N, D]


class Block(nn.Module):
    """Pre-norm transformer block (timm's ``Block`` as MAE uses it): x + MSA(LN(x)), then
    x + MLP(LN(x)) with a GELU MLP of hidden size mlp_ratio · dim."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        """x [B, N, D] -> [B, N, D]."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ImageED(nn.Module):
    """ImageED of EDG (Xiang et al., "Electron Density-enhanced Molecular Geometry Learning"):
    an MAE (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022) over
    six-view RGB-D electron-density images uint8 [B, V, 4, H, W], trained with
    loss = lambda_mp · L_MP (masked patches) + lambda_rp · L_RP (visible patches).

    Args:
        img_size (int): height and width H = W of every view; divisible by patch_size.
            Default 224.
        patch_size (int): side p of the square patches. Default 16.
        in_chans (int): channels per view (R, G, B, depth). Default 4.
        num_views (int): views V per molecule. Default 6.
        embed_dim (int): encoder width D (divisible by 4 and num_heads). Default 768.
        depth (int): encoder transformer blocks. Default 12.
        num_heads (int): encoder attention heads. Default 12.
        decoder_embed_dim (int): decoder width Dd (divisible by 4 and decoder_num_heads).
            Default 512.
        decoder_depth (int): decoder transformer blocks. Default 8.
        decoder_num_heads (int): decoder attention heads. Default 16.
        mlp_ratio (float): MLP hidden size over block width. Default 4.0.
        mask_ratio (float): fraction of the V · L tokens masked in :meth:`forward`, in [0, 1).
            Default 0.25.
        lambda_mp (float): weight of L_MP, the MSE over masked patches. Default 1.0.
        lambda_rp (float): weight of L_RP, the MSE over visible patches. Default 1.0.
    """

    def __init__(
        self,
        img_size: int = 224, patch_size: int = 16, in_chans: int = 4, num_views: int = 6,
        embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
        decoder_embed_dim: int = 512, decoder_depth: int = 8, decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0, mask_ratio: float = 0.25,
        lambda_mp: float = 1.0, lambda_rp: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not divisible by patch_size {patch_size}")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.num_views, self.embed_dim = num_views, embed_dim
        self.mask_ratio, self.lambda_mp, self.lambda_rp = mask_ratio, lambda_mp, lambda_rp
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2  # L per view
        # Encoder: one patch embedding shared by all views, fixed sin-cos positions per view.
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)
        pos = sincos_pos_embed_2d(embed_dim, self.grid_size).repeat(num_views, 1)  # [V*L, D]
        self.register_buffer("pos_embed", pos[None], persistent=False)  # [1, V*L, D]
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        # Decoder.
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        dec_pos = sincos_pos_embed_2d(decoder_embed_dim, self.grid_size).repeat(num_views, 1)
        self.register_buffer("decoder_pos_embed", dec_pos[None], persistent=False)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans)
        self.initialize_weights()

    @classmethod
    def from_size(cls, size: str, img_size: int = 224, **overrides: Any) -> ImageED:
        """The model of preset ``size`` (a key of :data:`SIZES`), with ``overrides`` applied."""
        if size not in SIZES:
            raise ValueError(f"unknown ImageED size {size!r}; known: {', '.join(SIZES)}")
        return cls(img_size=img_size, **{**SIZES[size], **overrides})

    @property
    def feature_dim(self) -> int:
        """Size D of the ED feature returned by :meth:`features`."""
        return self.embed_dim

    def initialize_weights(self) -> None:
        """MAE's initialisation: xavier-uniform Linear (bias 0) and patch embedding (as a Linear
        over the flattened patch), N(0, 0.02) mask token, LayerNorm weight 1 and bias 0."""
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _check(self, images: Tensor) -> None:
        expected = (self.num_views, self.in_chans, self.img_size, self.img_size)
        if images.dim() != 5 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"expected images [B, *{expected}], got {tuple(images.shape)}")

    def patchify(self, x: Tensor) -> Tensor:
        """x [B, V, C, H, W] -> patches [B, V*L, p*p*C], view-major, each patch (row, col, C)."""
        B, V, C, H, W = x.shape
        p, h, w = self.patch_size, H // self.patch_size, W // self.patch_size
        x = x.reshape(B, V, C, h, p, w, p)
        x = torch.einsum("bvchpwq->bvhwpqc", x)  # x: [B, V, h, w, p, p, C]
        return x.reshape(B, V * h * w, p * p * C)  # [B, V*L, p*p*C]

    def unpatchify(self, x: Tensor) -> Tensor:
        """patches [B, V*L, p*p*C] -> images [B, V, C, H, W], the inverse of :meth:`patchify`."""
        B, V, C = x.shape[0], self.num_views, self.in_chans
        p, h = self.patch_size, self.grid_size
        x = x.reshape(B, V, h, h, p, p, C)
        x = torch.einsum("bvhwpqc->bvchpwq", x)  # x: [B, V, C, h, p, w, p]
        return x.reshape(B, V, C, h * p, h * p)  # [B, V, C, H, W]

    def random_masking(
        self, x: Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Mask round(mask_ratio · N) random tokens per sample by argsort of uniform noise.

        x [B, N, D] -> visible tokens [B, N_keep, D], mask [B, N] (1 masked, 0 visible),
        ids_restore [B, N]. With no token masked, x is returned in its own order.
        """
        B, N, D = x.shape
        len_keep = N - int(round(mask_ratio * N))
        if not 0 < len_keep <= N:
            raise ValueError(f"mask_ratio {mask_ratio} leaves {len_keep} of {N} tokens visible")
        if len_keep == N:
            ids = torch.arange(N, device=x.device).expand(B, N)
            return x, x.new_zeros(B, N), ids
        noise = torch.rand(B, N, generator=generator, device=x.device)  # noise: [B, N]
        ids_shuffle = torch.argsort(noise, dim=1)  # ascend: the first len_keep are kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)  # ids_restore: [B, N]
        ids_keep = ids_shuffle[:, :len_keep]  # ids_keep: [B, N_keep]
        x_visible = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, D))  # [B, N_keep, D]
        mask = x.new_ones(B, N)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)  # mask: [B, N], in token order
        return x_visible, mask, ids_restore

    def forward_encoder(
        self, x: Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised images x [B, V, C, H, W] -> latent [B, N_keep, D], mask, ids_restore."""
        B, V = x.shape[:2]
        x = self.patch_embed(x.flatten(0, 1))  # x: [B*V, D, h, w]
        x = x.flatten(2).transpose(1, 2).reshape(B, V * self.num_patches, -1)  # x: [B, N, D]
        x = x + self.pos_embed
        x, mask, ids_restore = self.random_masking(x, mask_ratio, generator)  # [B, N_keep, D]
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore  # latent: [B, N_keep, D]

    def forward_decoder(self, x: Tensor, ids_restore: Tensor) -> Tensor:
        """latent [B, N_keep, D], ids_restore [B, N] -> pred [B, N, p*p*C]."""
        x = self.decoder_embed(x)  # x: [B, N_keep, Dd]
        B, N = ids_restore.shape
        mask_tokens = self.mask_token.expand(B, N - x.shape[1], -1)  # [B, N - N_keep, Dd]
        x = torch.cat([x, mask_tokens], dim=1)  # x: [B, N, Dd], shuffled order
        x = torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))  # unshuffle
        x = x + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))  # pred: [B, N, p*p*C]

    def forward_loss(
        self, target: Tensor, pred: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """target, pred [B, N, p*p*C], mask [B, N] -> (loss, L_MP, L_RP).

        Per-token MSE; L_MP is its mean over masked tokens, L_RP over visible ones (0 when
        there are none).
        """
        per_token = (pred - target).pow(2).mean(dim=-1)  # per_token: [B, N]
        visible = 1.0 - mask
        l_mp = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
        l_rp = (per_token * visible).sum() / visible.sum().clamp(min=1.0)
        return self.lambda_mp * l_mp + self.lambda_rp * l_rp, l_mp, l_rp

    def forward(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """uint8 images [B, V, C, H, W] -> {loss, l_mp, l_rp, pred [B, N, p*p*C], mask [B, N]}."""
        self._check(images)
        x = normalize(images)  # x: [B, V, C, H, W]
        latent, mask, ids_restore = self.forward_encoder(x, self.mask_ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)  # pred: [B, N, p*p*C]
        loss, l_mp, l_rp = self.forward_loss(self.patchify(x), pred, mask)
        return {"loss": loss, "l_mp": l_mp, "l_rp": l_rp, "pred": pred, "mask": mask}

    def features(self, images: Tensor) -> Tensor:
        """uint8 images [B, V, C, H, W] -> ED features [B, D]: the mean of the encoder's output
        tokens over all V · L patches, unmasked."""
        self._check(images)
        latent, _, _ = self.forward_encoder(normalize(images), 0.0)  # latent: [B, N, D]
        return latent.mean(dim=1)  # [B, D]

    @torch.no_grad()
    def reconstruct(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """uint8 images [B, V, C, H, W] -> (masked input, reconstruction), each normalised
        [B, V, C, H, W]: the input with masked patches zeroed, and the prediction at masked
        patches pasted into the visible input (MAE's visualisation). No gradients."""
        x = normalize(images)  # x: [B, V, C, H, W]
        out = self(images, generator)
        p2c = self.patch_size**2 * self.in_chans
        mask = self.unpatchify(out["mask"][..., None].expand(-1, -1, p2c))  # [B, V, C, H, W]
        masked_input = x * (1.0 - mask)
        return masked_input, masked_input + self.unpatchify(out["pred"]) * mask
