"""The import contracts of ``pyproject.toml`` (``[tool.importlinter]``) hold, and they bite: a
copy of the package with a forbidden import fails them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(package_root: Path, *contracts: str) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts (all, or the ids ``contracts``) on the
    ``rhoflow`` package found in ``package_root``."""
    limit = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *limit, str(REPO / "pyproject.toml")],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(package_root)), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


def test_the_package_keeps_its_import_contracts():
    done = lint_imports(REPO / "src")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("train/__init__.py", "import rhoflow.edg", "trainer-without-methods"),
        ("train/__init__.py", "import rhoflow.edg", "layers"),
        ("models/__init__.py", "import rhoflow.train", "models-without-trainer"),
        ("voxels.py", "import rhoflow.config", "completed-settings"),
        ("voxels.py", "import rhoflow.density", "layers"),  # stages are independent
        ("store/reader.py", "import rhoflow.store.dataset", "no-circles"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract):
    shutil.copytree(REPO / "src" / "rhoflow", tmp_path / "rhoflow")
    assert lint_imports(tmp_path, contract).returncode == 0  # kept before the edit
    path = tmp_path / "rhoflow" / module
    path.write_text(path.read_text() + f"\n{line}  # forbidden\n")
    done = lint_imports(tmp_path, contract)
    assert done.returncode == 1 and "BROKEN" in done.stdout, done.stdout + done.stderr
