"""3DGrid-VQGAN networks (issue 18, first part): shapes, the straight-through gradient, EMA
codebook updates that move only used codes, and dead-code restarts."""

from __future__ import annotations

import pytest
import torch

from rhoflow.models.vqgan3d import VQGAN3D, SliceDiscriminator, VectorQuantizerEMA


def tiny(**kwargs) -> VQGAN3D:
    torch.manual_seed(0)
    return VQGAN3D(**{"channels": 4, "embed_dim": 8, "n_codes": 32, "downsample": 4, **kwargs})


def test_shapes_and_downsampling():
    model = tiny()
    x = torch.rand(2, 1, 16, 16, 16)
    assert model.encode(x).shape == (2, 8, 4, 4, 4)
    reconstruction, loss, stats = model(x)
    assert reconstruction.shape == x.shape and loss.dim() == 0
    assert stats["indices"].shape == (2, 4, 4, 4) and 0 < stats["usage"] <= 1
    assert 1 <= stats["perplexity"] <= 32
    logits, features = SliceDiscriminator(channels=4)(torch.rand(3, 1, 16, 16))
    assert logits.shape[:2] == (3, 1) and len(features) == 3
    with pytest.raises(ValueError, match="power of 2"):
        VQGAN3D(channels=4, embed_dim=8, n_codes=8, downsample=3)


def test_the_straight_through_gradient_reaches_the_encoder():
    model = tiny()
    reconstruction, loss, _ = model(torch.rand(2, 1, 16, 16, 16))
    (reconstruction.abs().mean() + loss).backward()
    first = model.encoder.net[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    assert not any(p.requires_grad for p in model.quantizer.buffers())


def test_ema_moves_only_the_codes_the_batch_uses():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(16, 4, decay=0.9, restart_after=0).train()
    before = vq.codebook.clone()
    z = before[[2, 5]].repeat(8, 1) + 0.01 * torch.randn(16, 4)  # near codes 2 and 5 only
    _, _, stats = vq(z.t().reshape(1, 4, 16))  # z: [B=1, dim, 16 positions]
    used = torch.zeros(16, dtype=torch.bool)
    used[stats["indices"].unique()] = True
    assert set(stats["indices"].unique().tolist()) == {2, 5}
    assert torch.equal(vq.codebook[~used], before[~used])
    assert not torch.equal(vq.codebook[used], before[used])
    vq.eval()
    frozen = vq.codebook.clone()
    vq(z.t().reshape(1, 4, 16))
    assert torch.equal(vq.codebook, frozen)  # evaluation never moves the codebook


def test_dead_code_restart_spreads_usage_over_varied_inputs():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(32, 4, restart_after=2).train()
    vq.codebook[:] = 100.0  # every code far away but code 0: it takes every vector
    vq.codebook[0] = 0.0
    vq.ema_sum.copy_(vq.codebook)

    def usage():
        return len(vq(torch.randn(4, 4, 8))[2]["indices"].unique())

    assert usage() == 1
    for _ in range(3):
        usage()
    assert usage() > 8  # the dead codes restarted at encoder vectors and are used


def test_ssim_of_identical_volumes_is_one_and_falls_with_noise():
    from rhoflow.vqgan import ssim3d

    torch.manual_seed(0)
    x = torch.log1p(torch.rand(2, 1, 16, 16, 16) * 5)
    assert torch.allclose(ssim3d(x, x, data_range=2.0), torch.ones(2, dtype=torch.float64))
    scores = [ssim3d(x + s * torch.randn_like(x), x, data_range=2.0) for s in (0.01, 0.05, 0.2)]
    assert all((a > b).all() for a, b in zip(scores, scores[1:], strict=False))
    assert (scores[-1] < scores[0] - 0.05).all()


def test_psnr_of_a_known_error_matches_its_formula_and_slices_differ():
    from rhoflow.vqgan import electron_count, psnr, slicewise

    torch.manual_seed(0)
    x = torch.rand(3, 1, 8, 8, 8)
    c = 0.02  # MSE = c² exactly for a constant offset
    assert torch.allclose(
        psnr(x + c, x, 2.0),
        torch.full((3,), 20 * torch.log10(torch.tensor(2.0 / c)).item(), dtype=torch.float64),
    )
    noisy = x + 0.05 * torch.randn_like(x)
    assert not torch.allclose(slicewise(noisy, x)["psnr"], psnr(noisy, x, 2.0))
    rho = torch.zeros(1, 1, 4, 4, 4)
    rho[0, 0, 1, 2, 3] = 10.0  # 10 e/bohr³ in one voxel of 0.5 bohr³
    assert torch.isclose(
        electron_count(torch.log1p(rho), 0.5), torch.tensor(5.0, dtype=torch.float64)
    )
