"""Gaussian cube interop: export one molecule's grid, import external cube pairs.

Cube text carries six significant digits (``E13.5``). Values imported from cubes are the
float32 images of those decimals; the store keeps them bit-exactly, so import → export →
import reproduces the identical float32 values and export writes the same numbers the source
cube had. Exporting
grids computed natively in float32 rounds them to six digits: that is the cube format's
precision, not the store's. Origins, spacings and atom positions are written with six decimals
(bohr) by :func:`rhoflow.cube.write_cube`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rhoflow.cube import read_cube, write_cube
from rhoflow.ledger import LedgerRow
from rhoflow.molecule import check_id
from rhoflow.result import DensityResult
from rhoflow.store.dataset import Dataset
from rhoflow.store.layout import UNITS
from rhoflow.store.reader import ShardStore, open_store
from rhoflow.store.writer import StoreWriter

IMPORT_ENGINE = "cube-import"
IMPORT_STAGE = "density"

DENSITY_SUFFIXES = ("_Dt.cube", "_density.cube", ".dens.cube")
ESP_SUFFIXES = ("_ESP.cube", "_esp.cube", ".esp.cube")


def _resolve(store: ShardStore | Dataset | str | Path, mol_id: str) -> tuple[ShardStore, int]:
    if isinstance(store, Dataset):
        return store.shard_store(mol_id)
    shard = store if isinstance(store, ShardStore) else open_store(store)
    return shard, shard.position(mol_id)


def export_cube(
    store: ShardStore | Dataset | str | Path,
    mol_id: str,
    out_path: str | Path,
    field: str = "density",
) -> Path:
    """Write one molecule's ``field`` ("density" in e/bohr^3 or "esp" in hartree/e) with its
    atoms as a Gaussian cube file (bohr), atomically. Returns ``out_path``."""
    shard, pos = _resolve(store, mol_id)
    grid = shard.grid(pos, field)
    numbers, coords = shard.atoms(pos)
    prov = shard.metadata(pos)["provenance"]
    engine = " ".join(str(prov.get(k, "")) for k in ("engine", "engine_version")).strip()
    detail = ", ".join(f"{k}={prov[k]}" for k in ("method", "basis") if k in prov)
    comment = f"{mol_id} {field} ({UNITS[field]}) from rhoflow store\n{engine} {detail}"
    write_cube(out_path, numbers, coords, grid, comment=comment)
    return Path(out_path)


def _comments(path: Path) -> list[str]:
    with open(path) as fh:
        return [fh.readline().rstrip("\n"), fh.readline().rstrip("\n")]


def cube_id(path: str | Path) -> str:
    """Molecule id from a cube file name: ``Mol1_Dt.cube`` → ``Mol1``."""
    name = Path(path).name
    for suffix in DENSITY_SUFFIXES + ESP_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def find_cube_pairs(directory: str | Path) -> list[tuple[Path, Path | None]]:
    """``(density cube, ESP cube or None)`` pairs in ``directory`` by EDBench-style names
    (``<id>_Dt.cube`` + ``<id>_ESP.cube``), sorted by file name."""
    root = Path(directory)
    pairs = []
    for dens in sorted(p for s in DENSITY_SUFFIXES for p in root.glob(f"*{s}")):
        mol = cube_id(dens)
        esp = next(
            (root / f"{mol}{s}" for s in ESP_SUFFIXES if (root / f"{mol}{s}").exists()), None
        )
        pairs.append((dens, esp))
    return pairs


def _cube_result(density_path: Path, esp_path: Path | None, mol_id: str) -> DensityResult:
    numbers, coords, density = read_cube(density_path)
    density.values = density.values.astype(np.float32)
    sources: dict[str, Any] = {"density": density_path.name}
    comments = {"density": _comments(density_path)}
    esp = None
    if esp_path is not None:
        esp_numbers, esp_coords, esp = read_cube(esp_path)
        if not np.array_equal(esp_numbers, numbers) or not np.allclose(
            esp_coords, coords, atol=1e-5
        ):
            raise ValueError(f"{esp_path.name}: atoms differ from {density_path.name}")
        if esp.values.shape != density.values.shape or not np.allclose(
            [esp.origin_bohr, esp.spacing_bohr],
            [density.origin_bohr, density.spacing_bohr],
            atol=1e-6,
        ):
            raise ValueError(f"{esp_path.name}: grid differs from {density_path.name}")
        esp.values = esp.values.astype(np.float32)
        sources["esp"] = esp_path.name
        comments["esp"] = _comments(esp_path)
    return DensityResult(
        id=mol_id,
        atomic_numbers=numbers,
        coords_bohr=coords,
        density=density,
        esp=esp,
        provenance={
            "engine": IMPORT_ENGINE,
            "source_files": sources,
            "cube_comments": comments,
        },
    )


def import_cubes(
    pairs: Iterable[tuple[str | Path, str | Path | None]],
    out_store: str | Path,
    *,
    ids: Iterable[str] | None = None,
    skip_invalid: bool = False,
    **writer_options: Any,
) -> list[LedgerRow]:
    """Bring external cube files into one shard store at ``out_store``.

    ``pairs`` yields ``(density cube, ESP cube or None)``; ids come from ``ids`` or the
    density file names (:func:`cube_id`). Each molecule gets provenance
    ``{"engine": "cube-import", "source_files": {...}, "cube_comments": {...}}``. With
    ``skip_invalid`` unreadable or mismatched cubes, and file names that make no valid molecule
    id (:data:`rhoflow.molecule.ID_PATTERN`: no spaces, shell or path characters), are skipped
    and returned as ledger rows (reason ``engine_error``); otherwise the first one raises and no
    store appears. ``writer_options`` go to :class:`StoreWriter`.
    """
    failures: list[LedgerRow] = []
    id_iter = iter(ids) if ids is not None else None
    with StoreWriter(out_store, **writer_options) as writer:
        for dens, esp in pairs:
            density_path = Path(dens)
            mol_id = next(id_iter) if id_iter is not None else cube_id(density_path)
            error: Exception | None = None
            try:  # an unreadable input or a bad name; an OSError writing the store propagates
                result = _cube_result(density_path, Path(esp) if esp else None, check_id(mol_id))
            except (OSError, ValueError) as exc:
                error = exc
            else:
                try:
                    writer.add(result)
                except ValueError as exc:  # refused, nothing written: a duplicate id, Z > 255
                    error = exc
            if error is not None:
                if not skip_invalid:
                    raise error
                failures.append(LedgerRow(mol_id, IMPORT_STAGE, "engine_error", str(error)))
    return failures
