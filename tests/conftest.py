"""Shared test helpers: the repo root, the shared data folder, and a snakemake runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or skip the test when the folder is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` with the venv's snakemake."""
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    # rules call `python`: the one of this venv, as after `source .venv/bin/activate`
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO / "src"),
        PATH=f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
