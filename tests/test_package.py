"""rhoflow as a wheel, outside the checkout: the schema ships inside the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_install_fills_a_config_outside_the_checkout(tmp_path):
    project, wheels = tmp_path / "project", tmp_path / "wheels"
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # a copy of what the wheel is built from: no build/ or egg-info of the checkout's own
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(project)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("rhoflow-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    config = elsewhere / "config.yaml"
    molecules = REPO / "resources" / "demo" / "molecules.smi"
    config.write_text(f"sources: [{{name: demo, format: smiles, path: {molecules}}}]\n")

    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import rhoflow.config as c; print(c.__file__)"],
        check=True, cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(target)  # the wheel's, not the checkout's
    done = subprocess.run(
        [sys.executable, "-m", "rhoflow", "config", str(config)],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    filled = json.loads(done.stdout)
    assert filled["density"]["psi4"]["spacing_bohr"] == 0.4  # a schema default
    assert filled["train"]["trainer"]["lr"] == 5e-4
