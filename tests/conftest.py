"""Shared test helpers: the repo root, the shared data folder, and a snakemake runner."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or skip the test when the folder is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


FAST_CONFORMERS = {
    "method": "etkdg",
    "n_conformers": 2,
    "k_lowest": 1,
    "reoptimize": "none",
    "threads": 1,
}
"""A conformers config section that keeps workflow tests quick."""


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The venv's snakemake on the project's Snakefile in ``workdir``, plus ``args``."""
    exe = Path(sys.executable).with_name("snakemake")
    return [str(exe), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]


def snakemake_env() -> dict[str, str]:
    """Environment for rules that call `python`: the one of this venv, as after
    `source .venv/bin/activate`."""
    return dict(
        os.environ,
        PYTHONPATH=str(REPO / "src"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` with the venv's snakemake."""
    cmd = snakemake_command(workdir, *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=snakemake_env(), timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


TINY_IDS = ("t:h2o", "t:empty", "t:h2co")


RUN_RECORDS = frozenset({"effective_config", "runtimes"})
"""Rules that follow every change by design: the effective config (any setting) and the run
times per stage (any job)."""


def planned_rules(workdir: Path, config: dict) -> set[str]:
    """Rules a dry run would execute after writing ``config``; without the :data:`RUN_RECORDS`
    when other jobs rerun too (the rules a change reruns are the point of these checks)."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(workdir, "--cores", "1", "--dry-run")
    table = proc.stdout.split("Job stats:")[-1]
    rules = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", table, re.M)} - {"total"}
    return rules - RUN_RECORDS if rules - RUN_RECORDS - {"all"} else rules


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real density shard store (pyscf RHF/STO-3G, density + ESP on a 0.4-bohr grid with
    3 bohr overage) of water and formaldehyde, with ``t:empty`` between them: water's atoms
    with an all-zero density, which no point cloud can be drawn from."""
    import dataclasses

    import numpy as np

    from rhoflow.config import section_settings
    from rhoflow.density import iter_shard
    from rhoflow.molecule import Molecule
    from rhoflow.result import Grid
    from rhoflow.store import write_store

    def mol(mol_id: str, numbers: list[int], coords: list[list[float]]) -> Molecule:
        return Molecule(mol_id, "", 0, 1, np.array(numbers), "", np.array(coords, dtype=float))

    water = mol("t:h2o", [8, 1, 1], [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])
    h2co = mol(
        "t:h2co", [6, 8, 1, 1], [[0, 0, -0.53], [0, 0, 0.67], [0, 0.94, -1.11], [0, -0.94, -1.11]]
    )
    given = {"method": "hf", "basis": "sto-3g", "spacing_bohr": 0.4, "overage_bohr": 3.0}
    settings = section_settings("density.pyscf", given)
    results = list(iter_shard("pyscf", [water, h2co], settings, workers=1, threads=1))
    assert all(hasattr(r, "density") for r in results), results
    empty = dataclasses.replace(
        results[0],
        id="t:empty",
        density=Grid(
            results[0].density.origin_bohr,
            results[0].density.spacing_bohr,
            np.zeros_like(results[0].density.values),
        ),
    )
    path = tmp_path_factory.mktemp("tiny") / "tiny-00000.zarr"
    write_store(path, [results[0], empty, results[1]])
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two conformer-table shards of 40 real molecules (RDKit + MMFF94, labelled with their
    MMFF94 energy; tests/test_train.py), their source-labels table and a 24 / 8 / 8 split."""
    from test_train import SMILES, mmff_molecule

    from rhoflow.config import section_settings
    from rhoflow.labels import build_labels
    from rhoflow.molecule import write_molecules
    from rhoflow.splits import build_splits

    root = tmp_path_factory.mktemp("train_data")
    molecules = [mmff_molecule(i, s) for i, s in enumerate(SMILES)]
    tables = [root / "t-00000.parquet", root / "t-00001.parquet"]
    write_molecules(tables[0], molecules[:20])
    write_molecules(tables[1], molecules[20:])
    build_labels(root / "labels.parquet", [], tables)
    fractions = section_settings("splits", {"fractions": [0.6, 0.2, 0.2]})
    build_splits(tables, root / "split.parquet", "t", "smiles", fractions)
    return {"tables": tables, "labels": root / "labels.parquet", "split": root / "split.parquet"}
