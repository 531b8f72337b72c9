"""Shards: deterministic membership and bytes, filter reasons in the ledger, atomic output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from rhoflow.config import load_schema, validate
from rhoflow.io import atomic_path
from rhoflow.ledger import read_ledger
from rhoflow.molecule import read_molecules
from rhoflow.shards import build_shards, read_manifest

DEMO = REPO / "resources/demo/molecules.smi"


def demo_settings() -> tuple[list[dict], dict]:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, load_schema(), workdir=REPO)
    return config["sources"], config["shards"]


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_shards_are_byte_identical_across_runs_and_worker_counts(tmp_path):
    sources, settings = demo_settings()
    build_shards(sources, [DEMO], 8, settings["filter"], tmp_path / "a", workers=1)
    build_shards(sources, [DEMO], 8, settings["filter"], tmp_path / "b", workers=2)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    names = [s.shard for s in read_manifest(tmp_path / "a" / "manifest.tsv")]
    assert names == ["demo-00000", "demo-00001", "demo-00002"]


def test_membership_is_by_input_position_and_failures_are_ledgered(tmp_path):
    sources, settings = demo_settings()
    manifest = build_shards(sources, [DEMO], 8, settings["filter"], tmp_path / "s")
    assert [(m.first_record, m.n_records) for m in manifest] == [(0, 8), (8, 8), (16, 4)]
    assert sum(m.n_molecules + m.n_failed for m in manifest) == 20
    ledger = {row.id: row.reason for row in read_ledger(tmp_path / "s" / "ledger.tsv")}
    assert ledger == {
        "demo:invalid_ring": "invalid_smiles",
        "demo:ammonium": "filtered_charge",
        "demo:glycine_zwitterion": "filtered_charge_separation",
        "demo:dimethylmercury": "filtered_element",
    }
    last = read_molecules(tmp_path / "s" / "demo-00001.parquet")
    assert [m.id for m in last][-1] == "demo:methyl_radical"
    radical = last[-1]
    assert radical.multiplicity == 2 and radical.charge == 0
    assert radical.n_atoms == 4 and radical.coords_angstrom is None


def test_filter_only_applies_to_sources_that_ask(tmp_path):
    sources, settings = demo_settings()
    sources[0]["filter"] = False
    build_shards(sources, [DEMO], 100, settings["filter"], tmp_path / "s")
    reasons = {row.reason for row in read_ledger(tmp_path / "s" / "ledger.tsv")}
    assert reasons == {"invalid_smiles"}
    ids = [m.id for m in read_molecules(tmp_path / "s" / "demo-00000.parquet")]
    assert "demo:ammonium" in ids and len(ids) == 19


def test_atomic_path_leaves_nothing_when_the_writer_dies(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "half.parquet").write_bytes(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
