"""``rhoflow predict``: a tiny SchNet trained on real molecules (MMFF94 energies, kcal/mol, with
atomrefs) predicts new molecules from SMILES (conformers made with the given settings) and XYZ
(coordinates as given); bad molecules are rows with a reason, predictions are de-normalised as
the trainer's test predictions are.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST_CONFORMERS
from test_train import SMILES, mmff_molecule

from rhoflow.cli import main
from rhoflow.config import section_settings
from rhoflow.labels import build_labels
from rhoflow.molecule import read_molecules, write_molecules
from rhoflow.splits import build_splits
from rhoflow.train import TargetScaler, train_geometry

TARGET = "source_mmff94_energy_kcal_per_mol"
SCHNET = {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "num_gaussians": 8}
NEW = [("CCO", "ethanol"), ("C1CC", "broken"), ("CC(=O)N", "acetamide"), ("OCC=O", "glycolald")]
"""Three valid SMILES and one with an unclosed ring."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch SchNet run directory on 16 molecules (8 / 4 / 4) and its molecule table."""
    root = tmp_path_factory.mktemp("predict")
    table = root / "t-00000.parquet"
    write_molecules(table, [mmff_molecule(i, s) for i, s in enumerate(SMILES[:16])])
    build_labels(root / "labels.parquet", [], [table])
    splits = section_settings("splits", {"fractions": [0.5, 0.25, 0.25]})
    build_splits([table], root / "split.parquet", "t", "smiles", splits)
    given = {"max_epochs": 2, "batch_size": 4, "lr": 0.01, "progress_bar": False}
    settings = section_settings("train.trainer", given)
    run = root / "run" / "seed0"
    train_geometry(
        run, [table], root / "labels.parquet", root / "split.parquet", TARGET, "schnet", SCHNET,
        settings,
    )  # fmt: skip
    return run, table


def predict(run, path, out, *extra):
    assert main(["predict", str(run), str(path), str(out), *map(str, extra)]) == 0
    return pd.read_csv(out, dtype={"id": str}, keep_default_na=False)


def direct(run, z, pos):
    """The checkpoint's model and normalisation applied by hand (label unit)."""
    from rhoflow.models import SchNet

    state = torch.load(run / "checkpoints/best.ckpt", weights_only=True)["state_dict"]
    model, scaler = SchNet(**SCHNET).eval(), TargetScaler()
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    scaler.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("scaler.")})
    z = torch.as_tensor(z, dtype=torch.long)
    pos = torch.as_tensor(np.asarray(pos, np.float32))
    batch = torch.zeros(len(z), dtype=torch.long)
    with torch.no_grad():
        return float(scaler.denormalize(model(z, pos, batch), z, batch)[0])


def write_xyz(path, molecules):
    frames = []
    for z, coords in molecules:
        atoms = [
            " ".join([str(int(n)), *(repr(float(c)) for c in xyz)])
            for n, xyz in zip(z, coords, strict=True)
        ]
        frames.append("\n".join([str(len(atoms)), "", *atoms]))
    path.write_text("\n".join(frames) + "\n")


def test_smiles_with_an_invalid_one_and_xyz_at_the_same_coordinates(trained, tmp_path, capsys):
    from rhoflow.conformers import generate_shard
    from rhoflow.molecule import from_rdkit
    from rhoflow.sources import FORMATS, RawEntry

    run, _ = trained
    smi = tmp_path / "new.smi"
    smi.write_text("".join(f"{s} {name}\n" for s, name in NEW))
    frame = predict(run, smi, tmp_path / "out.csv", "--conformers", json.dumps(FAST_CONFORMERS))
    assert tuple(frame.columns) == (
        "id", "smiles", "prediction", "unit", "target", "model", "status", "reason", "message",
    )  # fmt: skip
    assert list(frame["id"]) == [name for _, name in NEW]
    assert list(frame["smiles"]) == [s for s, _ in NEW]
    assert list(frame["status"]) == ["ok", "failed", "ok", "ok"]
    assert list(frame["reason"]) == ["", "invalid_smiles", "", ""]
    assert "C1CC" in frame.loc[1, "message"] and frame.loc[1, "prediction"] == ""
    ok = frame[frame["status"] == "ok"]
    assert all(math.isfinite(float(v)) for v in ok["prediction"])
    assert set(frame["unit"]) == {"kcal/mol"} and set(frame["target"]) == {TARGET}
    assert set(frame["model"]) == {"schnet"}
    assert "4 molecules: 3 predicted" in capsys.readouterr().out

    # ethanol's conformer with the same settings, as an XYZ file: the same prediction, and
    # the model's own output at those coordinates
    record = FORMATS["smiles"].parse(RawEntry("ethanol", "CCO"), {})
    settings = section_settings("conformers", FAST_CONFORMERS)
    (ethanol,), _ = generate_shard([from_rdkit("x:ethanol", record.mol)], settings)
    write_xyz(tmp_path / "ethanol.xyz", [(ethanol.atomic_numbers, ethanol.coords_angstrom)])
    xyz = predict(run, tmp_path / "ethanol.xyz", tmp_path / "xyz.csv")
    assert list(xyz["id"]) == ["ethanol-0"] and list(xyz["status"]) == ["ok"]
    value = float(xyz.loc[0, "prediction"])
    assert value == direct(run, ethanol.atomic_numbers, ethanol.coords_angstrom)
    assert value == pytest.approx(float(frame.loc[0, "prediction"]), rel=1e-6)


def test_test_molecules_reproduce_the_runs_test_predictions(trained, tmp_path):
    run, table = trained
    expected = pd.read_parquet(run / "test_predictions.parquet")
    molecules = {m.id: m for m in read_molecules(table)}
    frames = [(molecules[i].atomic_numbers, molecules[i].coords_angstrom) for i in expected["id"]]
    write_xyz(tmp_path / "test.xyz", [*frames, ([100], [[0.0, 0.0, 0.0]])])  # Fm: no embedding
    out = tmp_path / "test.csv"
    frame = predict(run / "checkpoints" / "best.ckpt", tmp_path / "test.xyz", out)
    assert list(frame["id"]) == [f"test-{k}" for k in range(len(expected) + 1)]
    assert list(frame["status"]) == ["ok"] * len(expected) + ["failed"]
    assert frame.iloc[-1]["reason"] == "engine_error"
    assert "IndexError" in frame.iloc[-1]["message"]
    predicted = frame["prediction"][:-1].astype(float).to_numpy()
    np.testing.assert_allclose(predicted, expected["prediction"], rtol=1e-6, atol=0)


def test_unusable_checkpoint_or_input_fails_the_command(trained, tmp_path, capsys):
    run, _ = trained
    smi = tmp_path / "a.smi"
    smi.write_text("C\n")
    out = tmp_path / "out.csv"
    assert main(["predict", str(tmp_path / "nowhere"), str(smi), str(out)]) == 2
    assert main(["predict", str(run), str(tmp_path / "missing.smi"), str(out)]) == 2
    assert main(["predict", str(run), str(tmp_path / "a.mol2"), str(out)]) == 2
    assert "no such run directory" in capsys.readouterr().err
    bad = ["--conformers", '{"reoptimize": "mopac"}']
    assert main(["predict", str(run), str(smi), str(out), *bad]) == 2
    assert "config key 'conformers.reoptimize'" in capsys.readouterr().err
    assert not out.exists()
