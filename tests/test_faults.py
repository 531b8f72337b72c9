"""Fault suite: what rhoflow does when a molecule, an engine, the disk or a checkpoint fails.

Every case ends with each molecule either in its stage's output or in its ledger (id, stage,
reason, message), and with nothing half-written: no store, table or checkpoint that looks
complete but is not. README "Faults" tabulates the cases. Two of them are tested elsewhere,
through snakemake, and not repeated here:

- SIGKILL during a density shard, then ``--rerun-incomplete``:
  ``tests/test_density_workflow.py::test_sigkill_mid_shard_then_rerun_incomplete``;
- SIGKILL during training, then a resume to the same weights and metrics:
  ``tests/test_train.py::test_killed_run_resumes_to_the_same_weights_and_metrics``.

Molecules are tiny (water, formaldehyde, HI), engines run RHF with small grids and the models
are the tiny ones of ``tests/test_train.py``.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import FAST_CONFORMERS, FIXTURES
from test_train import TinyModel, train, weights

from rhoflow.cli import main
from rhoflow.config import section_settings
from rhoflow.conformers import generate_shard
from rhoflow.cube import read_cube
from rhoflow.density.shard import build_density_shard
from rhoflow.ledger import LedgerRow, read_ledger
from rhoflow.molecule import Molecule, read_molecules, write_molecules
from rhoflow.shards import build_shards
from rhoflow.store import import_cubes, open_store
from rhoflow.train.fit import resume_checkpoint

needs_psi4 = pytest.mark.skipif(shutil.which("psi4") is None, reason="psi4 not on PATH")

WATER = ([8, 1, 1], [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])
H2CO = ([6, 8, 1, 1], [[0, 0, -0.53], [0, 0, 0.67], [0, 0.94, -1.11], [0, -0.94, -1.11]])
HI = ([53, 1], [[0, 0, 0], [0, 0, 1.61]])
FAST_GRID = {"spacing_bohr": 0.5, "overage_bohr": 3.0}


def molecule(mol_id: str, numbers_coords: tuple[list[int], list[list[float]]]) -> Molecule:
    numbers, coords = numbers_coords
    return Molecule(mol_id, "", 0, 1, np.array(numbers), "", np.array(coords, dtype=float))


def shard_table(path: Path, *molecules: Molecule) -> Path:
    write_molecules(path, list(molecules))
    return path


def temporaries(folder: Path) -> list[str]:
    """Hidden temporary siblings rhoflow.io.atomic_path leaves when a writer dies."""
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def accounted(ids: list[str], stored: list[str], *ledgers: list[LedgerRow]) -> dict[str, str]:
    """Where each molecule ended: ``stored`` or ``<stage>:<reason>``; each exactly once."""
    where = {mol_id: "stored" for mol_id in stored}
    for rows in ledgers:
        for row in rows:
            assert row.id not in where, f"{row.id} is in two places"
            where[row.id] = f"{row.stage}:{row.reason}"
    assert sorted(where) == sorted(ids)
    return where


# ----------------------------------------------------------------- molecules and engines


def test_bad_molecules_end_in_the_ledgers_of_shards_conformers_and_density(tmp_path):
    """Invalid SMILES → shards ledger; ETKDG cannot embed → conformers ledger; an element the
    basis lacks (iodine, 6-31G** in pyscf) → density ledger naming element and basis; the
    good molecules reach the store."""
    (tmp_path / "mols.smi").write_text(
        "O water\nC=O formaldehyde\nC1CC broken\n"
        "[C@H]12C[C@@H]1C2 unembeddable\n"  # trans-bridged bicyclobutane: impossible in 3D
        "I hydrogen_iodide\n"
    )
    ids = [f"t:{n}" for n in ("water", "formaldehyde", "broken", "unembeddable", "hydrogen_iodide")]
    filter_settings = section_settings("shards")["filter"]
    source = {"name": "t", "format": "smiles"}
    build_shards([source], [tmp_path / "mols.smi"], 10, filter_settings, tmp_path / "shards")
    shard_rows = read_ledger(tmp_path / "shards/ledger.tsv")

    conformers = section_settings("conformers", {**FAST_CONFORMERS, "n_conformers": 4})
    done, conformer_rows = generate_shard(read_molecules(tmp_path / "shards/t-00000.parquet"),
                                          conformers)  # fmt: skip
    write_molecules(tmp_path / "conformers.parquet", done)

    settings = section_settings("density.pyscf", {"basis": "6-31G**", "esp": "none", **FAST_GRID})
    store, ledger = tmp_path / "t-00000.zarr", tmp_path / "t-00000.ledger.tsv"
    build_density_shard("pyscf", tmp_path / "conformers.parquet", settings, store, ledger)
    density_rows = read_ledger(ledger)

    where = accounted(ids, open_store(store).ids, shard_rows, conformer_rows, density_rows)
    assert where == {
        "t:water": "stored",
        "t:formaldehyde": "stored",
        "t:broken": "shards:invalid_smiles",
        "t:unembeddable": "conformers:embed_failed",
        "t:hydrogen_iodide": "density_pyscf:basis_missing",
    }
    (iodine,) = density_rows
    assert "for I in 6-31G**" in iodine.message, iodine.message  # element and basis named
    assert "C1CC" in shard_rows[0].message


def test_scf_not_converged_is_a_ledger_row_in_pyscf(tmp_path):
    table = shard_table(tmp_path / "t.parquet", molecule("t:h2o", WATER))
    settings = section_settings("density.pyscf", {"max_cycle": 1, "esp": "none", **FAST_GRID})
    stored, failed = build_density_shard(
        "pyscf", table, settings, tmp_path / "s.zarr", tmp_path / "s.ledger.tsv"
    )
    assert (stored, failed) == (0, 1)
    (row,) = read_ledger(tmp_path / "s.ledger.tsv")
    assert (row.id, row.stage, row.reason) == ("t:h2o", "density_pyscf", "scf_not_converged")
    assert "not converged after 1 cycles" in row.message
    assert open_store(tmp_path / "s.zarr").ids == []  # a complete, empty store


@needs_psi4
def test_scf_not_converged_is_a_ledger_row_in_psi4(tmp_path):
    table = shard_table(tmp_path / "t.parquet", molecule("t:h2o", WATER))
    given = {"method": "hf", "basis": "sto-3g", "maxiter": 1, "esp": False, **FAST_GRID}
    settings = section_settings("density.psi4", given)
    build_density_shard("psi4", table, settings, tmp_path / "s.zarr", tmp_path / "s.ledger.tsv")
    (row,) = read_ledger(tmp_path / "s.ledger.tsv")
    assert (row.id, row.reason) == ("t:h2o", "scf_not_converged"), row.message
    assert open_store(tmp_path / "s.zarr").ids == []


@needs_psi4
def test_psi4_killed_by_a_signal_and_a_basis_without_iodine_are_ledger_rows(tmp_path, monkeypatch):
    """The first psi4 process SIGKILLs itself (as the OOM killer would): an engine_error row,
    and the shard goes on: HI gets a row naming iodine and the basis, formaldehyde a density."""
    real = shutil.which("psi4")
    fake = tmp_path / "bin" / "psi4"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e "{tmp_path}/killed" ]; then touch "{tmp_path}/killed"; kill -KILL $$; fi\n'
        f'exec "{real}" "$@"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    table = shard_table(
        tmp_path / "t.parquet",
        molecule("t:h2o", WATER), molecule("t:hi", HI), molecule("t:h2co", H2CO),
    )  # fmt: skip
    given = {"method": "hf", "basis": "6-31G**", "esp": False, **FAST_GRID}
    settings = section_settings("density.psi4", given)
    store, ledger = tmp_path / "s.zarr", tmp_path / "s.ledger.tsv"
    assert build_density_shard("psi4", table, settings, store, ledger) == (1, 2)

    rows = read_ledger(ledger)
    where = accounted(["t:h2o", "t:hi", "t:h2co"], open_store(store).ids, rows)
    assert where["t:h2co"] == "stored"
    killed, iodine = rows
    assert (killed.id, killed.reason) == ("t:h2o", "engine_error")
    assert "psi4 killed by signal SIGKILL" in killed.message
    assert (iodine.id, iodine.reason) == ("t:hi", "basis_missing")
    assert "basis 6-31G** has no functions for element I" in iodine.message, iodine.message


# ------------------------------------------------------------------------- cube import


def test_every_truncation_of_a_cube_is_a_clear_error(tmp_path):
    text = (FIXTURES / "cube" / "Mol1_Dt.cube").read_bytes()
    path = tmp_path / "Mol1_Dt.cube"
    # a cut inside the last number leaves a shorter number: no text format can tell
    last_value = len(text.rstrip()) - len(text.split()[-1])
    for n in range(last_value + 1):
        path.write_bytes(text[:n])
        with pytest.raises(ValueError):
            read_cube(path)


def test_corrupt_cubes_on_import_are_ledger_rows_never_a_half_written_store(tmp_path):
    cubes = tmp_path / "cubes"
    cubes.mkdir()
    good = FIXTURES / "cube" / "Mol1_Dt.cube"
    shutil.copy(good, cubes / "Mol1_Dt.cube")
    shutil.copy(FIXTURES / "cube" / "Mol1_ESP.cube", cubes / "Mol1_ESP.cube")
    text = good.read_text()
    (cubes / "Mol2_Dt.cube").write_text(text[: len(text) // 2])  # a copy cut short
    (cubes / "Mol3_Dt.cube").write_bytes(np.random.default_rng(0).bytes(900))  # not text
    (cubes / "Mol4_Dt.cube").write_text(text.replace("0.800000", "nan", 1))  # a NaN spacing
    pairs = sorted(cubes.glob("*_Dt.cube"))

    out, ledger = tmp_path / "imported.zarr", tmp_path / "imported.ledger.tsv"
    assert main(["cube", "import", "--out", str(out), "--ledger", str(ledger), str(cubes)]) == 0
    rows = read_ledger(ledger)
    where = accounted([p.name[:4] for p in pairs], open_store(out).ids, rows)
    assert where == {"Mol1": "stored", **{f"Mol{i}": "density:engine_error" for i in (2, 3, 4)}}
    messages = {r.id: r.message for r in rows}
    assert "values, header says" in messages["Mol2"]
    assert "codec can't decode" in messages["Mol3"]
    assert "non-finite" in messages["Mol4"]

    # strict: the first bad cube stops the import; the store written before stays as it was
    with pytest.raises(ValueError, match="Mol2_Dt.cube"):
        import_cubes([(p, None) for p in pairs], out)
    assert open_store(out).ids == ["Mol1"] and temporaries(tmp_path) == []


# ----------------------------------------------------------------------------- disk full


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_a_store_keeps_the_previous_store(tmp_path, monkeypatch):
    table = shard_table(tmp_path / "t.parquet", molecule("t:h2o", WATER))
    settings = section_settings("density.pyscf", {"esp": "none", **FAST_GRID})
    store, ledger = tmp_path / "out/t-00000.zarr", tmp_path / "out/t-00000.ledger.tsv"
    build_density_shard("pyscf", table, settings, store, ledger)
    before = open_store(store).values("t:h2o").copy()
    created = zarr.open_group(store, mode="r").attrs["created"]

    put = zarr.storage._local._put
    monkeypatch.setattr(
        zarr.storage._local, "_put",
        lambda path, *a, **k: disk_full() if "/density/c" in str(path) else put(path, *a, **k),
    )  # fmt: skip
    with pytest.raises(OSError) as raised:
        build_density_shard("pyscf", table, settings, store, ledger)
    assert raised.value.errno == errno.ENOSPC
    assert any(str(store) in note for note in raised.value.__notes__), raised.value.__notes__
    assert temporaries(store.parent) == []
    assert zarr.open_group(store, mode="r").attrs["created"] == created  # the old store
    np.testing.assert_array_equal(open_store(store).values("t:h2o"), before)
    assert read_ledger(ledger) == []

    monkeypatch.undo()  # the disk has room again: the rerun completes
    assert build_density_shard("pyscf", table, settings, store, ledger) == (1, 0)
    np.testing.assert_array_equal(open_store(store).values("t:h2o"), before)


# ------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("faults_run") / "uninterrupted"
    return run_dir, train(run_dir, dataset)


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class NanModel(TinyModel):
    """TinyModel whose training forward pass ``nan_at_step`` gives NaN (a diverged model)."""

    nan_at_step = 5  # 3 batches per epoch: epoch 1, batch 1

    def forward_with_embedding(self, z, pos, batch):
        out, embedding = super().forward_with_embedding(z, pos, batch)
        if self.training and self.steps == self.nan_at_step:
            out = out * float("nan")
        return out, embedding


def test_nan_loss_stops_the_run_naming_epoch_and_batch(dataset, tmp_path, monkeypatch):
    import test_train

    monkeypatch.setattr(test_train, "TinyModel", NanModel)  # train() builds this class
    run_dir = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 1 \(molecules t:m\d\d, "):
        train(run_dir, dataset)
    state = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    assert state["epoch"] == 0  # the last complete epoch, weights never touched by the NaN
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
    assert not (run_dir / "test_predictions.parquet").exists()
    assert temporaries(run_dir / "checkpoints") == []


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(
    dataset, uninterrupted, tmp_path, monkeypatch
):
    save, saves = torch.save, []

    def full_at_second_last(obj, f, *args, **kwargs):
        if ".last.ckpt.tmp-" in str(f):
            saves.append(f)
            if len(saves) == 2:  # epoch 1: half the file written, then the disk is full
                Path(f).write_bytes(b"PK\x03\x04" + bytes(1000))
                disk_full()
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_second_last)
    run_dir = tmp_path / "run"
    with pytest.raises(OSError) as raised:
        train(run_dir, dataset)
    assert raised.value.errno == errno.ENOSPC
    assert any("last.ckpt" in note for note in raised.value.__notes__)
    assert temporaries(run_dir / "checkpoints") == []
    assert torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 0

    monkeypatch.undo()
    assert train(run_dir, dataset) == uninterrupted[1]
    for name in ("last.ckpt", "best.ckpt"):
        assert same_weights(uninterrupted[0] / "checkpoints" / name, run_dir / "checkpoints" / name)


def test_truncated_last_checkpoint_resumes_from_best(dataset, uninterrupted, tmp_path, caplog):
    run_dir = tmp_path / "run"
    TinyModel.crash_at_step = 8  # dies in epoch 2, after epoch 1's checkpoints
    try:
        with pytest.raises(RuntimeError, match="simulated kill"):
            train(run_dir, dataset)
    finally:
        TinyModel.crash_at_step = None
    last = run_dir / "checkpoints/last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a copy cut short

    assert resume_checkpoint(run_dir) == run_dir / "checkpoints/best.ckpt"
    assert train(run_dir, dataset) == uninterrupted[1]  # best.ckpt's epoch, then on exactly
    assert f"{last} is unreadable" in caplog.text
    for name in ("last.ckpt", "best.ckpt"):
        assert same_weights(uninterrupted[0] / "checkpoints" / name, run_dir / "checkpoints" / name)

    for name in ("last.ckpt", "best.ckpt"):  # nothing to resume from: stop, naming the files
        path = run_dir / "checkpoints" / name
        path.write_bytes(path.read_bytes()[:100])
    neither = r"last\.ckpt is unreadable .*best\.ckpt is missing or unreadable"
    with pytest.raises(RuntimeError, match=neither):
        train(run_dir, dataset)
