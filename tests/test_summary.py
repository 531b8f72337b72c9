"""Stage summary: molecules out and failed per stage, failures per reason, from real molecule
tables, ledgers, a density store and a representation group; TSV, Markdown and the CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from rhoflow.cli import main
from rhoflow.ledger import LedgerRow, write_ledger
from rhoflow.molecule import Molecule, write_molecules
from rhoflow.summary import summarize, write_summary
from rhoflow.zarrgroup import MoleculeGroupWriter

EXPECTED = [
    ("shards", "molecules", "out", 3),
    ("shards", "molecules", "failed", 2),
    ("shards", "failure", "filtered_charge", 1),
    ("shards", "failure", "invalid_smiles", 1),
    ("conformers", "molecules", "out", 2),
    ("conformers", "molecules", "failed", 1),
    ("conformers", "failure", "embed_failed", 1),
    ("density_pyscf", "molecules", "out", 3),
    ("density_pyscf", "molecules", "failed", 0),
    ("voxels", "molecules", "out", 2),
    ("voxels", "molecules", "failed", 1),
    ("voxels", "failure", "representation_error", 1),
    ("render_structures", "molecules", "out", 0),
    ("render_structures", "molecules", "failed", 1),
    ("render_structures", "failure", "missing_coordinates", 1),
]


@pytest.fixture()
def stage_outputs(tmp_path, tiny_store) -> dict[str, list[str]]:
    """A results folder as the stages leave it: the shards' and conformers' molecule tables
    and ledgers, the tiny pyscf store as stage density_pyscf, a voxel group with two of its
    molecules, and a stage that output nothing but a ledger row."""
    results = tmp_path / "results"

    def molecule(name: str) -> Molecule:
        return Molecule(f"t:{name}", "O", 0, 1, np.array([8, 1, 1]), "", np.zeros((3, 3)))

    tables = [results / "shards/t-00000.parquet", results / "conformers/t-00000.parquet"]
    for table in tables:
        table.parent.mkdir(parents=True, exist_ok=True)
    write_molecules(tables[0], [molecule("a"), molecule("b"), molecule("c")])
    write_molecules(tables[1], [molecule("a"), molecule("b")])
    store = results / "density/pyscf/t-00000.zarr"
    store.parent.mkdir(parents=True)
    store.symlink_to(tiny_store, target_is_directory=True)
    group = results / "voxels/t-00000.zarr"
    group.parent.mkdir(parents=True)
    with MoleculeGroupWriter(group, "rhoflow-voxels", {}) as writer:
        writer.array("voxels", (2,), "float32", ("molecule", "channel"), "1")
        writer.add("t:h2o", voxels=np.zeros(2))
        writer.add("t:h2co", voxels=np.ones(2))
    ledgers = {
        results / "shards/ledger.tsv": [
            LedgerRow("t:x", "shards", "invalid_smiles"),
            LedgerRow("t:y", "shards", "filtered_charge"),
        ],
        results / "conformers/t-00000.ledger.tsv": [LedgerRow("t:c", "conformers", "embed_failed")],
        results / "density/pyscf/t-00000.ledger.tsv": [],
        results / "voxels/t-00000.ledger.tsv": [
            LedgerRow("t:empty", "voxels", "representation_error")
        ],
        results / "render/structures/t-00000.ledger.tsv": [
            LedgerRow("t:a", "render_structures", "missing_coordinates")
        ],
    }
    for path, rows in ledgers.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_ledger(path, rows)
    return {
        "tables": [str(p) for p in tables],
        "ledgers": [str(p) for p in ledgers],
        "stores": [str(store)],
        "representations": [str(group)],
    }


def test_every_stage_counts_its_outputs_and_its_ledger_rows(stage_outputs):
    rows = summarize(**stage_outputs)
    assert rows == EXPECTED


def test_tsv_and_markdown_hold_the_same_numbers(stage_outputs, tmp_path):
    tsv, md = tmp_path / "stages.tsv", tmp_path / "stages.md"
    write_summary(summarize(**stage_outputs), tsv, md)
    with open(tsv, newline="") as fh:
        table = list(csv.reader(fh, delimiter="\t"))
    assert table[0] == ["stage", "kind", "key", "count"]
    assert [(s, k, key, int(n)) for s, k, key, n in table[1:]] == EXPECTED
    lines = md.read_text().splitlines()
    assert lines[0] == "# rhoflow stage summary"
    body = lines[lines.index("|---|---:|---:|---|") + 1 :]
    assert body == [
        "| shards | 3 | 2 | filtered_charge: 1, invalid_smiles: 1 |",
        "| conformers | 2 | 1 | embed_failed: 1 |",
        "| density_pyscf | 3 | 0 | – |",
        "| voxels | 2 | 1 | representation_error: 1 |",
        "| render_structures | 0 | 1 | missing_coordinates: 1 |",
    ]


def test_cli_writes_the_summary_the_rule_asks_for(stage_outputs, tmp_path, capsys):
    tsv, md = tmp_path / "stages.tsv", tmp_path / "stages.md"
    argv = ["summary", "--tsv", str(tsv), "--md", str(md)]
    for option, paths in stage_outputs.items():
        argv += [f"--{option}", *paths]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == md.read_text().strip()
    assert len(tsv.read_text().splitlines()) == 1 + len(EXPECTED)
