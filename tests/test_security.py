"""Hostile names at every boundary: molecule ids and file names carrying shell metacharacters
(``$(…)``, backticks, ``;``, ``|``, ``&&``), spaces, ``../`` and PyMOL's command separator
``;`` are refused or made safe wherever they enter rhoflow — source records (SMILES, SD and XYZ
files), cube import, ``rhoflow render export``, ``cube export``, ``rhoflow predict``, the rules'
wildcards and the config's source names — and no injected command ever runs: no file is created
by one, and no output lands outside the folder it was asked for. Plus a scan of ``src/`` for
the calls that would make untrusted input executable (unpickling, shell strings, ``eval``,
PyMOL command strings)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import FIXTURES, REPO, run_snakemake, snakemake_env
from rdkit import Chem
from rdkit.Chem import AllChem

from rhoflow.cli import main
from rhoflow.config import ConfigError, section_settings, validate
from rhoflow.ledger import read_ledger
from rhoflow.molecule import ID_PATTERN, read_molecules
from rhoflow.render import export_gallery, open_images
from rhoflow.shards import build_shards
from rhoflow.store import open_store
from rhoflow.zarrgroup import MoleculeGroupWriter

HOSTILE = ["$(touch pwned)", "`touch pwned`", "a;touch pwned", "a|touch pwned",
           "a&&touch pwned", "a b", "../../escape", "x/../../y"]  # fmt: skip
"""Names an attacker would give a molecule or a file."""
UNSAFE = re.compile(r"[$`;|&\s/()]|\.\.")


def no_injection(*folders: Path) -> None:
    """No file an injected ``touch pwned`` would create, in any of ``folders`` or here."""
    for folder in (*folders, Path.cwd()):
        assert not [p for p in folder.rglob("*pwned*") if p.name.startswith("pwned")], folder


def inside(folder: Path, paths: list[Path]) -> bool:
    root = folder.resolve()
    return all(p.resolve().is_relative_to(root) for p in paths)


# ---------------------------------------------------------------------------- sources


def test_hostile_record_names_and_file_names_give_safe_ids(tmp_path):
    smi = tmp_path / "in $(touch pwned);x.smi"
    smi.write_text("".join(f"C {name}\n" for name in HOSTILE) + "O water\n")
    blocks = []
    for name in HOSTILE:
        mol = Chem.MolFromSmiles("N")
        mol.SetProp("_Name", name)
        blocks.append(Chem.MolToMolBlock(mol) + "$$$$\n")
    sdf = tmp_path / "in `touch pwned`.sdf"
    sdf.write_text("".join(blocks))
    xyz = tmp_path / "$(touch pwned) a;b|c&&d.xyz"
    xyz.write_text("3\n\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    sources = [{"name": n, "format": n} for n in ("smiles", "sdf", "xyz")]
    out = tmp_path / "out dir"
    filters = section_settings("shards")["filter"]
    build_shards(sources, [smi, sdf, xyz], 100, filters, out)

    ids = {s["name"]: [m.id for m in read_molecules(out / f"{s['name']}-00000.parquet")]
           for s in sources}  # fmt: skip
    assert read_ledger(out / "ledger.tsv") == []
    assert all(ID_PATTERN.match(i) and not UNSAFE.search(i) for v in ids.values() for i in v)
    # a hostile name falls back to the line number (SMILES: the name is the second column,
    # "a b" names the molecule "a") or the record index (SD); a file stem is cleaned (XYZ)
    assert ids["smiles"] == [f"smiles:{i}" for i in range(1, 6)] + [
        "smiles:a", "smiles:7", "smiles:8", "smiles:water",
    ]  # fmt: skip
    assert ids["sdf"] == [f"sdf:{i}" for i in range(len(HOSTILE))]
    assert ids["xyz"] == ["xyz:touch_pwned__a_b_c__d-0"]
    no_injection(tmp_path)


def test_hostile_source_names_fail_config_validation_naming_the_key(tmp_path):
    """rhoflow.config.validate, which the Snakefile runs when it loads, before any job
    (tests/test_config.py::test_snakemake_rejects_bad_config_before_any_job)."""
    (tmp_path / "mols.smi").write_text("O water\n")
    for name in HOSTILE:
        config = {"sources": [{"name": name, "format": "smiles", "path": "mols.smi"}]}
        with pytest.raises(ConfigError, match=r"config key 'sources\[0\]\.name'"):
            validate(config, workdir=tmp_path)
    no_injection(tmp_path)


@pytest.mark.workflow
def test_a_hostile_source_path_reaches_the_shards_job_as_one_word(tmp_path):
    """The shards rule's shell command gets the source file (and every path) quoted: a file
    name full of shell syntax is read, never run."""
    path = "mols $(touch pwned) ; touch pwned2 | cat && `touch pwned3`.smi"
    (tmp_path / path).write_text("O water\nC=O $(touch pwned4)\n")
    config = {"sources": [{"name": "t", "format": "smiles", "path": path}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, "--cores", "1", "results/shards")
    ids = [m.id for m in read_molecules(tmp_path / "results/shards/t-00000.parquet")]
    assert ids == ["t:water", "t:2"]
    no_injection(tmp_path)


def test_rule_wildcards_refuse_hostile_values(tmp_path):
    """No rule output matches a path whose wildcard holds a hostile value, so no job is ever
    asked to write one (snakemake's own matching, every rule and output of the Snakefile)."""
    (tmp_path / "mols.smi").write_text("O water\n")
    config = {"sources": [{"name": "t", "format": "smiles", "path": "mols.smi"}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    probe = f"""
import json, re
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.io import apply_wildcards
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
benign = dict(shard="t-00000", source="t", engine="pyscf", model="schnet",
              target="gap_hartree", seed="0", lam="1.0", mode="density+gradient",
              fraction="0.05", representation="images", embedding="latent",
              trajectory="md17_ethanol", variant="ndem", sweep="lambda", value="0.1")
rows = []
with SnakemakeApi(OutputSettings(quiet=None)) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(),
        snakefile=Path({str(REPO / "Snakefile")!r}), workdir=Path({str(tmp_path)!r}),
    )._workflow
    for rule in workflow.rules:
        for output in rule.products():
            names = set(re.findall(r"\\{{(\\w+)", str(output))) & set(rule.wildcard_names)
            rows.append([rule.name, "", "", rule.is_producer(apply_wildcards(str(output), benign))])
            for name in sorted(names):
                for value in {HOSTILE!r}:
                    path = apply_wildcards(str(output), {{**benign, name: value}})
                    rows.append([rule.name, name, value, rule.is_producer(path)])
print(json.dumps(rows))
"""
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=snakemake_env(),
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(produces for _, name, _, produces in rows if not name)  # the probe works
    hostile = [r for r in rows if r[1]]
    assert {r[1] for r in hostile} >= {"shard", "source", "engine", "model", "target", "seed"}
    assert [r for r in hostile if r[3]] == []
    no_injection(tmp_path)


# --------------------------------------------------------------- cube import and export


def test_cube_import_refuses_hostile_file_names(tmp_path):
    cubes = tmp_path / "cubes"
    cubes.mkdir()
    good = FIXTURES / "cube" / "Mol1_Dt.cube"
    shutil.copy(good, cubes / "Mol1_Dt.cube")
    for name in ("$(touch pwned)", "`touch pwned`", "a;b", "a|b", "a&&b", "a b", ".."):
        shutil.copy(good, cubes / f"{name}_Dt.cube")
    out = tmp_path / "out $(touch pwned)" / "s;x.zarr"
    ledger = tmp_path / "out $(touch pwned)" / "s;x.ledger.tsv"
    assert main(["cube", "import", "--out", str(out), "--ledger", str(ledger), str(cubes)]) == 0
    assert open_store(out).ids == ["Mol1"]
    rows = read_ledger(ledger)
    assert len(rows) == 7 and all("invalid molecule id" in r.message for r in rows)
    assert inside(tmp_path / "out $(touch pwned)", [out, ledger])
    no_injection(tmp_path)


def image_group(path: Path, ids: list[str]) -> Path:
    """A finished image group (the render stage's format) holding ``ids``, blank images."""
    with MoleculeGroupWriter(path, "rhoflow-images", {}) as writer:
        dims = ("molecule", "view", "channel", "y", "x")
        # small shards: a default shard of 4x4 images would hold ~700,000 rows
        writer.array("density_images", (6, 4, 4, 4), "uint8", dims, "1", shard_rows=16)
        writer.array("structure_images", (4, 3, 4, 4), "uint8", dims, "1", shard_rows=16)
        for mol_id in ids:
            writer.add(mol_id, density_images=np.zeros((6, 4, 4, 4), np.uint8),
                       structure_images=np.zeros((4, 3, 4, 4), np.uint8))  # fmt: skip
    return path


def test_render_and_cube_export_refuse_hostile_ids_and_write_inside_outdir(tmp_path, capsys):
    group = image_group(tmp_path / "images.zarr", ["t:good", *HOSTILE])
    outdir = tmp_path / "png $(touch pwned);x"
    for mol_id in HOSTILE:
        for argv in (
            ["render", "export", str(group), mol_id, str(outdir)],
            ["cube", "export", str(group), mol_id, str(tmp_path / "x.cube")],
        ):
            with pytest.raises(SystemExit) as exited:
                main(argv)
            assert exited.value.code == 2
            assert "invalid molecule id" in capsys.readouterr().err
    assert not outdir.exists() and not (tmp_path / "x.cube").exists()

    assert main(["render", "export", str(group), "t:good", str(outdir)]) == 0
    assert len(list(outdir.iterdir())) == 6 * 2 + 4
    # a crafted group's ids (never valid ids) still make file names inside the folder
    gallery = tmp_path / "gallery"
    export_gallery(group, gallery, n_molecules=len(open_images(group).ids))
    files = list(gallery.iterdir())
    # 9 ids, 6 file stems: t_good touch_pwned a_touch_pwned a_b escape x_.._.._y
    assert inside(gallery, files) and len(files) == (6 * 2 + 4) * 6
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gallery", "images.zarr", "png $(touch pwned);x",
    ]  # fmt: skip
    no_injection(tmp_path)


# ------------------------------------------------------------------------------ predict


SCHNET = {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "num_gaussians": 8}


def untrained_run(run_dir: Path) -> Path:
    """A run directory as rhoflow.train leaves it (config.json, checkpoints/best.ckpt) with an
    untrained tiny SchNet: enough for predict's paths, whatever it predicts."""
    from rhoflow.models import build_model
    from rhoflow.train import PropertyTask, TargetScaler

    settings = section_settings("train.trainer", {"batch_size": 4})
    task = PropertyTask(build_model("schnet", **SCHNET), TargetScaler(), "gap_ev", "eV", settings)
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": task.state_dict()}, run_dir / "checkpoints" / "best.ckpt")
    config = {
        "model": {"name": "schnet", "kwargs": SCHNET},
        "target": {"column": "gap_ev", "unit": "eV"},
        "train": settings,
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


def test_predict_keeps_hostile_names_out_of_ids_and_paths(tmp_path):
    run = untrained_run(tmp_path / "run")
    given = tmp_path / "in $(touch pwned);x"
    given.mkdir()
    sdf = given / "mols `touch pwned` a|b.sdf"
    blocks = []
    for title, smiles in (("$(touch pwned)", "O"), ("ok_name", "C=O"), ("a;touch pwned", "N")):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        mol.SetProp("_Name", title)
        blocks.append(Chem.MolToMolBlock(mol) + "$$$$\n")
    sdf.write_text("".join(blocks))
    out = tmp_path / "out dir" / "p;q && r.csv"
    assert main(["predict", str(run), str(sdf), str(out)]) == 0
    rows = pd.read_csv(out, dtype={"id": str}, keep_default_na=False)
    assert list(rows["id"]) == ["0", "ok_name", "2"] and set(rows["status"]) == {"ok"}
    assert sorted(p.name for p in (tmp_path / "out dir").iterdir()) == ["p;q && r.csv"]
    no_injection(tmp_path)


# ------------------------------------------------------------------------ the code itself


FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "joblib"}
FORBIDDEN_CALLS = {
    "os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput", "eval",
    "exec", "pd.read_pickle", "pandas.read_pickle", "yaml.unsafe_load",
}  # fmt: skip


def _is_constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Where ``source`` could run untrusted data: imports of pickle and its kin, ``torch.load``
    without ``weights_only=True``, ``shell=`` anything but False, ``os.system`` and friends,
    ``eval`` / ``exec``, ``allow_pickle=True``, ``yaml.load`` with an unsafe loader and PyMOL
    ``cmd.do`` with a built (not literal) command string."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
            if node.module == "torch" and any(a.name == "load" for a in node.names):
                found.append(f"{where}: from torch import load")
        else:
            modules = []
        if any(m.split(".")[0] in FORBIDDEN_MODULES for m in modules):
            found.append(f"{where}: imports {modules}")
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        kwargs = {k.arg: k.value for k in node.keywords}
        if func in FORBIDDEN_CALLS:
            found.append(f"{where}: {func}()")
        if "shell" in kwargs and not _is_constant(kwargs["shell"], False):
            found.append(f"{where}: {func}(shell=...)")
        if func == "torch.load" and not _is_constant(kwargs.get("weights_only"), True):
            found.append(f"{where}: torch.load without weights_only=True")
        if _is_constant(kwargs.get("allow_pickle"), True):
            found.append(f"{where}: {func}(allow_pickle=True)")
        if func == "yaml.load":
            loader = ast.unparse(kwargs["Loader"]) if "Loader" in kwargs else "the default"
            if loader.split(".")[-1] in ("Loader", "FullLoader", "UnsafeLoader", "the default"):
                found.append(f"{where}: yaml.load with {loader}")
        literal = len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
        if func.endswith("cmd.do") and not literal:
            found.append(f"{where}: PyMOL cmd.do with a built command string")
    return found


def test_the_scan_finds_what_it_looks_for():
    bad = """
import pickle
from dill import loads
from torch import load
import torch, os, subprocess, yaml, numpy as np
torch.load(p)
torch.load(p, weights_only=False)
subprocess.run(cmd, shell=True)
os.system("ls")
eval(text)
np.load(p, allow_pickle=True)
yaml.load(text, Loader=yaml.FullLoader)
cmd.do(f"load {path}")
pymol.cmd.do("color red, " + name)
"""
    assert len(unsafe_calls(bad)) == 12, unsafe_calls(bad)  # every line but the plain import
    good = """
import torch, subprocess, yaml
torch.load(p, map_location="cpu", weights_only=True)
subprocess.run(["psi4", "-n", "1"], shell=False)
yaml.load(text, Loader=yaml.CSafeLoader)
model.eval()
cmd.do("set ray_opaque_background, 0")
"""
    assert unsafe_calls(good) == []


def test_src_has_no_unpickling_shell_strings_eval_or_pymol_command_strings():
    sources = sorted((REPO / "src").rglob("*.py"))
    assert len(sources) > 50
    found = [f for path in sources for f in unsafe_calls(path.read_text(), str(path))]
    assert found == []
    workflow = [REPO / "Snakefile", *sorted((REPO / "workflow").rglob("*.smk"))]
    pattern = re.compile(r"\bimport pickle\b|\bos\.system\(|shell=True|\beval\(")
    assert [str(p) for p in workflow if pattern.search(p.read_text())] == []
