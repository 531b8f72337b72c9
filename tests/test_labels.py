"""Typed labels: a real pyscf store joined with source labels, units, fixed columns, the CLI;
the label columns the config check expects of each source format and engine."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, TINY_IDS

from rhoflow.cli import main
from rhoflow.config import section_settings
from rhoflow.density import iter_shard
from rhoflow.label_columns import ENGINE_LABELS, SOURCE_LABELS, label_columns
from rhoflow.labels import (
    SOURCE_PREFIX,
    build_labels,
    labels_frame,
    read_labels,
    unit,
    write_labels,
)
from rhoflow.molecule import Molecule, write_molecules
from rhoflow.sources import FORMATS, pcqm4mv2, qm9
from rhoflow.store import open_store

SOURCE = {
    "t:h2o": {"homo_lumo_gap_ev": 9.9, "u0_hartree": -76.4},
    "t:empty": {"homo_lumo_gap_ev": None},
    "t:h2co": {"homo_lumo_gap_ev": 8.1, "mu_debye": 2.3},
}
N_ATOMS = {"t:h2o": 3, "t:empty": 3, "t:h2co": 4}


@pytest.fixture()
def tables(tmp_path):
    """Two conformer tables holding the tiny store's molecules (and one more) with labels."""

    def mol(mol_id: str) -> Molecule:
        return Molecule(
            mol_id, "", 0, 1, np.ones(N_ATOMS.get(mol_id, 1)), "", labels=SOURCE.get(mol_id, {})
        )

    paths = [tmp_path / "tiny-00000.parquet", tmp_path / "other-00000.parquet"]
    write_molecules(paths[0], [mol("t:h2co"), mol("t:h2o")])
    write_molecules(paths[1], [mol("t:empty"), mol("t:extra")])
    return paths


def test_labels_of_a_pyscf_store_joined_with_source_labels(tiny_store, tables):
    frame = labels_frame([tiny_store], tables)
    metadata = open_store(tiny_store).all_metadata()
    engine = sorted(metadata[0]["labels"])
    checks = sorted(
        {"rho_min": "rho_min_e_per_bohr3", "rho_max": "rho_max_e_per_bohr3"}.get(k, k)
        for k in metadata[0]["checks"]
    )
    source = ["source_homo_lumo_gap_ev", "source_mu_debye", "source_u0_hartree"]
    assert list(frame.columns) == ["shard", "n_atoms", *engine, *checks, *source]
    assert "final_energy_hartree" in engine and "n_electrons_dm" in checks
    assert list(frame.index) == list(TINY_IDS)  # store order; t:extra is not in the store
    assert (frame["shard"] == "tiny-00000").all()
    assert frame["n_atoms"].to_dict() == N_ATOMS and frame["n_atoms"].dtype == np.int32
    assert all(frame[c].dtype == np.float64 for c in [*engine, *checks, *source])
    for mol_id, meta in zip(TINY_IDS, metadata, strict=True):
        for key, value in meta["labels"].items():
            assert frame.loc[mol_id, key] == pytest.approx(value, nan_ok=True, rel=0, abs=0)
        assert frame.loc[mol_id, "rho_max_e_per_bohr3"] == meta["checks"]["rho_max"]
    assert frame.loc["t:h2o", "n_electrons_dm"] == pytest.approx(10.0, abs=1e-6)
    assert frame.loc["t:h2o", "final_energy_hartree"] == pytest.approx(-74.96, abs=0.02)
    assert frame.loc["t:h2o", "source_u0_hartree"] == -76.4
    assert np.isnan(frame.loc["t:empty", "source_homo_lumo_gap_ev"])
    assert np.isnan(frame.loc["t:h2co", "source_u0_hartree"])


def test_columns_do_not_depend_on_molecule_order(tiny_store, tables):
    assert labels_frame([tiny_store], tables).equals(labels_frame([tiny_store], tables[::-1]))


def test_written_table_is_typed_byte_stable_and_carries_units(tiny_store, tables, tmp_path):
    paths = [tmp_path / "a" / "labels.parquet", tmp_path / "b" / "labels.parquet"]
    for path in paths:
        write_labels(path, labels_frame([tiny_store], tables))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    schema = pq.read_schema(paths[0])
    assert str(schema.field("id").type) == "string" and str(schema.field("shard").type) == "string"
    assert {str(schema.field(n).type) for n in schema.names[3:]} == {"double"}
    frame = read_labels(paths[0])
    units = frame.attrs["units"]
    assert set(units) == set(frame.columns) - {"shard"}
    assert units["final_energy_hartree"] == units["source_u0_hartree"] == "Hartree"
    assert units["gap_ev"] == "eV" and units["dipole_debye"] == units["source_mu_debye"] == "D"
    assert units["rho_max_e_per_bohr3"] == "e/bohr^3" and units["n_electrons_dm"] == "e"
    assert units["captured_fraction"] == units["n_atoms"] == "1"
    assert json.loads(schema.metadata[b"rhoflow.units"]) == units


def test_every_source_label_has_a_unit():
    keys = [*qm9.CSV_LABELS.values(), pcqm4mv2.LABEL]
    units = {key: unit(SOURCE_PREFIX + key) for key in keys}
    assert units["u0_atom_kcal_per_mol"] == "kcal/mol" and units["cv_cal_per_mol_k"] != "kcal/mol"
    assert units["alpha_bohr3"] == "bohr^3" and units["a_ghz"] == "GHz"
    with pytest.raises(ValueError, match="does not name its unit"):
        unit("rho_min")


def test_a_stored_molecule_missing_from_the_tables_is_an_error(tiny_store, tables):
    with pytest.raises(ValueError, match="not in the molecule tables"):
        labels_frame([tiny_store], tables[:1])


def test_cli_labels_with_and_without_stores(tiny_store, tables, tmp_path):
    out = tmp_path / "labels.parquet"
    argv = ["labels", "--out", str(out), "--stores", str(tiny_store), "--tables"]
    assert main([*argv, *map(str, tables)]) == 0
    assert list(read_labels(out).index) == list(TINY_IDS)
    source_only = build_labels(tmp_path / "source.parquet", [], tables)
    assert list(source_only.index) == ["t:h2co", "t:h2o", "t:empty", "t:extra"]
    assert list(source_only.columns) == [
        "shard", "n_atoms", "source_homo_lumo_gap_ev", "source_mu_debye", "source_u0_hartree",
    ]  # fmt: skip
    assert source_only.loc["t:extra", "shard"] == "other-00000"
    assert source_only.loc["t:extra"].drop(["shard", "n_atoms"]).isna().all()


FORMAT_FIXTURES = {
    "pcqm4mv2_csv": "pcqm4mv2/data.csv.gz",
    "pcqm4mv2_sdf": "pcqm4mv2/pcqm4m-v2-train.sdf",
    "pcqm4mv2_cxsmiles": "pcqm4mv2/cxsmiles.csv",
    "pubchem_tsv": "pubchem/cid_smiles.tsv",
    "pubchem_sdf": "pubchem/compounds.sdf",
    "qm9_csv": "qm9/gdb9.csv",
    "qm9_xyz": "qm9",
    "smiles": "generic/molecules.smi",
    "sdf": "generic/molecules.sdf",
    "xyz": "generic/frames.xyz",
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_label_columns_of_a_format_are_the_labels_its_loader_gives(fmt):
    """The table the config check reads (no data, no imports) against a real file per format."""
    source = FORMATS[fmt]
    path = FIXTURES / FORMAT_FIXTURES[fmt]
    given = {key for e in source.read_raw(path, {}) for key in source.parse(e, {}).labels}
    assert given == SOURCE_LABELS[fmt]
    assert label_columns(fmt, "source") == {SOURCE_PREFIX + key for key in given}


@pytest.mark.parametrize("engine", ["psi4", "pyscf", "xtb"])
def test_label_columns_of_an_engine_are_the_labels_it_stores(engine):
    if engine != "pyscf" and shutil.which(engine) is None:
        pytest.skip(f"{engine} not installed")
    water = Molecule("t:h2o", "", 0, 1, np.array([8, 1, 1]), "",
                     np.array([[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]]))
    given = {"spacing_bohr": 0.6, "overage_bohr": 2.0}
    if engine != "xtb":
        given.update(method="hf", basis="sto-3g")
    settings = section_settings(f"density.{engine}", given)
    (result,) = iter_shard(engine, [water], settings, workers=1, threads=1)
    assert set(result.labels) == ENGINE_LABELS[engine]
    assert label_columns("smiles", engine) == ENGINE_LABELS[engine]  # no labels of its own
    assert label_columns("qm9_xyz", engine) > ENGINE_LABELS[engine] | {"source_u0_hartree"}
