"""Which Python packages a workflow run needs, checked when the Snakefile is parsed.

Without per-rule conda envs, every rule runs ``python -m rhoflow`` with the Python that runs
Snakemake (its ``bin`` goes first on the jobs' ``PATH``: ``.venv/bin/snakemake`` works without
activating the venv). That Python must have the packages of the rules the config plans; a
missing one stops the run before any job with a message that says what to do, instead of a
``CalledProcessError`` whose cause is only in a rule log. Cheap: ``find_spec``, no imports.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Mapping
from typing import Any

CORE = ("numpy", "scipy", "pandas", "pyarrow", "yaml", "jsonschema", "tqdm", "rdkit", "zarr",
        "numcodecs", "xarray", "dask", "distributed", "matplotlib")  # fmt: skip
"""Modules every run's rules import (shards, conformers, store, splits, labels, summary and
the report's figures)."""
TRAIN = ("torch", "torch_geometric", "lightning", "torchmetrics", "matplotlib")
ENGINES = {"psi4": (), "pyscf": ("pyscf",), "xtb": ("xtb",)}
"""Python modules of each density engine (psi4 runs as a program, Debian's or conda's)."""


class MissingPackages(RuntimeError):
    """The Python that would run the rules lacks packages they import."""


def required_modules(config: Mapping[str, Any]) -> list[str]:
    """The top-level modules the rules of a (validated) ``config`` import."""
    needed = list(CORE)
    if config["dask"]["scheduler"] == "slurm":
        needed.append("dask_jobqueue")
    for engine in config["density"]["engines"]:
        needed += ENGINES[engine]
    if config["conformers"]["reoptimize"] in ("auto", "mindo3"):
        needed.append("pyscf")
    if config["render"]["engine"] is not None or config["edg"]["pretrain"] is not None:
        needed.append("pymol")
    if config["train"]["targets"] or config["edg"]["pretrain"] is not None:
        needed += TRAIN
    return list(dict.fromkeys(needed))


def missing_modules(names: Iterable[str]) -> list[str]:
    """The modules of ``names`` this Python cannot import (found without importing them)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def check_environment(config: Mapping[str, Any]) -> None:
    """Raise :class:`MissingPackages` when this Python lacks a module the config's rules
    import, naming them and what to do."""
    missing = missing_modules(required_modules(config))
    if missing:
        raise MissingPackages(
            f"the Python running Snakemake ({sys.executable}) runs the rules but lacks "
            f"{', '.join(missing)}. Use the project's environment: `make env`, then "
            "`.venv/bin/snakemake ...` (or activate .venv first); or give every rule its conda "
            "env with `--sdm conda`."
        )
