"""The conformers rule through snakemake with ``method: source``: PCQM4Mv2 DFT geometries and
geometry-only XYZ frames without bond orders are stored exactly as the source gives them."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import yaml
from conftest import FIXTURES, run_snakemake

from rhoflow.ledger import read_ledger
from rhoflow.molecule import read_molecules

pytestmark = pytest.mark.workflow


def cxsmiles_coordinates(cxsmiles: str) -> np.ndarray:
    """The ``|(x,y,z;...)|`` block of a CXSMILES as [n_atoms, 3] floats (Å), as written."""
    block = cxsmiles.split("|(", 1)[1].split(")|", 1)[0]
    return np.array([[float(v) for v in triple.split(",")] for triple in block.split(";")])


def xyz_coordinates(text: str) -> list[np.ndarray]:
    """Coordinates (Å) of every frame of a plain XYZ file, as written."""
    lines, frames = text.splitlines(), []
    while lines:
        n_atoms = int(lines[0])
        atoms = lines[2 : 2 + n_atoms]
        frames.append(np.array([[float(v) for v in line.split()[1:4]] for line in atoms]))
        lines = lines[2 + n_atoms :]
    return frames


def test_method_source_stores_the_source_coordinates(tmp_path):
    shutil.copy(FIXTURES / "pcqm4mv2/cxsmiles.csv", tmp_path / "pcqm.csv")
    shutil.copy(FIXTURES / "generic/unassignable.xyz", tmp_path / "frames.xyz")
    config = {
        "sources": [
            {"name": "p", "format": "pcqm4mv2_cxsmiles", "path": "pcqm.csv"},
            {"name": "x", "format": "xyz", "path": "frames.xyz"},
        ],
        "shards": {"shard_size": 8, "threads": 1},
        "conformers": {"method": "source", "threads": 1},  # reoptimize: auto → none
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    # shard tables are known once the shards checkpoint ran; then only the conformer tables
    run_snakemake(tmp_path, "--cores", "1", "--until", "shards")
    tables = [f"results/conformers/{name}-00000.parquet" for name in ("p", "x")]
    run_snakemake(tmp_path, "--cores", "1", *tables)
    tables = [tmp_path / table for table in tables]
    assert not (tmp_path / "results/density").exists()

    with open(tmp_path / "pcqm.csv") as fh:
        rows = list(csv.DictReader(fh))
    pcqm = read_molecules(tables[0])
    assert [m.id for m in pcqm] == ["p:0", "p:1", "p:2", "p:4"]  # row 3 is not a molecule
    for molecule in pcqm:
        expected = cxsmiles_coordinates(rows[int(molecule.id.split(":")[1])]["smiles"])
        np.testing.assert_array_equal(molecule.coords_angstrom, expected)
        assert molecule.provenance["method"] == "source"
        assert molecule.provenance["reoptimize"] == "none"
        assert "energy_hartree" not in molecule.provenance
    assert pcqm[2].multiplicity == 2  # the methyl radical, untouched

    frames = read_molecules(tables[1])
    assert [m.id for m in frames] == ["x:frames-0", "x:frames-1"]
    expected = xyz_coordinates((tmp_path / "frames.xyz").read_text())
    for molecule, coords in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(molecule.coords_angstrom, coords)
        assert molecule.provenance["bond_orders"] == "unknown" and molecule.smiles == ""
    assert not read_ledger(tables[1].with_suffix(".ledger.tsv"))
    shards_ledger = read_ledger(tmp_path / "results/shards/ledger.tsv")
    assert [(r.id, r.reason) for r in shards_ledger] == [("p:3", "invalid_smiles")]
