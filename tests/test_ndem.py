"""NDeM and its baselines on the Equivariant Transformer (rhoflow.ndem, models/force_field)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rhoflow.config import ConfigError, section_settings, validate
from rhoflow.conformers.xtb import XtbEngine
from rhoflow.evaluate import md_forces_table, ndem_ablation_table, write_md_forces_table
from rhoflow.md import read_extxyz, run_md, split_frames, write_store
from rhoflow.models.force_field import ForceField
from rhoflow.ndem import (
    ForceTask,
    denoise_loss,
    loss_settings,
    ndem_loss,
    perturb,
    train_forces,
)
from tests.conftest import REPO, SHARED_DATA

Z = torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 1])
POS = torch.tensor(
    [[-0.6, 0.0, 0.1], [0.8, 0.1, -0.1], [1.4, -1.1, 0.2], [-1.0, -0.9, 0.5], [-1.0, 0.2, -0.9],
     [-0.9, 0.8, 0.6], [1.1, 0.9, 0.5], [1.0, 0.4, -1.1], [2.3, -1.0, 0.1]], dtype=torch.float64
)  # fmt: skip
B = torch.zeros(9, dtype=torch.long)


def _rotation(seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))  # fmt: skip
    return q


@pytest.fixture(scope="module")
def model() -> ForceField:
    torch.manual_seed(0)
    return ForceField(16, 2, 8, 2, vector_head=True, force_encoder=True, dtype=torch.float64)


def _forces(model: ForceField, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = pos.clone().requires_grad_(True)
    energy = model(Z, p, B)
    return energy, -torch.autograd.grad(energy.sum(), p)[0]


def test_autograd_forces_equal_finite_differences(model):
    _, forces = _forces(model, POS)
    h, fd = 1e-5, torch.zeros_like(POS)
    for i in range(len(POS)):
        for k in range(3):
            step = torch.zeros_like(POS)
            step[i, k] = h
            fd[i, k] = -(model(Z, POS + step, B) - model(Z, POS - step, B)).item() / (2 * h)
    assert float((forces - fd).norm() / fd.norm()) <= 1e-4


def test_energy_invariant_forces_and_heads_equivariant(model):
    r = _rotation()
    energy, forces = _forces(model, POS)
    energy_r, forces_r = _forces(model, POS @ r.T + torch.tensor([1.0, -2.0, 0.5]))
    torch.testing.assert_close(energy_r, energy, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(forces_r, forces @ r.T, rtol=1e-8, atol=1e-10)
    given = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([True, False, True, False, False, True, False, False, True])
    x, vec = model.features(Z, POS, B, given, mask)
    x_r, vec_r = model.features(Z, POS @ r.T, B, given @ r.T, mask)
    head, head_r = model.vector(x, vec, Z, POS, B), model.vector(x_r, vec_r, Z, POS, B)
    torch.testing.assert_close(head_r, head @ r.T, rtol=1e-8, atol=1e-10)
    # the encoded forces reach the features (DeNS), the unmasked atoms' do not
    x2, _ = model.features(Z, POS, B, given * torch.tensor([2.0] * 9)[:, None], mask)
    assert not torch.allclose(x2, x)
    other = given.clone()
    other[~mask] = 0
    torch.testing.assert_close(model.features(Z, POS, B, other, mask)[0], x)


def test_noise_touches_only_masked_atoms():
    pos = torch.randn(200, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    noise = perturb(pos, 0.25, 0.01, 0.05, g)
    moved = (noise.pos != pos).any(-1)
    assert torch.equal(moved, noise.mask) and 20 < int(noise.mask.sum()) < 80
    assert 0.01 <= noise.sigma <= 0.05
    torch.testing.assert_close(noise.target, (noise.pos - pos) / 0.05)
    few = perturb(pos[:2], 1e-9, 0.05, 0.05, g)  # at least one atom is noised
    assert int(few.mask.sum()) == 1


def test_harmonic_toy_ndem_vs_classical_denoising():
    """E = ½|X − X₀|²/s² in normalised units (F(X) = −(X − X₀)/s, curvature 1 per noise
    scale s = σ_max): with the true forces as both heads the NDeM loss vanishes at any X; the
    classical denoising loss of the same force predictor (ĝ = −F) only at X = X₀."""
    s = 0.05
    x0 = torch.randn(12, 3, dtype=torch.float64)

    def force(x: torch.Tensor) -> torch.Tensor:
        return -(x - x0) / s

    for offset in (0.0, 0.3):
        x = x0 + offset * torch.randn(12, 3, dtype=torch.float64)
        noise = perturb(x, 0.5, 0.0, s, torch.Generator().manual_seed(2))
        assert float(ndem_loss(force(x), force(noise.pos), noise)) < 1e-20
        classical = float(denoise_loss(-force(noise.pos), noise))
        if offset == 0.0:
            assert classical < 1e-20
        else:
            assert classical > 1.0


def _settings(**kwargs):
    return section_settings("ndem.trainer", {"max_epochs": 2, "batch_size": 8, "lr": 1e-3,
                                             "progress_bar": False, "accelerator": "cpu",
                                             **kwargs})  # fmt: skip


@pytest.fixture(scope="module")
def ethanol(tmp_path_factory):
    """100 MD17 ethanol frames in a store and a 40 / 10 / 20 split; without ../shared/data,
    100 frames of GFN2-xTB MD of ethanol (500 K) under the same name."""
    root = tmp_path_factory.mktemp("ethanol")
    path = SHARED_DATA / "md17" / "ethanol_md17_2000frames.extxyz"
    if path.exists():
        t = read_extxyz(path, "md17_ethanol")
    else:
        settings = section_settings("md.xtb", {"frames": 100, "stride": 4,
                                               "equilibration_steps": 50})  # fmt: skip
        run = {k: v for k, v in settings.items() if k not in ("source", "ids")}
        t = run_md(XtbEngine(Z.numpy(), 0, 1), Z.numpy(), POS.numpy(), run, "md17_ethanol")
    t.positions, t.energy, t.forces = t.positions[:100], t.energy[:100], t.forces[:100]
    write_store(root / "s.zarr", [t])
    split_frames([root / "s.zarr"], "md17_ethanol", {"counts": [40, 10, 20], "seed": 0},
                 root / "split.parquet")  # fmt: skip
    return root


@pytest.mark.parametrize("variant", ["baseline", "ndem", "denoise", "dens"])
def test_train_variants_on_md17_frames(ethanol, variant, tmp_path):
    """Each variant trains on real frames, tests its best checkpoint and writes the summary;
    the auxiliary loss is logged for every variant but the baseline."""
    ndem = section_settings("ndem", {"dens": {"probability": 1.0}})
    loss = loss_settings(variant, ndem)
    model = {"hidden_channels": 16, "num_layers": 1, "num_rbf": 8, "num_heads": 2}
    out = train_forces(tmp_path / "run", ethanol / "s.zarr", "md17_ethanol",
                       ethanol / "split.parquet", model, loss, _settings())  # fmt: skip
    assert out["frames"] == {"train": 40, "val": 10, "test": 20}
    assert 0 < out["test_force_mae"] < 2 * out["baseline_force_mae"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["variant"] == variant and summary["epochs"] == 2
    logged = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert ("train_aux" in logged) == (variant != "baseline")


def test_edg_variant_distils_the_teacher_features_of_frames(ethanol, tmp_path):
    """EDG on frames: a frozen EDPredictor and per-frame teacher features (NaN for frames
    without images) give a logged distillation term; the predictor's weights do not move."""
    from rhoflow.features import write_features
    from rhoflow.md import frame_ids
    from rhoflow.models.ed_teacher import EDPredictor

    ids = frame_ids("md17_ethanol", 90)  # frames 90-99 have no images
    features = np.random.default_rng(0).normal(size=(len(ids), 6)).astype(np.float32)
    write_features(tmp_path / "teacher.zarr", ids, features, {"kind": "teacher"})
    torch.manual_seed(0)
    predictor = EDPredictor(512, 16, out_dim=6)
    before = {k: v.clone() for k, v in predictor.state_dict().items()}
    ndem = section_settings("ndem", {"edg": {"weight": 10.0}})
    model = {"hidden_channels": 16, "num_layers": 1, "num_rbf": 8, "num_heads": 2}
    teacher = {"predictor": predictor, "features": tmp_path / "teacher.zarr", "model": "t.pt"}
    out = train_forces(tmp_path / "run", ethanol / "s.zarr", "md17_ethanol",
                       ethanol / "split.parquet", model, loss_settings("edg", ndem),
                       _settings(), teacher)  # fmt: skip
    assert out["variant"] == "edg" and out["weight"] == 10.0
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    aux = float(metrics[1].split(",")[header.index("train_aux")])
    assert aux > 0.05  # SmoothL1 to unit-variance features
    assert all(torch.equal(before[k], predictor.state_dict()[k]) for k in before)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["edg"] == {"teacher": "t.pt"}
    with pytest.raises(ValueError, match="EDPredictor"):
        ForceTask(ForceField(8, 1, 4, 2), _settings(), {"energy_mean": 0.0, "energy_std": 1.0,
                  "force_rms": 1.0}, loss_settings("edg", ndem))  # fmt: skip


def test_tables_from_summaries(tmp_path):
    runs = []
    for variant, force in (("baseline", [1.0, 1.2]), ("ndem", [0.8, 0.9])):
        for seed, f in enumerate(force):
            run = tmp_path / variant / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "summary.json").write_text(json.dumps({
                "trajectory": "t", "variant": variant, "weight": 1.0, "sigma_max": 0.05,
                "seed": seed, "test_energy_mae": 0.5, "test_force_mae": f, "epochs": 10,
                "frames_per_s": 100.0, "wall_s": 60.0, "baseline_energy_mae": 3.0,
                "baseline_force_mae": 20.0, "frames": {"train": 950, "val": 50, "test": 1000},
            }))  # fmt: skip
            runs.append(run)
    df = md_forces_table(runs)
    assert list(df["model"]) == ["train mean", "ET", "ET + NDeM"]
    ndem = df.set_index("model").loc["ET + NDeM"]
    assert ndem["force_mae"] == pytest.approx(0.85)
    assert ndem["force_mae_delta_pct"] == pytest.approx((1 - 0.85 / 1.1) * 100)
    write_md_forces_table(df, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.html")
    assert "| t | ET + NDeM | 0.500 ± 0.000 | 0.850 ± 0.071 | +0.0 % | +22.7 % |" in (
        tmp_path / "t.md").read_text()  # fmt: skip
    ablation = ndem_ablation_table(runs[2:], [])
    assert list(ablation["sweep"]) == ["lambda"] and ablation["n_seeds"].iloc[0] == 2


def test_ndem_config_errors(tmp_path):
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["ndem"]["trajectories"] = ["demo:nothing"]
    with pytest.raises(ConfigError, match=r"'ndem.trajectories\[0\]'"):
        validate(config, workdir=REPO)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["ndem"]["model"]["num_heads"] = 3
    with pytest.raises(ConfigError, match="'ndem.model.num_heads'"):
        validate(config, workdir=REPO)
    with pytest.raises(ConfigError, match="variants"):
        section_settings("ndem", {"variants": ["ndem", "teleport"]})
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["edg"]["pretrain"] = None
    with pytest.raises(ConfigError, match="'ndem.variants'.*edg.pretrain"):
        validate(config, workdir=REPO)


def test_task_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        ForceTask(ForceField(8, 1, 4, 2), _settings(), {"energy_mean": 0.0, "energy_std": 1.0,
                  "force_rms": 1.0}, {"variant": "teleport"})  # fmt: skip


def test_perturb_is_reproducible():
    pos = torch.randn(30, 3)
    a = perturb(pos, 0.3, 0.0, 0.05, torch.Generator().manual_seed(5))
    b = perturb(pos, 0.3, 0.0, 0.05, torch.Generator().manual_seed(5))
    assert torch.equal(a.pos, b.pos) and np.isclose(a.sigma, b.sigma)


def test_a_resumed_ndem_run_ends_as_an_uninterrupted_one(ethanol, tmp_path):
    """Noise drawn from the step counter and the DeNS coin per batch: a DeNS-style run stopped
    after 1 epoch and resumed to 2 ends with the very weights of a 2-epoch run."""
    ndem = section_settings("ndem", {"dens": {"probability": 0.5}})
    loss = loss_settings("dens", ndem)
    model = {"hidden_channels": 8, "num_layers": 1, "num_rbf": 8, "num_heads": 2}
    args = (ethanol / "s.zarr", "md17_ethanol", ethanol / "split.parquet", model, loss)
    train_forces(tmp_path / "whole", *args, _settings())
    train_forces(tmp_path / "cut", *args, _settings(max_epochs=1))
    train_forces(tmp_path / "cut", *args, _settings())
    a, b = (torch.load(tmp_path / r / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
            for r in ("whole", "cut"))  # fmt: skip
    assert all(torch.equal(a[k], b[k]) for k in a)
