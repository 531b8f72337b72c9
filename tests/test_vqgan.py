"""3DGrid-VQGAN (issue 18): the networks' shapes, the straight-through gradient, EMA codebook
updates that move only used codes, dead-code restarts, the metrics, and the method on real
pyscf box grids from training to fine-tuning."""

from __future__ import annotations

import numpy as np
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


# --- the method on real densities: train, evaluate, embed, fine-tune ------------------------

TINY = {"channels": 4, "embed_dim": 8, "n_codes": 32, "downsample": 4, "restart_after": 4}
LOSSES = {"l1": 4.0, "adversarial": 1.0, "feature_matching": 4.0, "disc_start_step": 3,
          "slices": 2}  # fmt: skip


def trainer_settings(**overrides):
    from rhoflow.config import section_settings

    given = {"max_epochs": 3, "batch_size": 4, "lr": 1.0e-3, "scheduler": "none",
             "keep_every_n_epochs": 1, "progress_bar": False, **overrides}  # fmt: skip
    return section_settings("vqgan.trainer", given)


@pytest.fixture(scope="module")
def boxes(dataset, tmp_path_factory):
    """pyscf RHF/STO-3G densities of the 40 molecules of the ``dataset`` fixture on one fixed
    15-bohr box at 16³ (2-bohr margin), in one shard store; the few larger ones are
    ledger rows."""
    from rhoflow.config import section_settings
    from rhoflow.density import iter_shard
    from rhoflow.molecule import read_molecules
    from rhoflow.store import write_store

    molecules = [m for table in dataset["tables"] for m in read_molecules(table)]
    settings = section_settings("density.pyscf", {
        "grid": "box", "box_points": 16, "box_edge_bohr": 15.0, "box_margin_bohr": 2.0,
        "esp": "none", "conv_tol_hartree": 1e-7, "device": "cpu"})  # fmt: skip
    results = list(iter_shard("pyscf", molecules, settings, workers=1, threads=1))
    computed = [r for r in results if hasattr(r, "density")]
    assert len(computed) >= 30, [r for r in results if not hasattr(r, "density")]
    store = tmp_path_factory.mktemp("vqgan") / "t-00000.zarr"
    write_store(store, computed)
    return {**dataset, "store": store, "ids": [r.id for r in computed]}


def test_vqgan_trains_evaluates_embeds_and_finetunes(boxes, tmp_path):
    """The whole method on real box grids: the two-optimiser run on the shared trainer (kept
    epoch checkpoints, val metrics per epoch, the discriminator from step 3), the
    reconstruction table per kept epoch with the fixed range, slices, both embeddings and an
    MLP head on each with the train-mean baseline beside it."""
    import pandas as pd
    from test_train import TARGET

    from rhoflow.edrep import train_representation
    from rhoflow.evaluate import finetune_table, write_finetune_table
    from rhoflow.features import read_features
    from rhoflow.vqgan import (
        embed,
        evaluate_vqgan,
        slices_png,
        train_vqgan,
        write_reconstruction_table,
    )

    run = tmp_path / "run"
    summary = train_vqgan(run, [boxes["store"]], boxes["split"], TINY,
                          {"channels": 4, "layers": 2}, LOSSES, trainer_settings())  # fmt: skip
    assert summary["points"] == 16 and summary["spacing_bohr"] == pytest.approx(1.0)
    assert 0 <= summary["best_epoch"] < 3 and summary["test_psnr"] > 0
    metrics = pd.read_csv(run / "metrics.csv")
    epochs = metrics.dropna(subset=["val_l1"])
    assert list(epochs["epoch"]) == [0, 1, 2]
    assert epochs[["val_psnr", "val_ssim", "val_usage", "val_perplexity"]].notna().all().all()
    assert metrics["train_d_loss"].notna().any()  # 6 steps per epoch: the discriminator ran
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch*.ckpt")) == [
        "epoch000.ckpt", "epoch001.ckpt", "epoch002.ckpt"]  # fmt: skip

    table = evaluate_vqgan(run)
    assert list(table["epoch"]) == [0, 1, 2] and table["best"].sum() == 1
    assert 3 <= table.attrs["n_test"] <= 8 and table.attrs["data_range"] == summary["data_range"]
    assert ((table["ssim"] > 0) & (table["ssim"] <= 1)).all()
    assert (table["slice_psnr_db"] != table["psnr_db"]).all()
    assert (table["electrons_molecule"] >= 10).all()  # CH4 and larger
    assert (table["electrons_input"] > 5).all()  # the same order, on a coarse grid
    write_reconstruction_table(table, tmp_path / "r.csv", tmp_path / "r.md", tmp_path / "r.html")
    assert "FID, KID and LPIPS" in (tmp_path / "r.md").read_text()
    assert "<table>" in (tmp_path / "r.html").read_text()
    assert len(slices_png(run, tmp_path / "slices.png")) == 3
    assert (tmp_path / "slices.png").stat().st_size > 10_000

    latent, density = tmp_path / "latent.zarr", tmp_path / "density.zarr"
    n = len(boxes["ids"])
    assert embed(run, latent, density) == n
    ids, vectors = read_features(latent)
    assert sorted(ids) == sorted(boxes["ids"])
    assert vectors.shape == (n, 8) and np.isfinite(vectors).all()
    assert read_features(density)[1].shape == (n, 64)

    settings = trainer_settings(max_epochs=2, batch_size=8, keep_every_n_epochs=None)
    runs = []
    for name, group in (("latent", latent), ("density", density)):
        runs.append(tmp_path / name)
        head = {"hidden": [16, 16], "dropout": 0.1}
        train_representation(runs[-1], "features", [group], boxes["labels"], boxes["split"],
                             [TARGET], head, settings, "l1")  # fmt: skip
    df = finetune_table(runs)
    assert set(df["embedding"]) == {
        "VQ-GAN latent (frozen encoder, mean-pooled)", "pooled log(1 + ρ) (4³ cells, not learned)",
        "train mean"}  # fmt: skip
    write_finetune_table(df, tmp_path / "f.csv", tmp_path / "f.md")
    assert "train mean" in (tmp_path / "f.md").read_text()


@pytest.mark.parametrize(
    ("vqgan", "pyscf", "message"),
    [
        ({"source": "nope"}, {}, "'vqgan.source': 'nope' is not a source name"),
        ({"source": "demo"}, {"box_edge_bohr": None},
         "'density.pyscf.box_edge_bohr': the VQ-GAN needs one fixed box"),
        ({"source": "demo"}, {"grid": "cubeprop"},
         "'density.pyscf.box_edge_bohr': the VQ-GAN needs one fixed box"),
        ({"source": "demo", "finetune": {"targets": ["source_gap_hartree"]}}, {},
         "'vqgan.finetune.targets': 'source_gap_hartree' is not a label of source 'demo'"),
    ],
)  # fmt: skip
def test_a_bad_vqgan_config_fails_naming_the_key(vqgan, pyscf, message):
    import yaml
    from conftest import REPO

    from rhoflow.config import ConfigError, validate

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["vqgan"] = vqgan
    config["density"]["pyscf"].update(pyscf)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(config, workdir=REPO)


def _ddp_quantiser(rank: int, init: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(0)  # the same initial codebook on both ranks
    vq = VectorQuantizerEMA(16, 4, restart_after=1).train()
    torch.manual_seed(100 + rank)  # each rank its own batches
    for _ in range(3):
        vq(torch.randn(2, 4, 8) + rank)
    torch.save(vq.codebook, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_ranks_keep_one_codebook(tmp_path):
    """Under DDP each rank sees other molecules; the EMA sums and restarts are shared, so the
    codebooks stay identical (else the ranks would quantise with different codes)."""
    import torch.multiprocessing as mp

    init = f"file://{tmp_path}/rendezvous"
    mp.spawn(_ddp_quantiser, args=(init, str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(a, b)


def test_a_resumed_vqgan_run_ends_as_an_uninterrupted_one(boxes, tmp_path):
    """Two optimisers, the discriminator starting mid-run, dead-code restarts and random
    slices: a run stopped after 2 epochs and resumed to 3 ends with the very weights and
    codebook of a 3-epoch run (the step counter and RNG states are in the checkpoint)."""
    from rhoflow.vqgan import load_vqgan, train_vqgan

    args = ([boxes["store"]], boxes["split"], TINY, {"channels": 4, "layers": 2},
            {**LOSSES, "disc_start_step": 8})  # fmt: skip
    train_vqgan(tmp_path / "whole", *args, trainer_settings(keep_every_n_epochs=None))
    train_vqgan(tmp_path / "cut", *args, trainer_settings(max_epochs=2, keep_every_n_epochs=None))
    train_vqgan(tmp_path / "cut", *args, trainer_settings(keep_every_n_epochs=None))
    last = "checkpoints/last.ckpt"
    a, b = (load_vqgan(tmp_path / r, tmp_path / r / last).state_dict() for r in ("whole", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
