"""The cluster path without a cluster: `snakemake --profile slurm` through fake SLURM commands
(tests/fake_slurm) that run each job here and record its submission; then what a config change
reruns (dry runs on the completed workflow) and what appending molecules runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import FAST_CONFORMERS, REPO, planned_rules, run_snakemake

pytestmark = pytest.mark.workflow

FAKE_SLURM = Path(__file__).resolve().parent / "fake_slurm" / "fake_slurm.py"
COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "srun", "sacctmgr")
MODEL_RULES = {"train_property", "imageed", "imageed_features", "teacher", "teacher_features",
               "train_edg"}  # fmt: skip
"""The rules with envs/train.yaml (test_model_rules_and_only_they_take_the_profile_gpu)."""
SMILES = ["O", "C", "N", "CO", "C=O", "CC"]
SIZE = 32
CONFIG = {
    "sources": [{"name": "t", "format": "smiles", "path": "mols.smi"}],
    "shards": {"shard_size": 6, "threads": 1},
    "conformers": FAST_CONFORMERS,
    "density": {
        "engines": ["psi4"], "threads": 1, "workers": 1,
        "psi4": {"method": "hf", "basis": "sto-3g", "spacing_bohr": 0.5, "overage_bohr": 3.0},
    },
    "voxels": {"engine": "psi4"},
    "pointclouds": {"engine": "psi4", "n_points": 32},
    "render": {"engine": "psi4", "size": SIZE},
    "splits": {"counts": [4, 1, 1]},
    "train": {
        "labels": "psi4", "targets": ["gap_hartree"],
        "models": {"schnet": {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1,
                              "num_gaussians": 8}},
        "trainer": {"max_epochs": 1, "batch_size": 4, "progress_bar": False},
    },
    "edg": {
        "pretrain": "t",
        "imageed": {"size": "tiny", "trainer": {"max_epochs": 1, "batch_size": 4}},
        "teacher": {"trainer": {"max_epochs": 1, "batch_size": 4}},
        "lambda_sweep": [0.1],
    },
}  # fmt: skip
"""The demo's stages at test size: one shard of real molecules, psi4 densities, every
representation, one model, EDG (PyMOL images of the densities → ImageED → teacher → students at
two λ)."""


def fake_slurm_env(workdir: Path) -> dict[str, str]:
    """PATH with the fake SLURM commands first, then this venv; their state under workdir."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    for command in COMMANDS:
        wrapper = bin_dir / command
        wrapper.write_text(f'#!/bin/sh\nexec python3 "{FAKE_SLURM}" {command} "$@"\n')
        wrapper.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    return dict(os.environ, PATH=path, FAKE_SLURM_DIR=str(workdir / "slurm"))


def test_profile_is_found_by_name_from_the_checkout():
    """`snakemake --profile slurm` as typed: Snakemake looks for a named profile in the current
    directory first, where the checkout's `slurm` link points at profiles/slurm."""
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), "--profile", "slurm", "-n"], cwd=REPO, text=True,
                          capture_output=True, env=fake_slurm_env_dry(), timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^shards\s+1$", proc.stdout, re.M)


def fake_slurm_env_dry() -> dict[str, str]:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    """The workflow through `--profile` (profiles/slurm as shipped, but for quicker status
    polls and one thread per job on this small machine) and the fake SLURM commands."""
    workdir = tmp_path_factory.mktemp("slurm")
    (workdir / "mols.smi").write_text("".join(f"{s} m{i}\n" for i, s in enumerate(SMILES)))
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    submitted = dict(profile)
    profile.update({"slurm-init-seconds-before-status-checks": 1,
                    "seconds-between-status-checks": 1, "latency-wait": 5, "jobs": 4,
                    "set-threads": {rule: 1 for rule in profile["set-threads"]}})  # fmt: skip
    (workdir / "profile").mkdir()
    (workdir / "profile/config.yaml").write_text(yaml.safe_dump(profile))
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    env = fake_slurm_env(workdir)
    proc = slurm_snakemake(workdir, env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return workdir, env, submitted


def slurm_snakemake(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--profile", str(workdir / "profile"), *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def submissions(workdir: Path) -> list[dict]:
    lines = (workdir / "slurm/submissions.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_every_job_was_submitted_with_its_rules_resources(slurm_run):
    workdir, _, profile = slurm_run
    results = workdir / "results"
    assert (results / "edg/imageed/reconstructions.png").stat().st_size
    table = (results / "tables/t_properties.md").read_text()
    assert "| schnet | 1 |" in table and "| edg-schnet | 1 |" in table
    assert "| Δ % edg-schnet | – |" in table
    sweep = (results / "tables/t_edg_lambda.md").read_text()
    assert "| 0.1 | edg-schnet |" in sweep and "| 1 | edg-schnet |" in sweep
    assert (results / "summary/stages.md").exists()
    stats = json.loads((results / "density/psi4/stats.json").read_text())
    index = pd.read_parquet(results / "density/psi4/index.parquet")
    assert stats["molecules"] == len(index) > 0 and stats["shards"] == 1
    assert stats["mismatched"] == [] and stats["electron_count_errors"] == []
    jobs = submissions(workdir)
    rules = {job["comment"].removeprefix("rule_").split("_wildcards_")[0] for job in jobs}
    assert MODEL_RULES | {"shards", "conformers", "density_psi4", "store_index", "render",
                          "summary", "evaluate_property"} <= rules  # fmt: skip
    for job in jobs:
        rule = job["comment"].removeprefix("rule_").split("_wildcards_")[0]
        options = job["options"]
        assert options["-t"] and options["--mem"], rule  # always a wall time and memory
        if rule in profile["set-resources"]:  # the profile's, memory at attempt 1
            wanted = profile["set-resources"][rule]
            assert options["-t"] == str(wanted["runtime"]), rule
            assert options["--mem"] == str(wanted["mem_mb"]).split("*")[0].strip(), rule
            if "cpus_per_task" in wanted:
                assert options["--cpus-per-task"] == str(wanted["cpus_per_task"]), rule
        assert options["-A"] == "rhoflow-test"  # the account the fake sacct reports
        gpus = options.get("--gpus") or options.get("--gres")
        if rule in MODEL_RULES:
            assert gpus in ("1", "gpu:1"), (rule, options)
        else:
            assert gpus is None, (rule, options)


def test_a_second_run_submits_nothing(slurm_run):
    workdir, env, _ = slurm_run
    before = len(submissions(workdir))
    proc = slurm_snakemake(workdir, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert len(submissions(workdir)) == before


def test_model_rules_and_only_they_take_the_profile_gpu():
    """Every rule with the training env (present and future methods) asks for the profile's
    model GPU, and no other rule does: one setting, no list of rules to keep in sync."""
    for path in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule |checkpoint |    rule:)", path.read_text())[1:]:
            assert ("envs/train.yaml" in block) == ("**MODEL_GPU" in block), (path, block[:80])


def changed(**sections) -> dict:
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    for section, values in sections.items():
        for key, value in values.items():
            target = config.setdefault(section, {})
            *parents, leaf = key.split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = value
    return config


@pytest.mark.parametrize(
    ("change", "reruns"),
    [
        # the isosurface: rendering and what depends on it (ImageED, teacher, EDG students)
        ({"render": {"iso_level": 0.02}},
         {"render", "render_structures", "render_gallery", "imageed", "imageed_features",
          "teacher", "teacher_features", "train_edg", "evaluate_property", "evaluate_lambda"}),
        # the psi4 basis: psi4 densities and their dependants, not conformers
        ({"density": {"psi4.basis": "3-21g"}},
         {"density_psi4", "store_index", "store_stats", "labels", "density_slices", "voxels",
          "pointclouds", "render", "render_gallery", "imageed", "imageed_features",
          "teacher", "teacher_features", "train_property", "train_edg", "evaluate_property",
          "evaluate_lambda"}),
        # one model's learning rate: that model's runs and its tables only
        ({"train": {"model_trainer": {"schnet": {"lr": 3e-3}}}},
         {"train_property", "train_edg", "evaluate_property", "evaluate_lambda"}),
        # λ: the students and the tables; the teacher's epochs: the teacher and what follows
        ({"edg": {"lambda": 0.5}}, {"train_edg", "evaluate_property", "evaluate_lambda"}),
        ({"edg": {"teacher.trainer.max_epochs": 2}},
         {"teacher", "teacher_features", "train_edg", "evaluate_property", "evaluate_lambda"}),
    ],
)  # fmt: skip
def test_a_change_reruns_what_it_affects_and_nothing_upstream(slurm_run, change, reruns):
    workdir, _, _ = slurm_run
    try:
        planned = planned_rules(workdir, changed(**change)) - {"all", "summary"}
    finally:
        (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    assert planned == reruns


def test_appending_molecules_runs_only_the_new_shard(slurm_run):
    """Appending to a source reruns the shards checkpoint; its unchanged shard tables come out
    byte-identical, so Snakemake's input checksums leave their jobs alone: the plan holds
    per-shard jobs of the new shard only (and the dataset-wide ones: index, labels, splits and
    what trains on them)."""
    workdir, _, _ = slurm_run
    with open(workdir / "mols.smi", "a") as fh:
        fh.write("CCO m6\n")
    run_snakemake(workdir, "--cores", "1", "--until", "shards")
    assert (workdir / "results/shards/t-00001.parquet").exists()
    dry = run_snakemake(workdir, "--cores", "1", "--dry-run").stdout
    shards = set(re.findall(r"output: \S*?(t-\d{5})", dry))
    assert shards == {"t-00001"}, dry[-3000:]
    assert re.search(r"^conformers\s+1$", dry, re.M) and re.search(r"^render\s+1$", dry, re.M)
