"""The workflow end to end through snakemake: outputs, summary, and what reruns on change."""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import threading

import pytest
import yaml
from conftest import FAST_CONFORMERS, REPO, planned_rules, run_snakemake, snakemake_command

from rhoflow.ledger import read_ledger
from rhoflow.molecule import read_molecules

pytestmark = pytest.mark.workflow

SMILES = """\
O water
C=O formaldehyde
CO methanol
C1CC( broken
[NH4+] ammonium
"""


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    (workdir / "mols.smi").write_text(SMILES)
    config = {
        "sources": [{"name": "t", "format": "smiles", "path": "mols.smi", "filter": True}],
        "shards": {"shard_size": 2, "threads": 1},
        "conformers": {
            "method": "etkdg",
            "n_conformers": 4,
            "k_lowest": 1,
            "reoptimize": "none",
            "threads": 1,
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(workdir, "--cores", "2")
    return workdir, config


def test_outputs_and_summary(workflow_run):
    workdir, _ = workflow_run
    results = workdir / "results"
    tables = sorted((results / "conformers").glob("*.parquet"))
    assert [t.stem for t in tables] == ["t-00000", "t-00001", "t-00002"]
    ids = [m.id for t in tables for m in read_molecules(t)]
    assert ids == ["t:water", "t:formaldehyde", "t:methanol"]
    for t in tables:
        for m in read_molecules(t):
            assert m.coords_angstrom.shape == (m.n_atoms, 3)
    reasons = {r.reason for r in read_ledger(results / "shards" / "ledger.tsv")}
    assert reasons == {"invalid_smiles", "filtered_charge"}
    summary = (results / "summary" / "stages.tsv").read_text()
    assert "shards\tmolecules\tout\t3" in summary
    assert "conformers\tmolecules\tout\t3" in summary
    assert "shards\tfailure\tinvalid_smiles\t1" in summary
    for rule_log in ["shards.log", "summary.log", "conformers/t-00000.log"]:
        assert (workdir / "logs" / rule_log).exists()


def test_nothing_to_do_after_a_complete_run(workflow_run):
    workdir, config = workflow_run
    assert planned_rules(workdir, config) == set()


def test_changing_a_stage_setting_reruns_that_stage_and_downstream_only(workflow_run):
    workdir, config = workflow_run
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["conformers"]["seed"] = 7
    assert planned_rules(workdir, changed) == {"conformers", "summary", "all"}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def test_changing_shard_settings_reruns_shards_and_everything_after(workflow_run):
    workdir, config = workflow_run
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["shards"]["filter"] = {"max_heavy_atoms": 1}
    # jobs after a checkpoint are only known once it has run: the dry run shows the checkpoint
    assert planned_rules(workdir, changed) == {"shards", "summary", "splits", "all"}
    table = workdir / "results/conformers/t-00000.parquet"
    before = table.stat().st_mtime_ns
    run_snakemake(workdir, "--cores", "2")
    assert table.stat().st_mtime_ns > before
    ids = [m.id for m in read_molecules(table)]
    assert ids == ["t:water"]  # formaldehyde (2 heavy atoms) is now filtered out
    summary = (workdir / "results/summary/stages.tsv").read_text()
    assert "shards\tfailure\tfiltered_heavy_atoms\t2" in summary


def test_lint_is_clean():
    proc = run_snakemake(REPO, "--lint", check=False)
    assert proc.returncode == 0 and "Lints for" not in proc.stdout + proc.stderr, proc.stdout


def test_source_path_may_be_an_http_url(tmp_path):
    """A source URL is fetched by snakemake's http storage plugin (served here on loopback)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "mols.smi").write_text("O water\nC=O formaldehyde\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        workdir = tmp_path / "wd"
        workdir.mkdir()
        url = f"http://127.0.0.1:{server.server_address[1]}/mols.smi"
        config = {
            "sources": [{"name": "web", "format": "smiles", "path": url}],
            "conformers": FAST_CONFORMERS,
        }
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        run_snakemake(workdir, "--cores", "1", "--until", "shards")
    finally:
        server.shutdown()
    molecules = read_molecules(workdir / "results/shards/web-00000.parquet")
    assert [m.id for m in molecules] == ["web:water", "web:formaldehyde"]


def test_rules_run_with_the_python_that_runs_snakemake(tmp_path):
    """`.venv/bin/snakemake` without an activated venv: no `python` of the venv on PATH, no
    PYTHONPATH; the rules still find the venv's Python (before: `python: command not found`
    or another Python without the packages, in a rule log only)."""
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"sources": [{"name": "w", "format": "smiles",
                                     "path": str(REPO / "resources/demo/molecules.smi")}]})
    )  # fmt: skip
    env = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        snakemake_command(tmp_path, "--cores", "1", "--until", "shards"),
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_molecules(tmp_path / "results/shards/w-00000.parquet")


def test_missing_packages_stop_the_run_naming_them(monkeypatch):
    from rhoflow import environment
    from rhoflow.config import load_schema, validate

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, load_schema(), workdir=REPO)
    needed = environment.required_modules(config)  # the demo: engines, render, training
    assert {"tqdm", "pyscf", "xtb", "pymol", "torch", "lightning"} <= set(needed)
    environment.check_environment(config)  # this venv has them all
    monkeypatch.setattr(environment, "TRAIN", (*environment.TRAIN, "rhoflow_no_such_package"))
    lacks = "lacks rhoflow_no_such_package.*make env"
    with pytest.raises(environment.MissingPackages, match=lacks):
        environment.check_environment(config)
    config["train"]["targets"], config["edg"]["pretrain"] = [], None  # no training planned
    environment.check_environment(config)


CONDA_MODULES = {"pyyaml": "yaml", "pytorch": "torch", "pytorch_geometric": "torch_geometric",
                 "xtb-python": "xtb", "xtb": "xtb (program)", "pymol-open-source": "pymol",
                 "google-crc32c": "google_crc32c"}  # fmt: skip
"""conda-forge package → the module it provides, where the names differ."""
CONDA_PYPI = {"pytorch": "torch", "pytorch_geometric": "torch-geometric", "xtb-python": "xtb",
              "xtb": None, "pymol-open-source": None, "python": None}  # fmt: skip
"""conda-forge package → its PyPI name in requirements.txt, where they differ (None: not there;
conda's `xtb` is the program, PyPI's `xtb` is xtb-python; PyPI's PyMOL is a separately
versioned wheel build)."""


def rule_envs() -> dict[str, str]:
    """Each rule (or rule family of a loop) → the env file of its `conda:` directive."""
    envs = {}
    for path in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule |checkpoint |    rule:)", path.read_text()):
            name = re.match(r"\s*(?:rule|checkpoint)\s*(\w*)", block)
            env = re.search(r"conda:\s*\n\s*f?\"\.\./\.\./(envs/[^\"]+)\"", block)
            if name and env:
                envs[name.group(1) or path.stem] = env.group(1).replace("{engine}", "*")
    return envs


def test_every_rule_has_a_pinned_conda_forge_env_with_its_modules():
    """envs/*.yaml parse, use conda-forge only, pin every package (to requirements.txt's
    major.minor where both have it; psi4 >= 1.7), and hold the modules the rules import."""
    from rhoflow.environment import CORE, ENGINES, TRAIN

    pins = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().split()
                if "==" in line)  # fmt: skip
    pins = {k.lower().replace("_", "-"): v for k, v in pins.items()}
    needs = {"core": CORE, "conformers": (*CORE, "pyscf", "xtb"), "render": (*CORE, "pymol"),
             "train": (*CORE, *TRAIN), **{e: (*CORE, *ENGINES[e]) for e in ENGINES}}  # fmt: skip
    used = {"core", "conformers", "*", "render", "train"}  # "*": density_{engine}
    assert set(rule_envs().values()) == {f"envs/{name}.yaml" for name in used}
    assert {p.stem for p in (REPO / "envs").glob("*.yaml")} == set(needs)
    for name, modules in needs.items():
        env = yaml.safe_load((REPO / f"envs/{name}.yaml").read_text())
        assert env["channels"] == ["conda-forge", "nodefaults"], name
        provided = set()
        for dep in env["dependencies"]:
            if isinstance(dep, dict):  # pip: exact pins
                assert all("==" in d for d in dep["pip"]), (name, dep)
                provided |= {d.split("==")[0].replace("-", "_") for d in dep["pip"]}
                continue
            if dep == "pip":
                continue
            package, _, version = dep.partition("=")
            assert re.fullmatch(r"\d+(\.\d+)+", version), (name, dep)
            pypi = CONDA_PYPI.get(package, package)
            if pypi is not None and pypi.replace("_", "-") in pins:
                pinned = [int(x) for x in pins[pypi.replace("_", "-")].split(".")]
                assert pinned[:2] == [int(x) for x in version.split(".")][:2], (name, dep)
            provided.add(CONDA_MODULES.get(package, package))
        if name == "psi4":
            version = next(d for d in env["dependencies"] if str(d).startswith("psi4="))
            assert tuple(map(int, version[5:].split("."))) >= (1, 7)
        assert set(modules) <= provided, (name, set(modules) - provided)
