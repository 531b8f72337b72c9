"""EDG: ImageED and the teacher train and write their features (identical when recomputed),
the frozen EDPredictor is never changed by distillation, students train, resume-check and
predict like any run.

Library tests use real molecules (RDKit + MMFF94, as tests/test_train.py) with synthetic images
(smooth blobs). The whole chain through snakemake (real psi4 densities rendered by PyMOL, ±EDG
tables, what a λ or teacher change reruns) is tests/test_slurm.py's workflow.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import SMILES, TARGET, TinyModel, mmff_molecule

from rhoflow.config import section_settings
from rhoflow.edg import (
    DistillationTask,
    contact_sheet,
    load_model,
    train_imageed,
    train_student,
    train_teacher,
    write_model_features,
)
from rhoflow.features import features_by_id, read_features, write_features
from rhoflow.labels import build_labels
from rhoflow.models.ed_teacher import EDPredictor
from rhoflow.molecule import write_molecules
from rhoflow.splits import build_splits
from rhoflow.train import TargetScaler
from rhoflow.train.data import GeometryDataset, collate_geometry
from rhoflow.zarrgroup import MoleculeGroupWriter

SIZE = 32
TRAINER = {"max_epochs": 2, "batch_size": 8, "lr": 1e-3, "seed": 0, "progress_bar": False}


def blobs(rng: np.random.Generator, views: int, channels: int) -> np.ndarray:
    """uint8 [views, channels, SIZE, SIZE]: a Gaussian blob per view at a random place."""
    y, x = np.mgrid[:SIZE, :SIZE]
    out = np.empty((views, channels, SIZE, SIZE), np.uint8)
    for v in range(views):
        cy, cx, w = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(3, 8)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * w * w))
        for c in range(channels):
            out[v, c] = (255 * blob * rng.uniform(0.3, 1.0)).astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """20 real molecules (table, labels, 12/4/4 split) and one image group of their density
    and structure images, without the last molecule (it has no images)."""
    root = tmp_path_factory.mktemp("edg")
    molecules = [mmff_molecule(i, s) for i, s in enumerate(SMILES[:20])]
    table = root / "t-00000.parquet"
    write_molecules(table, molecules)
    build_labels(root / "labels.parquet", [], [table])
    build_splits(
        [table],
        root / "split.parquet",
        "t",
        "smiles",
        section_settings("splits", {"fractions": [0.6, 0.2, 0.2]}),
    )
    rng = np.random.default_rng(0)
    images = root / "images.zarr"
    dims = ("molecule", "view", "channel", "y", "x")
    with MoleculeGroupWriter(images, "rhoflow-images", {}) as out:
        out.array("density_images", (6, 4, SIZE, SIZE), "uint8", dims, "1")
        out.array("structure_images", (4, 3, SIZE, SIZE), "uint8", dims, "1")
        for m in molecules[:-1]:
            out.add(m.id, density_images=blobs(rng, 6, 4), structure_images=blobs(rng, 4, 3))
    return {
        "root": root,
        "tables": [table],
        "labels": root / "labels.parquet",
        "split": root / "split.parquet",
        "images": [images],
        "ids": [m.id for m in molecules],
    }


@pytest.fixture(scope="module")
def pretrained(data):
    """ImageED (tiny, 2 epochs), its features, the teacher (2 epochs) and its features."""
    root = data["root"]
    settings = section_settings("edg.imageed", {"size": "tiny", "trainer": TRAINER})
    imageed = train_imageed(root / "imageed", data["images"], data["split"], settings)
    write_model_features(root / "imageed/model.pt", data["images"], root / "imageed.zarr")
    teacher = train_teacher(root / "teacher", data["images"], data["split"], root / "imageed.zarr",
                            section_settings("edg.teacher", {"trainer": TRAINER}))  # fmt: skip
    write_model_features(root / "teacher/model.pt", data["images"], root / "teacher.zarr")
    return {"imageed": imageed, "teacher": teacher}


def test_imageed_and_teacher_runs_and_model_files(data, pretrained):
    root = data["root"]
    split = pd.read_parquet(data["split"]).set_index("id")["split"]
    sizes = split.drop(data["ids"][-1]).value_counts().to_dict()  # the last has no images
    for name in ("imageed", "teacher"):
        metrics = pd.read_csv(root / name / "metrics.csv")
        assert metrics["val_loss"].notna().sum() == 2  # one row per epoch, then the test row
        assert metrics["test_loss"].notna().sum() == 1
        config = json.loads((root / name / "config.json").read_text())
        assert config["data"]["sizes"] == sizes
    assert pretrained["imageed"]["test_loss"] == pytest.approx(
        pretrained["imageed"]["test_l_mp"] + pretrained["imageed"]["test_l_rp"], rel=1e-5
    )
    assert pretrained["teacher"]["test_mean_l1"] > 0
    network, meta = load_model(root / "imageed/model.pt")
    assert meta["model"] == "imageed" and meta["kwargs"]["embed_dim"] == 192
    assert meta["kwargs"]["img_size"] == SIZE and not network.training
    ids, features = read_features(root / "imageed.zarr")
    assert ids == data["ids"][:-1] and features.shape == (19, 192)
    ids, teacher = read_features(root / "teacher.zarr")
    assert ids == data["ids"][:-1] and teacher.shape == (19, 192)


def test_features_are_identical_when_recomputed(data, pretrained, tmp_path):
    root = data["root"]
    for name in ("imageed", "teacher"):
        first = read_features(root / f"{name}.zarr")[1]
        model = root / name / "model.pt"
        write_model_features(model, data["images"], tmp_path / f"{name}.zarr")
        assert np.array_equal(read_features(tmp_path / f"{name}.zarr")[1], first)  # bit for bit
        write_model_features(model, data["images"], tmp_path / f"{name}5.zarr", batch_size=5)
        other_batches = read_features(tmp_path / f"{name}5.zarr")[1]  # other float sums
        np.testing.assert_allclose(other_batches, first, rtol=1e-4, atol=1e-5)
    by_id = features_by_id(root / "teacher.zarr", [data["ids"][-1], data["ids"][0]])
    assert np.isnan(by_id[0]).all() and np.isfinite(by_id[1]).all()


def test_contact_sheet_shows_held_out_molecules(data, pretrained, tmp_path):
    from PIL import Image

    shown = contact_sheet(data["root"] / "imageed/model.pt", data["images"], data["split"],
                          tmp_path / "sheet.png", n_molecules=2)  # fmt: skip
    split = pd.read_parquet(data["split"]).set_index("id")["split"]
    assert len(shown) == 2 and set(split[shown]) == {"test"}
    assert Image.open(tmp_path / "sheet.png").size == (120 + 12 * 112, 6 * 112)


def batch_of(data, n: int = 6) -> dict:
    """A geometry batch of the first ``n`` molecules with random teacher features (the
    second without: NaN)."""
    from rhoflow.train.data import read_geometries

    geometries = read_geometries(data["tables"])
    features = np.random.default_rng(1).normal(size=(len(geometries), 8)).astype(np.float32)
    features[1] = np.nan
    dataset = GeometryDataset(geometries, np.arange(len(geometries), dtype=float), features)
    return collate_geometry([dataset[i] for i in range(n)])


def distillation_task(lam: float = 1.0) -> DistillationTask:
    torch.manual_seed(0)
    predictor = EDPredictor(512, 256, out_dim=8)
    scaler = TargetScaler.fit(np.arange(20, dtype=float))
    settings = {"lr": 1e-2, "weight_decay": 0.0, "scheduler": "none"}
    return DistillationTask(TinyModel(16), scaler, TARGET, "kcal/mol", settings, predictor, lam)


def test_frozen_edpredictor_gets_no_gradient_and_keeps_its_weights(data):
    task = distillation_task()
    task.train()
    assert not task.predictor.training and task.model.training
    before = {k: v.clone() for k, v in task.predictor.state_dict().items()}
    optimizer = task.configure_optimizers()["optimizer"]
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in task.predictor.parameters()}
    mapper = task.mapper.weight.detach().clone()
    loss = task.training_step(batch_of(data), 0)
    loss.backward()
    assert all(p.grad is None for p in task.predictor.parameters())
    assert task.mapper.weight.grad.abs().sum() > 0
    optimizer.step()
    after = task.predictor.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical
    assert not torch.equal(mapper, task.mapper.weight)


def test_distillation_term_reaches_the_student_and_steps_decrease_it(data):
    batch = batch_of(data)
    grads = []
    for lam in (0.0, 1.0):
        task = distillation_task(lam)
        task.training_step(batch, 0).backward()
        grads.append(task.model.embedding.weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])  # λ changes the student's gradient
    task = distillation_task(1.0)
    optimizer = task.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = task.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_student_runs_resume_checks_and_predicts_like_a_plain_run(
    data, pretrained, tmp_path, caplog
):
    from rhoflow.predict import TrainedModel

    root = data["root"]
    schnet = {"hidden_channels": 16, "num_filters": 16, "num_interactions": 1,
              "num_gaussians": 8}  # fmt: skip
    teacher, features = str(root / "teacher/model.pt"), str(root / "teacher.zarr")
    run = tmp_path / "lambda0.5/edg-schnet" / TARGET / "seed0"
    trainer = section_settings("train.trainer", TRAINER)
    args = (run, data["tables"], data["labels"], data["split"], TARGET, "schnet", schnet, trainer,
            teacher, features)  # fmt: skip
    summary = train_student(*args, 0.5)
    config = json.loads((run / "config.json").read_text())
    assert config["edg"] == {"teacher": teacher, "lambda": 0.5}
    assert config["data"]["teacher_features"] == features
    assert config["data"]["sizes"] == {"train": 12, "val": 4, "test": 4}  # all, images or not
    assert pd.read_csv(run / "metrics.csv")["train_distill"].notna().sum() == 2
    other = tmp_path / "lambda0.25/edg-schnet" / TARGET / "seed0"  # another λ: a new run
    shutil.copytree(run, other)
    train_student(other, *args[1:], 0.25)
    assert "held a run with other edg: starting a new run" in caplog.text
    assert json.loads((other / "config.json").read_text())["edg"]["lambda"] == 0.25
    model = TrainedModel.load(run)  # the student's inference path is the plain model's
    assert model.name == "edg-schnet"
    predictions = pd.read_parquet(run / "test_predictions.parquet")
    from rhoflow.train.data import read_geometries

    g = read_geometries(data["tables"], predictions["id"].tolist())
    order = {i: k for k, i in enumerate(g.ids)}
    batch = collate_geometry([GeometryDataset(g, np.zeros(len(g)))[order[i]]
                              for i in predictions["id"]])  # fmt: skip
    with torch.no_grad():
        direct = model.task(batch["z"], batch["pos"], batch["batch"]).numpy()
    np.testing.assert_allclose(direct, predictions["prediction"], rtol=1e-6)
    assert summary["test_mae"] > 0


def test_features_group_checks_its_shape(tmp_path):
    with pytest.raises(ValueError, match="do not match"):
        write_features(tmp_path / "f.zarr", ["a", "b"], np.zeros((3, 4)), {})
