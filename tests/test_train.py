"""Training: batches of real molecules, atomrefs recovered, a killed run resumed equals an
uninterrupted one, test predictions from the best checkpoint only, the CLI.

The molecules are 40 small organics with RDKit ETKDG geometries optimised with MMFF94. Targets
are real physical quantities computed in milliseconds: their MMFF94 energy (kcal/mol) at that
geometry (an energy, so it gets atomrefs by default) and the dipole of their Gasteiger charges
(D; intensive, no atomrefs).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from rhoflow.config import section_settings
from rhoflow.molecule import from_rdkit, write_molecules
from rhoflow.train import (
    GeometryDataModule,
    TargetScaler,
    fit_atomrefs,
    is_extensive,
    train_geometry,
)
from rhoflow.train.property import PREDICTIONS_KEY

SMILES = [
    "C", "CC", "CCC", "CCCC", "CC(C)C", "CCCCC", "C1CC1", "C1CCC1", "C1CCCC1", "C=C",
    "C=CC", "C#C", "CO", "CCO", "CCCO", "CC(C)O", "COC", "CCOC", "C=O", "CC=O",
    "CC(C)=O", "OC=O", "CC(=O)O", "COC=O", "N", "CN", "CCN", "CNC", "CN(C)C", "C#N",
    "CC#N", "NC=O", "CC(N)=O", "O", "OO", "NO", "C1CO1", "C1CCOC1", "C1CCNC1", "OCCO",
]  # fmt: skip
TARGET = "source_mmff94_energy_kcal_per_mol"
SETTINGS = {
    "max_epochs": 4,
    "batch_size": 8,
    "lr": 0.01,
    "lr_patience": 0,  # the plateau schedule moves within 4 epochs: its state must resume too
    "lr_factor": 0.5,
    "seed": 3,
    "progress_bar": False,
}
MODEL_KWARGS = {"hidden_channels": 16}
E_ANGSTROM_IN_DEBYE = 4.80320471


def mmff_molecule(index: int, smiles: str):
    """An ETKDG conformer optimised with MMFF94, labelled with its MMFF94 energy."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=index) == 0
    props = AllChem.MMFFGetMoleculeProperties(mol)
    field = AllChem.MMFFGetMoleculeForceField(mol, props)
    field.Minimize(maxIts=500)
    AllChem.ComputeGasteigerCharges(mol)
    charges = np.array([a.GetDoubleProp("_GasteigerCharge") for a in mol.GetAtoms()])
    dipole = charges @ mol.GetConformer().GetPositions()  # e Å (neutral: origin-free)
    labels = {
        "mmff94_energy_kcal_per_mol": field.CalcEnergy(),
        "gasteiger_dipole_debye": float(np.linalg.norm(dipole)) * E_ANGSTROM_IN_DEBYE,
    }
    return from_rdkit(f"t:m{index:02d}", mol, labels=labels)


class TinyModel(nn.Module):
    """Stand-in with the rhoflow.models interface: atom embeddings mixed by Gaussian distance
    features of all pairs in each molecule, dropout (so the RNG matters), summed per molecule.
    ``crash_at_step`` (class attribute) raises at that training forward call: a killed job."""

    crash_at_step: int | None = None

    def __init__(self, hidden_channels: int = 16, cutoff: float = 5.0) -> None:
        super().__init__()
        self.hidden_channels, self.cutoff = hidden_channels, cutoff
        self.embedding = nn.Embedding(100, hidden_channels)
        self.rbf = nn.Linear(8, hidden_channels)
        self.out = nn.Sequential(nn.Dropout(0.2), nn.Linear(hidden_channels, 1))
        self.register_buffer("centers", torch.linspace(0.5, cutoff, 8))
        self.steps = 0

    def forward_with_embedding(self, z, pos, batch):
        if self.training:
            self.steps += 1
            if self.steps == TinyModel.crash_at_step:
                raise RuntimeError("simulated kill")
        h = self.embedding(z)  # h: [N, H]
        d = torch.cdist(pos, pos)  # d: [N, N]
        same = (batch[:, None] == batch[None, :]) & (d > 0) & (d < self.cutoff)
        rbf = torch.exp(-((d[..., None] - self.centers) ** 2)) * same[..., None]  # [N, N, 8]
        h = h + torch.tanh(self.rbf(rbf.sum(1)))  # h: [N, H]
        n = int(batch.max()) + 1
        embedding = torch.zeros(n, h.shape[1]).index_add_(0, batch, h)  # [B, H]
        atoms = self.out(h).squeeze(-1)  # atoms: [N]
        return torch.zeros(n).index_add_(0, batch, atoms), embedding

    def forward(self, z, pos, batch):
        return self.forward_with_embedding(z, pos, batch)[0]


def train(run_dir, dataset, **settings):
    return train_geometry(
        run_dir, dataset["tables"], dataset["labels"], dataset["split"], TARGET, TinyModel,
        MODEL_KWARGS, section_settings("train.trainer", {**SETTINGS, **settings}),
    )  # fmt: skip


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def val_rows(run_dir):
    frame = pd.read_csv(run_dir / "metrics.csv")
    return frame[frame["val_mae"].notna()][["epoch", "step", "train_loss", "val_mae", "lr"]]


def test_geometry_batches_hold_the_tables_molecules(dataset):
    data = GeometryDataModule(dataset["tables"], dataset["labels"], dataset["split"], TARGET, 5)
    data.setup("fit")
    assert data.unit == "kcal/mol"
    assert {k: len(v) for k, v in data.datasets.items()} == {"train": 24, "val": 8, "test": 8}
    batch = next(iter(data.test_dataloader()))
    table = pd.concat(pq.read_table(t).to_pandas() for t in dataset["tables"]).set_index("id")
    labels = pd.read_parquet(dataset["labels"]).set_index("id")
    counts = torch.bincount(batch["batch"])
    assert len(batch["ids"]) == 5 and torch.equal(batch["batch"], batch["batch"].sort().values)
    assert batch["z"].dtype == torch.long and batch["pos"].shape == (len(batch["z"]), 3)
    first = batch["ids"][0]
    row = table.loc[first]
    n = int(counts[0])
    assert batch["z"][:n].tolist() == list(row["atomic_numbers"])
    assert np.allclose(batch["pos"][:n].numpy(), np.reshape(row["coords_angstrom"], (-1, 3)))
    assert batch["y"][0].item() == labels.loc[first, TARGET]
    assert batch["y"].dtype == torch.float64


def test_read_geometries_keeps_asked_molecules_with_coordinates(tmp_path):
    from rhoflow.molecule import Molecule
    from rhoflow.train.data import read_geometries

    def mol(mol_id, numbers, coords):
        return Molecule(mol_id, "", 0, 1, np.array(numbers), "", coords)

    water = [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]]
    write_molecules(tmp_path / "a.parquet", [mol("t:a", [8, 1, 1], np.array(water))])
    write_molecules(tmp_path / "b.parquet", [
        mol("t:b", [6, 1, 1, 1, 1], None),  # no coordinates yet: left out
        mol("t:c", [10], np.zeros((1, 3))),
        mol("t:d", [2], np.ones((1, 3))),  # not asked for
    ])  # fmt: skip
    g = read_geometries([tmp_path / "a.parquet", tmp_path / "b.parquet"], ["t:c", "t:a", "t:b"])
    assert list(g.ids) == ["t:a", "t:c"] and g.offsets.tolist() == [0, 3, 4]
    assert g.z.tolist() == [8, 1, 1, 10] and g.pos.dtype == np.float32
    assert np.allclose(g.pos[:3], water) and np.allclose(g.pos[3], 0)
    one = g.take(np.array([1]))
    assert list(one.ids) == ["t:c"] and one.z.tolist() == [10] and one.offsets.tolist() == [0, 1]
    counts, elements = g.element_counts()
    assert elements.tolist() == [1, 8, 10] and counts.tolist() == [[2, 1, 0], [0, 0, 1]]


def test_atomrefs_recover_known_element_references():
    rng = np.random.default_rng(0)
    refs = np.array([-0.5, -37.8, -54.6, -75.1])  # H, C, N, O (Hartree)
    counts = rng.integers(0, 8, size=(200, 4)).astype(float)
    y = counts @ refs + rng.normal(0, 1e-3, 200)
    assert np.allclose(fit_atomrefs(counts, y), refs, atol=1e-3)

    scaler = TargetScaler.fit(y, counts, np.array([1, 6, 7, 8]))
    assert np.allclose(scaler.atomref[[1, 6, 7, 8]].numpy(), refs, atol=1e-3)
    assert scaler.atomref[[0, 9, 17]].abs().sum() == 0
    assert abs(float(scaler.std) - 1e-3) < 2e-4  # only the noise is left to learn
    z = torch.tensor(np.repeat(np.tile([1, 6, 7, 8], 200), counts.ravel().astype(int)))
    batch = torch.repeat_interleave(torch.arange(200), torch.tensor(counts.sum(1).astype(int)))
    yt = torch.tensor(y)
    normalized = scaler.normalize(yt, z, batch)
    assert abs(float(normalized.mean())) < 1e-6 and abs(float(normalized.std()) - 1) < 0.01
    assert torch.allclose(scaler.denormalize(normalized, z, batch), yt, rtol=0, atol=1e-9)

    plain = TargetScaler.fit(y)  # no atomrefs: plain standardisation
    assert float(plain.mean) == pytest.approx(y.mean()) and plain.atomref.abs().sum() == 0
    assert is_extensive("source_u0_hartree") and is_extensive("final_energy_hartree")
    assert not is_extensive("source_gap_hartree") and not is_extensive("source_mu_debye")


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "uninterrupted"
    return run_dir, train(run_dir, dataset)


def test_killed_run_resumes_to_the_same_weights_and_metrics(dataset, uninterrupted, tmp_path):
    full_dir, full = uninterrupted
    run_dir = tmp_path / "killed"
    TinyModel.crash_at_step = 8  # 3 batches per epoch: dies in epoch 2, after epoch 1's save
    try:
        with pytest.raises(RuntimeError, match="simulated kill"):
            train(run_dir, dataset)
    finally:
        TinyModel.crash_at_step = None
    assert torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1
    assert not (run_dir / "test_predictions.parquet").exists()

    torch.manual_seed(1234)  # a new job: other RNG states than the killed one had
    np.random.seed(1234)
    resumed = train(run_dir, dataset)
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == ["version_0", "version_1"]
    for name in ("last.ckpt", "best.ckpt"):
        a, b = weights(full_dir / "checkpoints" / name), weights(run_dir / "checkpoints" / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    pd.testing.assert_frame_equal(val_rows(full_dir), val_rows(run_dir))
    assert list(val_rows(run_dir)["epoch"]) == [0, 1, 2, 3]
    assert val_rows(run_dir)["lr"].nunique() > 1  # the schedule moved
    assert resumed == full


def test_test_predictions_come_from_the_best_checkpoint(dataset, uninterrupted):
    run_dir, summary = uninterrupted
    predictions = pq.read_table(run_dir / "test_predictions.parquet")
    assert predictions.column_names == ["id", "truth", "prediction", "unit"]
    frame = predictions.to_pandas()
    split = pd.read_parquet(dataset["split"]).set_index("id")["split"]
    assert sorted(frame["id"]) == sorted(split.index[split == "test"])
    assert set(frame["unit"]) == {"kcal/mol"}
    labels = pd.read_parquet(dataset["labels"]).set_index("id")
    assert np.array_equal(frame["truth"], labels.loc[frame["id"], TARGET])

    metadata = json.loads(predictions.schema.metadata[PREDICTIONS_KEY])
    assert metadata == summary and metadata["checkpoint"] == "checkpoints/best.ckpt"
    assert summary["test_mae"] == pytest.approx(np.abs(frame["truth"] - frame["prediction"]).mean())

    best = torch.load(run_dir / "checkpoints/best.ckpt", weights_only=True)
    last = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    assert best["epoch"] == summary["best_epoch"] < last["epoch"]  # best is not the last epoch
    metrics = val_rows(run_dir).set_index("epoch")
    assert summary["val_mae"] == pytest.approx(metrics["val_mae"].min())
    assert metrics["val_mae"].idxmin() == summary["best_epoch"]

    data = GeometryDataModule(dataset["tables"], dataset["labels"], dataset["split"], TARGET, 64)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))

    def predict(state):
        model = TinyModel(**MODEL_KWARGS).eval()
        model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        scaler = TargetScaler()
        scaler.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("scaler.")})
        with torch.no_grad():
            out = model(batch["z"], batch["pos"], batch["batch"])
            out = scaler.denormalize(out, batch["z"], batch["batch"])
            return dict(zip(batch["ids"], out, strict=True))

    from_best, from_last = predict(best["state_dict"]), predict(last["state_dict"])
    for mol_id, value in zip(frame["id"], frame["prediction"], strict=True):
        assert value == pytest.approx(float(from_best[mol_id]), rel=1e-6)
    assert not np.allclose(frame["prediction"], [float(from_last[i]) for i in frame["id"]])

    config = json.loads((run_dir / "config.json").read_text())
    assert config["target"] == {"column": TARGET, "unit": "kcal/mol"}
    assert config["train"]["max_epochs"] == 4 and config["train"]["batch_size"] == 8
    assert config["data"]["sizes"] == {"train": 24, "val": 8, "test": 8}
    assert set(config["normalization"]["atomref"]) == {"1", "6", "7", "8"}  # an energy


def test_a_run_with_other_settings_starts_anew(dataset, uninterrupted, tmp_path, caplog):
    """Snakemake reruns a job whose settings changed: the old run is not resumed, its
    checkpoints and logs go, and the new run's metrics hold only its own epochs."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted[0], run_dir)
    train(run_dir, dataset, lr=0.5)
    assert "held a run with other train: starting a new run" in caplog.text
    assert json.loads((run_dir / "config.json").read_text())["train"]["lr"] == 0.5
    rows = val_rows(run_dir)
    assert list(rows["epoch"]) == list(range(SETTINGS["max_epochs"]))
    assert (rows["lr"].iloc[:1] > 0.1).all()


def test_cli_trains_a_registered_model(dataset, tmp_path, capsys):
    from rhoflow.cli import main

    out = tmp_path / "schnet"
    schnet = {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "num_gaussians": 8}
    settings = {"max_epochs": 2, "batch_size": 8, "progress_bar": False, "scheduler": "cosine"}
    args = ["train", "--model", "schnet", "--model-kwargs", json.dumps(schnet), "--settings",
            json.dumps(settings), "--target", "source_gasteiger_dipole_debye", "--labels",
            str(dataset["labels"]), "--split", str(dataset["split"]), "--out", str(out),
            *map(str, dataset["tables"])]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["unit"] == "D" and summary["test_mae"] > 0
    config = json.loads((out / "config.json").read_text())
    # no readout given: a dipole norm is intensive, so the mean (recorded)
    assert config["model"] == {"name": "schnet", "kwargs": {**schnet, "readout": "mean"}}
    assert config["train"]["scheduler"] == "cosine" and config["train"]["lr"] == 5e-4  # default
    assert config["normalization"]["atomref"] == {}  # a dipole is not extensive
    assert {"best.ckpt", "last.ckpt"} <= {p.name for p in (out / "checkpoints").iterdir()}
    predictions = pd.read_parquet(out / "test_predictions.parquet")
    assert len(predictions) == 8 and set(predictions["unit"]) == {"D"}
    assert len(val_rows(out)) == 2


@pytest.mark.workflow
def test_workflow_trains_evaluates_and_reruns_only_what_changed(tmp_path):
    """Real QM9 geometries (fixture raw xyz files) through snakemake: train_property per
    (model, target, seed), evaluate_property's table; trainer or model changes rerun training
    and evaluation only, one model's arguments only that model's runs."""
    import shutil

    import yaml
    from conftest import FIXTURES, planned_rules, run_snakemake

    shutil.copytree(FIXTURES / "qm9", tmp_path / "qm9", ignore=shutil.ignore_patterns("*.csv"))
    config = {
        "sources": [{"name": "q", "format": "qm9_xyz", "path": "qm9"}],
        "shards": {"shard_size": 3, "threads": 1},
        "conformers": {"method": "source", "threads": 1},
        "splits": {"counts": [2, 1, 1]},
        "train": {
            "targets": ["source_gap_hartree"],
            "seeds": [0, 1],
            "models": {"schnet": {"hidden_channels": 8, "num_filters": 8,
                                  "num_interactions": 1, "num_gaussians": 8},
                       "egnn": {"hidden_channels": 8, "num_layers": 1}},
            "trainer": {"max_epochs": 2, "batch_size": 2, "progress_bar": False},
        },
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, "--cores", "2")
    table = (tmp_path / "results/tables/q_properties.md").read_text()
    assert "| train mean |" in table and "| schnet | 2 |" in table and "| egnn | 2 |" in table
    run = tmp_path / "results/models/q/schnet/source_gap_hartree/seed1"
    assert (run / "checkpoints/best.ckpt").exists() and (run / "metrics.csv").exists()
    assert (tmp_path / "results/tables/q_parity/egnn/source_gap_hartree.png").stat().st_size
    assert planned_rules(tmp_path, config) == set()
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["train"]["trainer"]["max_epochs"] = 3
    assert planned_rules(tmp_path, changed) == {"train_property", "evaluate_property", "all"}
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["train"]["models"]["egnn"]["num_layers"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(changed))
    dry = run_snakemake(tmp_path, "--cores", "1", "--dry-run").stdout
    assert "output: results/models/q/egnn/" in dry
    assert "output: results/models/q/schnet/" not in dry
