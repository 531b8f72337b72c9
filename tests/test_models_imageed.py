"""ImageED (EDG's six-view RGB-D masked autoencoder): masking counts, shapes, patch order, the
locality of L_MP / L_RP, normalisation, view-repeated fixed positions, a short fit, the
deterministic ED feature, and the size presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rhoflow.models.imageed import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SIZES,
    ImageED,
    denormalize,
    normalize,
    sincos_pos_embed_2d,
)

SMALL = dict(
    patch_size=8, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16, decoder_depth=1,
    decoder_num_heads=2,
)  # fmt: skip


def small_model(img_size: int = 32, **kwargs) -> ImageED:
    torch.manual_seed(0)
    return ImageED(img_size=img_size, **{**SMALL, **kwargs})


def blob_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 [n, 6, 4, size, size]: smooth Gaussian blobs, colour and depth varying by view."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = torch.zeros(n, 6, 4, size, size)
    for b in range(n):
        for v in range(6):
            for _ in range(2):
                cy, cx = (torch.rand(2, generator=g) * size * 0.6 + size * 0.2).tolist()
                blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 6) ** 2))
                colour = torch.rand(4, generator=g)
                images[b, v] += colour[:, None, None] * blob
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def random_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 6, 4, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("img_size, batch", [(32, 1), (32, 3), (24, 2), (24, 5)])
def test_masks_exact_count(img_size: int, batch: int) -> None:
    model = small_model(img_size)
    N = 6 * (img_size // 8) ** 2  # 96 or 54 (0.25 · 54 = 13.5 -> 14)
    n_masked = round(0.25 * N)
    with torch.no_grad():
        out = model(random_images(batch, img_size), torch.Generator().manual_seed(1))
    mask = out["mask"]
    assert mask.shape == (batch, N) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.sum(dim=1) == n_masked).all() and ((1 - mask).sum(dim=1) == N - n_masked).all()
    if batch > 1:
        assert not torch.equal(mask[0], mask[1])


@pytest.mark.parametrize("N, ratio", [(54, 0.25), (96, 0.25), (10, 0.75), (7, 0.5)])
def test_random_masking_gathers_visible_tokens(N: int, ratio: float) -> None:
    model = small_model()
    x = torch.randn(4, N, 5)
    x_vis, mask, ids_restore = model.random_masking(x, ratio, torch.Generator().manual_seed(2))
    n_keep = N - round(ratio * N)
    assert x_vis.shape == (4, n_keep, 5) and mask.shape == ids_restore.shape == (4, N)
    assert (mask.sum(dim=1) == N - n_keep).all()
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    for b in range(4):
        kept = ids_shuffle[b, :n_keep]
        torch.testing.assert_close(x_vis[b], x[b, kept], atol=0, rtol=0)
        assert (mask[b, kept] == 0).all()
    again = model.random_masking(x, ratio, torch.Generator().manual_seed(2))[1]
    assert torch.equal(again, mask)  # the generator makes masks reproducible


def test_shapes() -> None:
    model = small_model()
    images = random_images(2)
    N, D = 6 * 16, 32
    with torch.no_grad():
        out = model(images)
        assert out["pred"].shape == (2, N, 8 * 8 * 4) and out["mask"].shape == (2, N)
        assert out["loss"].shape == out["l_mp"].shape == out["l_rp"].shape == ()
        assert model.unpatchify(out["pred"]).shape == (2, 6, 4, 32, 32)
        assert model.features(images).shape == (2, D) and model.feature_dim == D
    masked_input, recon = model.reconstruct(images, torch.Generator().manual_seed(3))
    assert masked_input.shape == recon.shape == (2, 6, 4, 32, 32)
    with pytest.raises(ValueError):
        model(images[:, :3])
    with pytest.raises(ValueError):
        ImageED(img_size=30, **SMALL)


def test_patch_order_matches_embedding() -> None:
    model = small_model()
    x = normalize(random_images(2, seed=4))
    patches = model.patchify(x)  # [B, V*L, p*p*C]
    assert patches.shape == (2, 96, 256)
    torch.testing.assert_close(model.unpatchify(patches), x, atol=0, rtol=0)
    conv = model.patch_embed
    tokens = conv(x.flatten(0, 1)).flatten(2).transpose(1, 2).reshape(2, 96, -1)
    # The conv as a Linear over the (row, col, channel)-ordered patch.
    weight = conv.weight.permute(0, 2, 3, 1).reshape(32, -1)
    torch.testing.assert_close(patches @ weight.T + conv.bias, tokens, atol=1e-5, rtol=1e-5)
    # Token k of view v is the patch (k // 4, k % 4) of view v.
    v, k = 3, 6
    torch.testing.assert_close(
        patches[0, v * 16 + k], x[0, v, :, 8:16, 16:24].permute(1, 2, 0).reshape(-1)
    )


def test_reconstruct_pastes_visible_patches() -> None:
    model = small_model()
    images = random_images(2, seed=5)
    masked_input, recon = model.reconstruct(images, torch.Generator().manual_seed(6))
    x = model.patchify(normalize(images))
    with torch.no_grad():
        mask = model(images, torch.Generator().manual_seed(6))["mask"].bool()
    mi, rc = model.patchify(masked_input), model.patchify(recon)
    assert (mi[mask] == 0).all() and torch.equal(mi[~mask], x[~mask])
    assert torch.equal(rc[~mask], x[~mask]) and not torch.equal(rc[mask], x[mask])


def test_loss_locality() -> None:
    model = small_model()
    g = torch.Generator().manual_seed(7)
    target, pred = torch.randn(3, 54, 16, generator=g), torch.randn(3, 54, 16, generator=g)
    mask = model.random_masking(torch.zeros(3, 54, 1), 0.25, g)[1]
    masked = mask.bool()[..., None]
    loss, l_mp, l_rp = model.forward_loss(target, pred, mask)
    torch.testing.assert_close(loss, l_mp + l_rp)
    for where, same, changed in ((masked, 2, 1), (~masked, 1, 2)):
        out = model.forward_loss(target, pred + 3.0 * where, mask)
        assert out[same] == (l_mp, l_rp)[same - 1]
        assert out[changed] != (l_mp, l_rp)[changed - 1]
    pred.requires_grad_(True)
    _, l_mp, l_rp = model.forward_loss(target, pred, mask)
    (grad_mp,) = torch.autograd.grad(l_mp, pred, retain_graph=True)
    (grad_rp,) = torch.autograd.grad(l_rp, pred)
    assert (grad_mp[~masked.squeeze(-1)] == 0).all() and (grad_mp[masked.squeeze(-1)] != 0).any()
    assert (grad_rp[masked.squeeze(-1)] == 0).all() and (grad_rp[~masked.squeeze(-1)] != 0).any()
    weighted = small_model(lambda_mp=2.0, lambda_rp=0.5).forward_loss(target, pred, mask)[0]
    torch.testing.assert_close(weighted, 2.0 * l_mp + 0.5 * l_rp)


def test_normalize_round_trip() -> None:
    images = random_images(2, size=8, seed=8)
    x = normalize(images)
    assert x.dtype == torch.float32 and x.shape == images.shape
    assert 0.0 <= x[:, :, 3].min() and x[:, :, 3].max() <= 1.0
    torch.testing.assert_close(x[:, :, 3], images[:, :, 3].float() / 255)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    expected = (images[:, :, :3].float() / 255 - mean[:, None, None]) / std[:, None, None]
    torch.testing.assert_close(x[:, :, :3], expected)
    assert torch.equal(denormalize(x), images) and denormalize(x).dtype == torch.uint8
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


def mae_sincos_2d(embed_dim: int, grid_size: int) -> np.ndarray:
    """MAE's util/pos_embed.py get_2d_sincos_pos_embed (cls_token=False), for reference."""

    def embed_1d(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
        out = np.einsum("m,d->md", pos.reshape(-1), 1.0 / 10000**omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size))
    grid = np.stack(grid, axis=0).reshape(2, 1, grid_size, grid_size)
    return np.concatenate([embed_1d(embed_dim // 2, grid[0]), embed_1d(embed_dim // 2, grid[1])], 1)


def test_positions_fixed_and_repeated_across_views() -> None:
    model = small_model()
    parameters = dict(model.named_parameters())
    for name, dim in (("pos_embed", 32), ("decoder_pos_embed", 16)):
        pos = getattr(model, name)
        assert name in dict(model.named_buffers()) and name not in parameters
        assert not isinstance(pos, nn.Parameter) and pos.shape == (1, 96, dim)
        per_view = pos[0].reshape(6, 16, dim)
        for v in range(1, 6):
            assert torch.equal(per_view[v], per_view[0])
        reference = torch.from_numpy(mae_sincos_2d(dim, 4)).float()
        torch.testing.assert_close(per_view[0], reference, atol=1e-6, rtol=0)
    torch.testing.assert_close(sincos_pos_embed_2d(768, 14), torch.from_numpy(
        mae_sincos_2d(768, 14)).float(), atol=1e-6, rtol=0)  # fmt: skip


def test_training_decreases_loss() -> None:
    model = small_model().train()
    images = blob_images(2, seed=9)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(10)

    def eval_loss() -> float:
        with torch.no_grad():
            return model(images, torch.Generator().manual_seed(11))["loss"].item()

    before = eval_loss()
    for _ in range(25):
        loss = model(images, g)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_loss()
    assert after < 0.7 * before, (before, after)


def test_features_deterministic_and_unmasked() -> None:
    model = small_model().eval()
    images = random_images(3, seed=12)
    with torch.no_grad():
        feats = model.features(images)
        assert torch.equal(model.features(images), feats)
        model.mask_ratio = 0.75
        assert torch.equal(model.features(images), feats)
        latent, mask, _ = model.forward_encoder(normalize(images), 0.0)
    assert latent.shape == (3, 96, 32) and (mask == 0).all()
    torch.testing.assert_close(latent.mean(dim=1), feats, atol=0, rtol=0)


def test_from_size() -> None:
    model = ImageED.from_size("tiny", img_size=32)
    preset = SIZES["tiny"]
    assert preset == dict(
        embed_dim=192, depth=4, num_heads=3, decoder_embed_dim=128, decoder_depth=2,
        decoder_num_heads=4,
    )  # fmt: skip
    assert model.feature_dim == 192 and len(model.blocks) == 4
    assert model.blocks[0].attn.num_heads == 3 and len(model.decoder_blocks) == 2
    assert model.decoder_embed.out_features == 128
    assert model.decoder_blocks[0].attn.num_heads == 4 and model.img_size == 32
    assert model.patch_embed.kernel_size == (16, 16) and model.patch_embed.in_channels == 4
    assert ImageED.from_size("tiny", img_size=32, depth=2).feature_dim == 192
    assert SIZES["base"]["embed_dim"] == 768 and SIZES["base"]["decoder_depth"] == 8
    with pytest.raises(ValueError, match="tiny, base"):
        ImageED.from_size("huge")
