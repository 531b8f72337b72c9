"""Config validation: defaults filled, bad keys named, bad config stops snakemake early; the
library fills stage settings from the same schema."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, run_snakemake

from rhoflow.config import (
    ConfigError,
    load_schema,
    section_schema,
    section_settings,
    validate,
)

SCHEMA = load_schema()


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
        (lambda c: c["density"]["psi4"].update(basiss="sto-3g"), "density.psi4.basiss"),
        (lambda c: c["density"]["pyscf"].update(basis="sto-3g; rm -rf /"), "density.pyscf.basis"),
        (lambda c: c["density"]["xtb"].update(spacing_bohr="fine"), "density.xtb.spacing_bohr"),
        (lambda c: c["density"]["psi4"].update(maxiter=100.0), "density.psi4.maxiter"),
        (lambda c: c["density"].update(workers=3), "density.workers"),
        (lambda c: c["render"].update(sise=64), "render.sise"),
        (lambda c: c["render"].update(ramp_colors=["red", "blue"]), "render.ramp_colors"),
        (lambda c: c["voxels"].update(density_units="e/nm^3"), "voxels.density_units"),
        (lambda c: c["density"].update(engines=["orca"]), "density.engines[0]"),
        (lambda c: c["edg"].update(pretrain="nowhere"), "edg.pretrain"),
        (lambda c: c["render"].update(engine=None), "edg.pretrain"),
        (lambda c: c["edg"]["imageed"].update(size="huge"), "edg.imageed.size"),
        (lambda c: c["edg"]["teacher"]["trainer"].update(lr=0), "edg.teacher.trainer.lr"),
        (lambda c: c["edg"].update(lambda_sweep=[0.0]), "edg.lambda_sweep[0]"),
        (lambda c: c["train"].update(targets=["gap_hartree", "u0_hartree"]), "train.targets[1]"),
        (lambda c: c["train"].update(labels="source"), "train.targets[0]"),  # smiles: no labels
        (lambda c: c["train"].update(sources=["demo", "nowhere"]), "train.sources[1]"),
        (lambda c: c["density"].update(engines=["psi4"]) or c["train"].update(labels="xtb"),
         "train.labels"),
    ],
)
def test_bad_config_names_the_key(mutate, key):
    config = copy.deepcopy(demo_config())
    mutate(config)
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        validate(config, SCHEMA, workdir=REPO)


@pytest.mark.parametrize(
    ("section", "bad", "key"),
    [("conformers", {"k_lowest": 0}, "conformers.k_lowest"),
     ("train", {"targets": ["gap_hartree", "no_such_hartree"]}, "train.targets[1]")],
)  # fmt: skip
def test_snakemake_rejects_bad_config_before_any_job(tmp_path, section, bad, key):
    config = demo_config()
    config[section].update(bad)
    config["sources"][0]["path"] = str(REPO / config["sources"][0]["path"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(tmp_path, "--cores", "1", check=False)
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def pretrain_and_qm9(**train) -> dict:
    """PCQM4Mv2 (gap in eV only) beside QM9, training on QM9's gap and U0."""
    fixtures = REPO / "tests/fixtures"
    return {
        "sources": [
            {"name": "pcqm", "format": "pcqm4mv2_cxsmiles",
             "path": str(fixtures / "pcqm4mv2/cxsmiles.csv")},
            {"name": "qm9", "format": "qm9_csv", "path": str(fixtures / "qm9/gdb9.csv")},
        ],
        "train": {"targets": ["source_gap_hartree", "source_u0_hartree"], **train},
    }  # fmt: skip


def test_train_sources_default_to_the_sources_with_every_target():
    config = pretrain_and_qm9()
    validate(config, SCHEMA)
    assert config["train"]["sources"] == ["qm9"]
    config = pretrain_and_qm9(targets=[])
    validate(config, SCHEMA)
    assert config["train"]["sources"] == ["pcqm", "qm9"]
    config = pretrain_and_qm9(labels="pyscf", targets=["gap_hartree"])
    config["density"] = {"engines": ["pyscf"]}
    validate(config, SCHEMA)  # an engine's labels are every source's
    assert config["train"]["sources"] == ["pcqm", "qm9"]


def test_a_train_source_lacking_a_target_is_named():
    with pytest.raises(ConfigError) as info:
        validate(pretrain_and_qm9(sources=["qm9", "pcqm"]), SCHEMA)
    message = str(info.value)
    assert "'train.sources[1]'" in message and "source_u0_hartree" in message
    with pytest.raises(ConfigError, match=re.escape("'train.targets'")):
        validate(pretrain_and_qm9(targets=["source_u0_hartree", "source_homo_lumo_gap_ev"]),
                 SCHEMA)  # fmt: skip


def test_an_objects_own_defaults_hold_for_keys_not_given():
    """edg.imageed.trainer defaults to the paper's lr 1.5e-4 and batch 64, not the generic
    trainer defaults, also when some of its keys are given."""
    imageed = section_settings("edg.imageed", {"trainer": {"max_epochs": 3}})["trainer"]
    assert (imageed["max_epochs"], imageed["lr"], imageed["batch_size"]) == (3, 1.5e-4, 64)
    assert imageed["lr_min"] == 1e-6  # the shared trainer definition fills the rest
    teacher = section_settings("edg.teacher")["trainer"]
    assert (teacher["lr"], teacher["batch_size"]) == (5e-3, 128)
    assert section_settings("train.trainer")["lr"] == 5e-4


def test_representation_engine_must_be_computed():
    config = demo_config()
    config["density"]["engines"] = ["xtb"]
    with pytest.raises(ConfigError, match="'voxels.engine'"):
        validate(config, SCHEMA, workdir=REPO)


def test_unknown_engine_key_is_named_with_the_allowed_ones():
    config = demo_config()
    config["density"]["psi4"]["basiss"] = "sto-3g"
    with pytest.raises(ConfigError) as info:
        validate(config, SCHEMA, workdir=REPO)
    message = str(info.value)
    assert "unknown config key 'density.psi4.basiss' (allowed: basis, box_edge_bohr," in message
    assert "spacing_bohr" in message  # keys of $defs/density_engine are allowed too
    assert message.count("config key") == 1


def test_wrong_type_in_an_engine_section_is_named_once():
    with pytest.raises(ConfigError) as info:
        section_settings("density.pyscf", {"spacing_bohr": "fine"})
    assert "config key 'density.pyscf.spacing_bohr': 'fine' is not of type 'number'" in str(
        info.value
    )
    assert "unknown" not in str(info.value)


def schema_defaults(path: str) -> dict:
    """The defaults written in the schema for a section, read without the validator."""
    sub = section_schema(path, SCHEMA)
    properties = dict(sub["properties"])
    if "$ref" in sub:
        properties = {**SCHEMA["$defs"][sub["$ref"].rsplit("/", 1)[1]]["properties"], **properties}
    return {key: prop["default"] for key, prop in properties.items()}


def settings_the_cli_hands_on(monkeypatch, module, name: str, argv: list[str]) -> dict:
    """The settings a ``rhoflow`` command passes to the library function ``module.name``."""
    from rhoflow import cli

    seen = {}

    def record(*args, **kwargs):
        seen.update(next(a for a in args if isinstance(a, dict)))
        return []

    monkeypatch.setattr(module, name, record)
    assert cli.main(argv) == 0
    return seen


def density_settings(monkeypatch, engine: str, given: dict) -> dict:
    from rhoflow.density import shard

    argv = ["density", "--engine", engine, "--settings", json.dumps(given), "in.parquet",
            "out.zarr", "out.tsv"]  # fmt: skip
    return settings_the_cli_hands_on(monkeypatch, shard, "build_density_shard", argv)


def representation_settings(monkeypatch, section: str, given: dict) -> dict:
    import importlib

    argv = [section, "--settings", json.dumps(given), "in.zarr", "out.zarr"]
    module = importlib.import_module(f"rhoflow.{section}")
    return settings_the_cli_hands_on(monkeypatch, module, "build_shard", argv)


@pytest.mark.parametrize("engine", ["psi4", "pyscf", "xtb"])
def test_engine_defaults_are_filled_through_the_shared_definitions(engine, monkeypatch):
    filled = section_settings(f"density.{engine}", {})
    assert filled == schema_defaults(f"density.{engine}")
    assert filled["spacing_bohr"] == 0.4 and filled["timeout_s"] == 3600.0  # from $defs
    assert density_settings(monkeypatch, engine, {}) == filled


def test_defaults_are_filled_through_ref_and_all_of():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"shared": {"type": "object", "properties": {"a": {"default": 1}}}},
        "type": "object",
        "properties": {
            "stage": {
                "type": "object",
                "default": {},
                "$ref": "#/$defs/shared",
                "allOf": [{"properties": {"b": {"type": "integer", "default": 2}}}],
                "unevaluatedProperties": False,
                "properties": {"c": {"default": [3]}},
            }
        },
    }
    assert section_settings("stage", {}, schema) == {"a": 1, "b": 2, "c": [3]}
    with pytest.raises(ConfigError, match=r"unknown config key 'stage.d' \(allowed: a, b, c\)"):
        section_settings("stage", {"d": 4}, schema)
    given = {"b": 5}
    assert section_settings("stage", given, schema) == {"a": 1, "b": 5, "c": [3]}
    assert given == {"b": 5}  # not modified


@pytest.mark.parametrize("section", ["voxels", "pointclouds"])
def test_representations_get_the_schema_defaults_less_the_engine(section, monkeypatch):
    defaults = {k: v for k, v in schema_defaults(section).items() if k != "engine"}
    assert representation_settings(monkeypatch, section, {}) == defaults


def test_a_partial_section_gets_the_defaults_the_workflow_fills(monkeypatch):
    """What a rule receives (the config section filled on load) equals what the command hands
    the library from the same partial section given by hand."""
    config = demo_config()
    config["voxels"] = {"engine": "psi4", "resolution_angstrom": 1.0}
    config["pointclouds"] = {"engine": "psi4", "n_points": 16}
    given = copy.deepcopy(config)
    validate(config, SCHEMA, workdir=REPO)
    for engine in ("psi4", "pyscf", "xtb"):
        filled = density_settings(monkeypatch, engine, given["density"][engine])
        assert filled == config["density"][engine]
    for section in ("voxels", "pointclouds"):
        partial = {k: v for k, v in given[section].items() if k != "engine"}
        filled = {k: v for k, v in config[section].items() if k != "engine"}
        assert representation_settings(monkeypatch, section, partial) == filled
    assert section_settings("render", given["render"]) == config["render"]


def test_cli_fills_a_partial_section(monkeypatch, tmp_path):
    from rhoflow import cli, shards

    seen = {}

    def fake_build_shards(sources, inputs, shard_size, filter_settings, outdir, workers):
        seen.update(shard_size=shard_size, filter=filter_settings)
        return []

    monkeypatch.setattr(shards, "build_shards", fake_build_shards)
    argv = ["shards", "--sources", "[]", "--settings", '{"shard_size": 3}', "--outdir",
            str(tmp_path), "in.smi"]
    assert cli.main(argv) == 0
    assert seen == {"shard_size": 3, "filter": section_settings("shards")["filter"]}


def test_config_command_prints_the_filled_config(tmp_path, capsys):
    from rhoflow import cli

    sources = [{"name": "demo", "format": "smiles", "path": str(REPO / "config.yaml")}]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"sources": sources}))
    assert cli.main(["config", str(tmp_path / "config.yaml")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["density"]["pyscf"] == section_settings("density.pyscf")
    assert printed["render"]["size"] == 224
    assert printed["train"]["sources"] == ["demo"]


def test_validation_imports_no_heavy_module():
    """The Snakefile validates the config at parse time, on every cluster job: no array, ML or
    chemistry library may be imported for it."""
    heavy = ["zarr", "xarray", "dask", "torch", "pyscf", "psi4", "rdkit", "numpy", "pandas",
             "scipy", "pyarrow", "pymol"]
    code = (
        "import json, sys, yaml\n"
        "from rhoflow.config import load_schema, validate\n"
        f"config = yaml.safe_load(open({str(REPO / 'config.yaml')!r}))\n"
        f"validate(config, load_schema(), workdir={str(REPO)!r})\n"
        "assert config['density']['psi4']['spacing_bohr'] == 0.4\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={"PYTHONPATH": str(REPO / "src")})
    imported = set(json.loads(proc.stdout))
    assert imported.isdisjoint(heavy), sorted(imported & set(heavy))
