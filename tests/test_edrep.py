"""edrep: models over density representations. Each voxel mode feeds only its channels, PointNet
ignores point order, learning-curve subsets are nested and deterministic, augmentation keeps
each channel's sum, loaders return the stored values, and every representation's model trains
through the shared trainer.

Real molecules (RDKit + MMFF94, as tests/test_train.py) with real GFN2-xTB densities, voxelised,
sampled into point clouds and rendered by PyMOL at a small size.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from test_train import SMILES, mmff_molecule

from rhoflow.config import section_settings
from rhoflow.edrep.augment import cube_symmetries, random_rotations
from rhoflow.edrep.data import MODES, RepresentationDataModule, mode_channels
from rhoflow.edrep.drivers import train_representation
from rhoflow.labels import build_labels
from rhoflow.models.pointnet import PointNet
from rhoflow.models.voxel_cnn import VoxelResNet3D
from rhoflow.molecule import write_molecules
from rhoflow.pointclouds import open_pointclouds
from rhoflow.splits import build_splits, nested_subset
from rhoflow.voxels import CHANNELS, open_voxels
from rhoflow.zarrgroup import MoleculeGroupWriter

N = 15
TARGETS = ["total_energy_hartree", "gap_hartree"]
TRAINER = {"max_epochs": 2, "batch_size": 4, "lr": 1e-3, "seed": 0, "progress_bar": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """15 molecules: conformer table, xtb density store, voxels (1 Å, 16³), point clouds
    (64 points), density images (PyMOL, 32 px), xtb labels and a 9/3/3 split."""
    from rhoflow import pointclouds, voxels
    from rhoflow.density import iter_shard
    from rhoflow.render.store import build_shard as render_shard
    from rhoflow.store import write_store

    root = tmp_path_factory.mktemp("edrep")
    molecules = [mmff_molecule(i, s) for i, s in enumerate(SMILES[:N])]
    table = root / "t-00000.parquet"
    write_molecules(table, molecules)
    settings = section_settings("density.xtb", {})
    results = list(iter_shard("xtb", molecules, settings, workers=1, threads=1))
    assert all(hasattr(r, "density") for r in results), results
    store = root / "t-00000.zarr"
    write_store(store, results)
    build_labels(root / "labels.parquet", [store], [table])
    split_settings = section_settings("splits", {"fractions": [0.6, 0.2, 0.2]})
    build_splits([table], root / "split.parquet", "t", "smiles", split_settings)
    groups = {
        "voxels": root / "voxels.zarr",
        "pointclouds": root / "points.zarr",
        "images": root / "images.zarr",
    }
    given = {"edge_angstrom": 16.0, "resolution_angstrom": 1.0}
    assert not voxels.build_shard(store, groups["voxels"], section_settings("voxels", given))
    given = {"n_points": 64, "threshold": 0.01}
    assert not pointclouds.build_shard(
        store, groups["pointclouds"], section_settings("pointclouds", given)
    )
    assert not render_shard(store, groups["images"], section_settings("render", {"size": 32}))
    return {
        "root": root,
        "labels": root / "labels.parquet",
        "split": root / "split.parquet",
        "groups": groups,
        "ids": [m.id for m in molecules],
    }


def module(data, representation, targets=TARGETS, **kwargs) -> RepresentationDataModule:
    dm = RepresentationDataModule(
        representation, [data["groups"][representation]], data["labels"], data["split"],
        targets, batch_size=4, **kwargs,
    )  # fmt: skip
    dm.setup("fit")
    return dm


def test_loaders_return_exactly_the_stored_values(data):
    stored = open_voxels(data["groups"]["voxels"])
    for mode in MODES:
        dm = module(data, "voxels", mode=mode)
        channels = mode_channels(CHANNELS, mode)
        for name, ds in dm.datasets.items():
            item = ds[len(ds) - 1]
            want = stored.read(item["id"], "voxels")[channels].astype(np.float32)
            assert item["x"].dtype == np.float32 and np.array_equal(item["x"], want), (mode, name)
    from rhoflow.render import open_images

    images = open_images(data["groups"]["images"])
    dm = module(data, "images")
    item = dm.datasets["test"][0]
    assert item["x"].dtype == np.uint8 and item["x"].shape == (6, 4, 32, 32)
    assert np.array_equal(item["x"], images.read(item["id"], "density_images"))
    points = open_pointclouds(data["groups"]["pointclouds"])
    item = module(data, "pointclouds").datasets["val"][1]
    assert np.array_equal(item["x"], points.read(item["id"], "points"))
    labels = pd.read_parquet(data["labels"]).set_index("id")
    assert np.array_equal(item["y"], labels.loc[item["id"], TARGETS].to_numpy(np.float64))
    batch = next(iter(module(data, "voxels", mode="atoms").train_dataloader()))
    assert batch["x"].shape == (4, 8, 16, 16, 16) and batch["y"].shape == (4, 2)


def test_each_mode_feeds_only_its_channels(data, tmp_path):
    """Changing every channel outside a mode changes no output of its model; changing one
    of its own does."""
    stored = open_voxels(data["groups"]["voxels"])
    rng = np.random.default_rng(0)

    def write(path, change):
        with MoleculeGroupWriter(path, "rhoflow-voxels", dict(stored.attrs)) as out:
            out.array("voxels", (len(CHANNELS), 16, 16, 16), "float16",
                      ("molecule", "channel", "x", "y", "z"), "mixed")  # fmt: skip
            for mol_id in stored.ids:
                cube = stored.read(mol_id, "voxels").copy()
                cube[change] = rng.uniform(0, 2, cube[change].shape).astype(np.float16)
                out.add(mol_id, voxels=cube)

    for mode in MODES:
        own = mode_channels(CHANNELS, mode)
        others = np.setdiff1d(np.arange(len(CHANNELS)), own)
        write(tmp_path / f"{mode}-others.zarr", others)
        write(tmp_path / f"{mode}-own.zarr", own[:1])
        torch.manual_seed(0)
        model = VoxelResNet3D(len(own), depth=10, width=4).eval()

        def outputs(group, mode=mode, model=model):
            dm = RepresentationDataModule("voxels", [group], data["labels"], data["split"],
                                          TARGETS, batch_size=16, mode=mode)  # fmt: skip
            dm.setup("fit")
            with torch.no_grad():
                return model(next(iter(dm.test_dataloader()))["x"])

        base = outputs(data["groups"]["voxels"])
        assert torch.equal(outputs(tmp_path / f"{mode}-others.zarr"), base), mode
        assert not torch.allclose(outputs(tmp_path / f"{mode}-own.zarr"), base), mode


def test_pointnet_ignores_point_order_and_translation(data):
    clouds = open_pointclouds(data["groups"]["pointclouds"])
    x = torch.from_numpy(np.stack([clouds.read(i, "points") for i in clouds.ids[:5]]))
    torch.manual_seed(0)
    model = PointNet(mlp1=(16, 16), mlp2=(16, 32, 64), head=(32, 16), n_outputs=2).eval()
    with torch.no_grad():
        out = model(x)
        shuffled = model(x[:, torch.randperm(x.shape[1])])
        moved = x.clone()
        moved[..., :3] += torch.tensor([3.0, -2.0, 7.5])
        translated = model(moved)
    assert torch.allclose(out, shuffled, atol=1e-5)
    assert torch.allclose(out, translated, atol=1e-4)


def test_learning_curve_subsets_are_nested_and_deterministic(data):
    ids = [f"m{i}" for i in range(200)]
    fractions = [0.01, 0.05, 0.1, 0.5, 1.0]
    for seed in (0, 1):
        subsets = [nested_subset(ids, f, seed) for f in fractions]
        assert [len(s) for s in subsets] == [2, 10, 20, 100, 200]
        for small, large in zip(subsets, subsets[1:], strict=False):
            assert set(small) < set(large)
        assert subsets == [nested_subset(list(ids), f, seed) for f in fractions]
    assert nested_subset(ids, 0.1, 0) != nested_subset(ids, 0.1, 1)
    with pytest.raises(ValueError, match="fraction"):
        nested_subset(ids, 0.0, 0)
    train = {f: module(data, "voxels", mode="density", train_fraction=f).datasets["train"].ids
             for f in (0.3, 0.6, 1.0)}  # fmt: skip
    assert [len(train[f]) for f in (0.3, 0.6, 1.0)] == [3, 5, 9]
    assert set(train[0.3]) < set(train[0.6]) < set(train[1.0])
    again = module(data, "voxels", mode="density", train_fraction=0.6).datasets["train"].ids
    assert list(again) == list(train[0.6])
    assert len(module(data, "voxels", train_fraction=0.3).datasets["test"]) == 3  # test whole


def test_augmentation_keeps_each_channels_values_and_sum(data):
    stored = open_voxels(data["groups"]["voxels"])
    # float16 values summed in float64 are exact, whatever the order of the terms
    x = torch.from_numpy(np.stack([stored.read(i, "voxels") for i in stored.ids[:6]])).double()
    seen = set()
    for step in range(8):
        y = cube_symmetries(x, torch.Generator().manual_seed(step))
        assert torch.equal(y.sum(dim=(2, 3, 4)), x.sum(dim=(2, 3, 4)))  # exactly: moved only
        assert torch.equal(y.flatten(2).sort(dim=2).values, x.flatten(2).sort(dim=2).values)
        seen |= {y[b, 8].numpy().tobytes() for b in range(len(y))}
    assert len(seen) > 6  # the symmetries differ between molecules and draws
    clouds = open_pointclouds(data["groups"]["pointclouds"])
    p = torch.from_numpy(np.stack([clouds.read(i, "points") for i in clouds.ids[:4]]))
    r = random_rotations(p, torch.Generator().manual_seed(0))
    assert torch.equal(r[..., 3:], p[..., 3:]) and not torch.allclose(r, p)

    def distances(q):
        return torch.cdist(q[..., :3], q[..., :3], compute_mode="donot_use_mm_for_euclid_dist")

    assert torch.allclose(distances(r), distances(p), atol=1e-4)


@pytest.mark.parametrize(
    ("representation", "kwargs", "mode", "loss"),
    [
        ("voxels", {"depth": 10, "width": 4}, "density+gradient", "l1"),
        ("pointclouds", {"mlp1": [16, 16], "mlp2": [16, 32, 64], "head": [32, 16]}, None, "mse"),
        ("images", {"width": 4}, None, "mse"),
    ],
)
def test_each_representation_trains_on_the_shared_trainer(data, tmp_path, representation,
                                                           kwargs, mode, loss):  # fmt: skip
    settings = section_settings("train.trainer", TRAINER)
    run = tmp_path / representation
    summary = train_representation(run, representation, [data["groups"][representation]],
                                   data["labels"], data["split"], TARGETS, kwargs, settings,
                                   loss, mode=mode, train_fraction=1.0)  # fmt: skip
    assert set(summary["test_mae"]) == set(TARGETS) == set(summary["test_rmse"])
    assert summary["params"] > 0 and summary["epoch_time_s"] > 0
    assert summary["peak_memory_mb"] > 0 and summary["memory"] == "cpu_rss"
    table = pq.read_table(run / "test_predictions.parquet")
    meta = json.loads(table.schema.metadata[b"rhoflow.predictions"])
    assert meta["test_mae"] == summary["test_mae"] and meta["train_molecules"] == 9
    frame = table.to_pandas()
    assert len(frame) == 3 * len(TARGETS) and set(frame["target"]) == set(TARGETS)
    for t in TARGETS:
        rows = frame[frame["target"] == t]
        assert np.isclose(np.abs(rows["prediction"] - rows["truth"]).mean(), summary["test_mae"][t])
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics.dropna(subset=["val_nmae"])["epoch"].tolist() == [0, 1]
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["representation"] == representation and config["loss"] == loss


def test_tables_of_curves_and_representations(data, tmp_path):
    from rhoflow.evaluate import (
        representations_table,
        voxel_curves_table,
        write_representations_table,
        write_voxel_curves,
    )

    settings = section_settings("train.trainer", {**TRAINER, "max_epochs": 1})
    tiny = {"voxels": {"depth": 10, "width": 4}, "images": {"width": 4},
            "pointclouds": {"mlp1": [8], "mlp2": [8, 16], "head": [8]}}  # fmt: skip
    curves, reps = [], []
    for seed in (0, 1):
        s = {**settings, "seed": seed}
        for mode in ("atoms", "density"):
            for fraction in (0.5, 1.0):
                run = tmp_path / f"curves/{mode}/frac{fraction:g}/seed{seed}"
                train_representation(run, "voxels", [data["groups"]["voxels"]], data["labels"],
                                     data["split"], ["gap_hartree"], tiny["voxels"], s, "l1",
                                     mode=mode, train_fraction=fraction)  # fmt: skip
                curves.append(run)
        for rep in ("pointclouds", "voxels", "images"):
            run = tmp_path / f"representations/{rep}/seed{seed}"
            train_representation(run, rep, [data["groups"][rep]], data["labels"], data["split"],
                                 TARGETS, tiny[rep], s, "mse")  # fmt: skip
            reps.append(run)

    table = voxel_curves_table(curves)
    assert table.attrs["target"] == "gap_hartree" and table.attrs["n_test"] == 3
    assert list(table["mode"].unique()) == ["atoms", "density", "train mean"]
    assert table.groupby("fraction")["train_molecules"].unique().map(list).to_dict() == {
        0.5: [4], 1.0: [9]}  # fmt: skip
    assert (table["n_seeds"] == 2).all() and table["std"].notna().all()
    labels = pd.read_parquet(data["labels"]).set_index("id")
    split = pd.read_parquet(data["split"]).set_index("id")["split"]
    gap = labels["gap_hartree"]
    train, test = gap[split[split == "train"].index], gap[split[split == "test"].index]
    full = table[(table["mode"] == "train mean") & (table["fraction"] == 1.0)].iloc[0]
    assert np.isclose(full["mean"], np.abs(test - train.mean()).mean() * 27211.386, rtol=1e-4)
    write_voxel_curves(table, tmp_path / "c.csv", tmp_path / "c.md", tmp_path / "c.png")
    md = (tmp_path / "c.md").read_text()
    assert "| mode | 4 (0.5) | 9 (1) |" in md and "| train mean |" in md and " ± " in md
    assert (tmp_path / "c.png").stat().st_size > 10_000

    table = representations_table(reps)
    assert list(table.index) == ["total_energy_hartree", "gap_hartree"]
    assert [c for c in dict.fromkeys(c for c, _ in table.columns)] == [
        "pointclouds", "voxels", "images", "train mean"]  # fmt: skip
    assert set(table.attrs["cost"]) == {"pointclouds", "voxels", "images"}
    write_representations_table(table, tmp_path / "r.csv", tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    rmse = {r: table.loc["gap_hartree", (r, "mean")] for r in ("pointclouds", "voxels", "images")}
    delta = (1 - rmse["images"] / min(rmse["pointclouds"], rmse["voxels"])) * 100
    assert f"{delta:+.1f} %" in md.split("| gap (engine)")[1].split("\n")[0]
    assert "| E6 total (Hartree) |" in md and "| images |" in md.split("Cost")[1]


@pytest.mark.parametrize(
    ("edrep", "sections", "message"),
    [
        ({"source": "nope"}, {}, "'edrep.source': 'nope' is not a source name"),
        ({"source": "demo"}, {"pointclouds": {"engine": None}},
         "'edrep.representations': needs voxels.engine, pointclouds.engine, render.engine"),
        ({"source": "demo", "representations": {"targets": []}}, {"voxels": {"engine": None}},
         "'edrep.curves': needs voxels.engine"),
        ({"source": "demo", "curves": {"target": "source_gap_hartree"}}, {},
         "'edrep.curves.target': 'source_gap_hartree' is not a label of source 'demo'"),
        ({"source": "demo", "curves": {"target": None}, "representations": {"targets": ["u0"]}},
         {}, "'edrep.representations.targets': 'u0' is not a label"),
    ],
)  # fmt: skip
def test_a_bad_edrep_config_fails_naming_the_key(edrep, sections, message):
    import yaml
    from conftest import REPO

    from rhoflow.config import ConfigError, validate

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["edrep"] = edrep
    for section, values in sections.items():
        config[section].update(values)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(config, workdir=REPO)
