"""Config validation: defaults filled, bad keys named, bad config stops snakemake early."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from conftest import REPO, run_snakemake

from rhoflow.config import ConfigError, load_schema, validate

SCHEMA = load_schema(REPO / "workflow/schemas/config.schema.yaml")


def demo_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_embedded_default_is_valid_and_defaults_are_filled():
    config = demo_config()
    validate(config, SCHEMA, workdir=REPO)
    assert config["shards"]["filter"]["max_heavy_atoms"] == 30
    assert "Ba" in config["shards"]["filter"]["allowed_elements"]
    assert config["sources"][0]["charge"] == 0
    assert config["density"]["psi4"]["spacing_bohr"] == 0.4  # engine defaults filled in
    assert config["density"]["xtb"]["method"] == "gfn2"


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["conformers"].update(reoptimise="xtb"), "conformers.reoptimise"),
        (lambda c: c["conformers"].update(n_conformers="many"), "conformers.n_conformers"),
        (lambda c: c["sources"][0].update(format="mol2"), "sources[0].format"),
        (lambda c: c["sources"][0].update(path="nowhere.smi"), "sources[0].path"),
        (lambda c: c["sources"][0].pop("name"), "sources[0].name"),
        (lambda c: c.update(shard={"shard_size": 3}), "shard"),
        (lambda c: c["sources"].append(dict(c["sources"][0])), "sources[1].name"),
        (lambda c: c["density"]["psi4"].update(basiss="sto-3g"), "density.psi4"),
        (lambda c: c["density"]["pyscf"].update(basis="sto-3g; rm -rf /"), "density.pyscf"),
        (lambda c: c["density"].update(engines=["orca"]), "density.engines[0]"),
    ],
)
def test_bad_config_names_the_key(mutate, key):
    config = copy.deepcopy(demo_config())
    mutate(config)
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        validate(config, SCHEMA, workdir=REPO)


def test_snakemake_rejects_bad_config_before_any_job(tmp_path):
    bad = demo_config()
    bad["conformers"]["k_lowest"] = 0
    bad["sources"][0]["path"] = str(REPO / bad["sources"][0]["path"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = run_snakemake(tmp_path, "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "conformers.k_lowest" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_schema_defaults_match_the_library_defaults():
    from rhoflow import pointclouds, voxels

    config = {"sources": demo_config()["sources"]}
    validate(config, SCHEMA, workdir=REPO)
    for section, module in (("voxels", voxels), ("pointclouds", pointclouds)):
        assert {k: v for k, v in config[section].items() if k != "engine"} == module.DEFAULTS


def test_representation_engine_must_be_computed():
    config = demo_config()
    config["density"]["engines"] = ["xtb"]
    with pytest.raises(ConfigError, match="'voxels.engine'"):
        validate(config, SCHEMA, workdir=REPO)
