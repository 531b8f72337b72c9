"""Splits: sizes, disjointness, determinism, scaffold groups, the CLI, and what a changed
``splits`` section reruns in the workflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import FAST_CONFORMERS, planned_rules, run_snakemake, shared_file

from rhoflow.cli import main
from rhoflow.config import ConfigError, section_settings
from rhoflow.labels import read_labels
from rhoflow.molecule import from_rdkit, write_molecules
from rhoflow.splits import (
    make_splits,
    murcko_scaffold,
    read_source,
    read_splits,
    split_sizes,
    write_splits,
)

# rings of different scaffolds and sizes, acyclic molecules (one duplicated), an empty SMILES
SMILES = [
    "c1ccccc1C", "c1ccccc1O", "c1ccccc1N", "c1ccccc1F", "Cc1ccccc1C", "c1ccccc1CC(=O)O",
    "C1CCCCC1O", "C1CCCCC1N", "OC1CCCCC1C",
    "c1ccncc1", "c1ccncc1C", "Cc1ccncc1",
    "c1ccc2ccccc2c1", "Oc1ccc2ccccc2c1",
    "C1CC1", "C1CC1C",
    "c1ccoc1",
    "CCO", "CCO", "CC", "CCN", "CCC", "CC(C)O", "O", "N", "C=O", "",
]  # fmt: skip
IDS = [f"s:{i}" for i in range(len(SMILES))]
SETTINGS = {"method": "random", "seed": 0, "fractions": [0.8, 0.1, 0.1], "counts": None}


def completed(**given) -> dict:
    """The ``splits`` section as ``rhoflow splits`` hands it on: defaults filled, checked."""
    return section_settings("splits", given)


def split_of(table) -> dict[str, str]:
    return dict(zip(table["id"].to_pylist(), table["split"].to_pylist(), strict=True))


def test_sizes_from_fractions_counts_and_full_qm9():
    assert split_sizes(1000) == ((800, 100, None), False)
    assert split_sizes(18, (0.8, 0.1, 0.1)) == ((14, 2, None), False)  # 1.8 -> 2
    assert split_sizes(7, (0.5, 0.25, 0.25)) == ((3, 2, None), False)  # 1.75 -> 2 twice
    assert split_sizes(3000, counts=(950, 50, 1000)) == ((950, 50, 1000), True)
    assert split_sizes(133_885, fmt="qm9_xyz") == ((110_000, 10_000, None), True)
    assert split_sizes(130_000, fmt="qm9_csv") == ((110_000, 10_000, None), True)
    assert split_sizes(129_999, fmt="qm9_csv") == ((103_999, 13_000, None), False)
    assert split_sizes(133_885, fmt="smiles")[1] is False
    assert split_sizes(133_885, counts=(100, 10, None), fmt="qm9_csv") == ((100, 10, None), True)
    with pytest.raises(ValueError, match="exceed"):
        split_sizes(100, counts=(95, 5, 1))
    with pytest.raises(ConfigError, match="'splits.fractions'.* do not sum to 1"):
        completed(fractions=[0.8, 0.1, 0.2])


def test_random_split_sizes_disjoint_and_complete():
    ids = [f"m:{i}" for i in range(1000)]
    table = make_splits(ids, [""] * 1000, completed(seed=3))
    splits = split_of(table)
    assert len(table) == len(splits) == 1000 and set(splits) == set(ids)
    assert sorted(splits.values()).count("train") == 800
    assert list(splits.values()).count("val") == list(splits.values()).count("test") == 100
    assert table["id"].to_pylist() == ids  # input order
    assert "scaffold" not in table.column_names


def test_fixed_counts_with_rest_and_with_a_limit():
    ids = [f"m:{i}" for i in range(3000)]
    rmd17 = split_of(make_splits(ids, [""] * 3000, completed(counts=[950, 50, 1000], seed=1)))
    assert len(rmd17) == 2000  # the other 1000 molecules are in no split
    assert [list(rmd17.values()).count(s) for s in ("train", "val", "test")] == [950, 50, 1000]
    rest = split_of(make_splits(ids, [""] * 3000, completed(counts=[950, 50, None], seed=1)))
    assert [list(rest.values()).count(s) for s in ("train", "val", "test")] == [950, 50, 2000]
    # the same permutation: train and val are the same molecules either way
    assert {i for i, s in rest.items() if s != "test"} == {
        i for i, s in rmd17.items() if s != "test"
    }


def test_same_seed_same_bytes_other_seed_other_split(tmp_path):
    ids = [f"m:{i}" for i in range(200)]
    smiles = [SMILES[i % len(SMILES)] for i in range(200)]
    for method in ("random", "scaffold"):
        paths = []
        for name, seed in (("a", 5), ("b", 5), ("c", 6)):
            paths.append(tmp_path / f"{method}-{name}.parquet")
            write_splits(paths[-1], make_splits(ids, smiles, completed(method=method, seed=seed)))
        a, b, c = (p.read_bytes() for p in paths)
        assert a == b and a != c
    random_a = split_of(make_splits(ids, smiles, completed(seed=5)))
    random_c = split_of(make_splits(ids, smiles, completed(seed=6)))
    assert sum(random_a[i] != random_c[i] for i in ids) > 50


def test_murcko_scaffolds():
    assert murcko_scaffold("Cc1ccccc1CC(=O)O") == "c1ccccc1"
    assert murcko_scaffold("Oc1ccc2ccccc2c1") == "c1ccc2ccccc2c1"
    assert murcko_scaffold("CC(C)O") == ""
    assert murcko_scaffold("C1CC(") == ""
    assert murcko_scaffold("") == ""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scaffold_groups_never_straddle_splits(seed):
    table = make_splits(
        IDS, SMILES, completed(method="scaffold", seed=seed, fractions=[0.6, 0.2, 0.2])
    )
    frame = table.to_pandas()
    assert len(frame) == len(SMILES) and frame["id"].is_unique
    ringed = frame[frame["scaffold"] != ""]
    assert (ringed.groupby("scaffold")["split"].nunique() == 1).all()
    # the largest group (six benzenes) and the next (three cyclohexanes) are in train
    assert set(frame.loc[frame["scaffold"] == "c1ccccc1", "split"]) == {"train"}
    assert set(frame.loc[frame["scaffold"] == "C1CCCCC1", "split"]) == {"train"}
    ethanol = frame.loc[[i for i, s in enumerate(SMILES) if s == "CCO"], "split"]
    assert ethanol.nunique() == 1  # identical acyclic molecules stay together
    sizes = frame["split"].value_counts()
    assert sizes["train"] <= 17 and sizes["val"] <= 5  # val, test: 27 * 0.2 = 5.4 -> 5


def test_scaffold_split_with_fixed_counts_leaves_unfit_groups_out():
    table = make_splits(IDS, SMILES, completed(method="scaffold", counts=[6, 3, 2]))
    splits = table.to_pandas().groupby("split").size()
    assert splits["train"] == 6 and splits["val"] == 3 and splits["test"] == 2
    meta = table.schema.metadata[b"rhoflow.splits"]
    assert b'"counts": [6, 3, 2]' in meta and b'"n_molecules": 27' in meta


def molecule_tables(tmp_path: Path, smiles: list[str], shard_size: int) -> list[Path]:
    from rdkit import Chem

    molecules = [from_rdkit(f"t:{i}", Chem.MolFromSmiles(s)) for i, s in enumerate(smiles)]
    paths = []
    for k in range(0, len(molecules), shard_size):
        paths.append(tmp_path / f"t-{k // shard_size:05d}.parquet")
        write_molecules(paths[-1], molecules[k : k + shard_size])
    return paths


def test_cli_splits_reads_shard_tables(tmp_path):
    smiles = [s for s in SMILES if s]
    tables = molecule_tables(tmp_path, smiles, shard_size=10)
    ids, read = read_source(tables)
    assert ids == [f"t:{i}" for i in range(len(smiles))] and read[0] == "Cc1ccccc1"
    out = tmp_path / "splits" / "t.parquet"
    settings = '{"method":"scaffold","seed":4,"fractions":[0.8,0.1,0.1],"counts":null}'
    argv = ["splits", "--settings", settings, "--source", "t", "--format", "smiles"]
    assert main([*argv, "--out", str(out), *map(str, tables)]) == 0
    frame = read_splits(out)
    assert list(frame.index) == ids and list(frame.columns) == ["split", "scaffold"]
    meta = frame.attrs["splits"]
    assert meta["source"] == "t" and meta["method"] == "scaffold" and meta["seed"] == 4
    assert meta["sizes"] == frame["split"].value_counts().to_dict()
    assert pq.read_metadata(out).created_by.startswith("parquet-cpp-arrow")


def test_pcqm4mv2_first_molecules():
    """Real PCQM4Mv2 SMILES (radicals included): every molecule gets one split."""
    import itertools

    from rhoflow.sources import FORMATS

    path = shared_file("pcqm4mv2/pcqm4mv2_first1000.csv")
    fmt = FORMATS["pcqm4mv2_cxsmiles"]
    records = [fmt.parse(e, {}) for e in itertools.islice(fmt.read_raw(path, {}), 200)]
    molecules = [from_rdkit(f"pcqm4mv2:{r.native_id}", r.mol) for r in records]
    ids, smiles = [m.id for m in molecules], [m.smiles for m in molecules]
    for method in ("random", "scaffold"):
        frame = make_splits(ids, smiles, completed(method=method, seed=0)).to_pandas()
        assert frame["id"].tolist() == ids
        assert frame["split"].value_counts().to_dict() == {"train": 160, "val": 20, "test": 20}
    assert frame[frame["scaffold"] != ""].groupby("scaffold")["split"].nunique().max() == 1


# --- the workflow ------------------------------------------------------------------------

WORKFLOW_SMILES = "O water\nC=O formaldehyde\nCO methanol\nc1ccccc1 benzene\nCC ethane\n"


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf_splits")
    (workdir / "mols.smi").write_text(WORKFLOW_SMILES)
    config = {
        "sources": [{"name": "t", "format": "smiles", "path": "mols.smi"}],
        "shards": {"shard_size": 3, "threads": 1},
        "conformers": FAST_CONFORMERS,
        "density": {
            "engines": ["pyscf"],
            "threads": 1,
            "pyscf": {"grid": "box", "box_points": 16, "esp": "none"},
        },
        "splits": SETTINGS,
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(workdir, "--cores", "2")
    return workdir, config


@pytest.mark.workflow
def test_workflow_writes_splits_and_labels(workflow_run):
    workdir, _ = workflow_run
    splits = read_splits(workdir / "results/splits/t.parquet")
    assert splits["split"].value_counts().to_dict() == {"train": 3, "val": 1, "test": 1}
    labels = read_labels(workdir / "results/density/pyscf/labels.parquet")
    assert sorted(labels.index) == sorted(splits.index)
    assert labels.loc["t:water", "n_atoms"] == 3 and labels["shard"].tolist()[-1] == "t-00001"
    assert np.allclose(labels["n_electrons_dm"], labels["n_electrons_expected"], atol=1e-4)
    assert (labels["final_energy_hartree"] < 0).all()
    assert labels.attrs["units"]["final_energy_hartree"] == "Hartree"


@pytest.mark.workflow
def test_changing_the_split_seed_reruns_splits_only(workflow_run):
    workdir, config = workflow_run
    assert planned_rules(workdir, config) == set()
    for change in ({"seed": 1}, {"method": "scaffold"}, {"counts": [2, 1, None]}):
        assert planned_rules(workdir, {**config, "splits": {**SETTINGS, **change}}) == {
            "splits",
            "all",
        }, change
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
