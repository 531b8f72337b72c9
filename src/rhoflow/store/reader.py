"""Read one shard store: molecules by id or position, as xarray DataArrays or Grids.

Everything goes through zarr itself (layout: :mod:`rhoflow.store.layout`). Opening reads the
consolidated metadata and the small per-molecule tables (ids, grid geometry, atoms; a few
hundred kB per 1,000 molecules); a grid read then touches only the inner chunks of the value
array that hold that molecule.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from rhoflow.result import DensityResult, Grid
from rhoflow.store.layout import FIELDS, FORMAT, FORMAT_VERSION, LONG_NAMES, UNITS
from rhoflow.zarrgroup import IncompleteStoreError, open_finished_group

__all__ = ["IncompleteStoreError", "ShardStore", "open_store"]


def _check_field(field: str) -> None:
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}; stores hold {FIELDS}")


TABLES: tuple[str, ...] = (
    "ids",
    "meta",
    "atom_offset",
    "atomic_numbers",
    "coords",
    "grid_shape",
    "grid_origin",
    "grid_spacing",
    "point_offset",
    "has_esp",
)


class ShardStore:
    """One finished shard store, opened read-only. Use :func:`open_store`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        group = open_finished_group(self.path, FORMAT)
        version = group.attrs.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{self.path}: format version {version}, this rhoflow reads {FORMAT_VERSION} "
                "(rebuild the store: snakemake --forcerun density_<engine>)"
            )
        self.attrs: dict[str, Any] = dict(group.attrs)
        tables = {name: np.asarray(group[name][...]) for name in TABLES}
        self.shape: np.ndarray = tables["grid_shape"]  # [n, 3]
        self.origin: np.ndarray = tables["grid_origin"]  # [n, 3] bohr
        self.spacing: np.ndarray = tables["grid_spacing"]  # [n, 3] bohr
        self.atom_offset: np.ndarray = tables["atom_offset"]  # [n + 1]
        self.offsets: np.ndarray = tables["point_offset"]  # [n + 1]
        self.has_esp: np.ndarray = tables["has_esp"]  # [n]
        self.ids: list[str] = [str(x) for x in tables["ids"].tolist()]
        self._meta = tables["meta"]
        self._atoms = (tables["atomic_numbers"], tables["coords"])
        self._values = {field: group[field] for field in FIELDS}

    # ------------------------------------------------------------------------- lookups

    def __len__(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"ShardStore({str(self.path)!r}, molecules={len(self)})"

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {mol_id: i for i, mol_id in enumerate(self.ids)}

    def __contains__(self, mol_id: object) -> bool:
        return mol_id in self._positions

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def position(self, mol_id: str) -> int:
        """Position of ``mol_id`` in this shard (``KeyError`` if absent)."""
        try:
            return self._positions[mol_id]
        except KeyError:
            raise KeyError(f"{mol_id!r} is not in {self.path}") from None

    def _pos(self, key: str | int) -> int:
        if isinstance(key, int | np.integer):
            pos = int(key)
            if not 0 <= pos < len(self):
                raise IndexError(f"position {pos} out of range for {len(self)} molecules")
            return pos
        return self.position(key)

    def metadata(self, key: str | int) -> dict[str, Any]:
        """``{"provenance", "labels", "checks"}`` of one molecule (labels in Hartree)."""
        return json.loads(str(self._meta[self._pos(key)]))

    def all_metadata(self) -> list[dict[str, Any]]:
        """Metadata of every molecule, in position order."""
        return [json.loads(str(text)) for text in self._meta]

    def atoms(self, key: str | int) -> tuple[np.ndarray, np.ndarray]:
        """``(atomic_numbers [n_atoms], coords_bohr [n_atoms, 3])`` of one molecule."""
        pos = self._pos(key)
        lo, hi = self.atom_offset[pos], self.atom_offset[pos + 1]
        numbers, coords = self._atoms
        return numbers[lo:hi].astype(np.int64), coords[lo:hi].copy()

    def has(self, key: str | int, field: str) -> bool:
        """Whether the molecule has values for ``field`` (ESP is optional)."""
        _check_field(field)
        return field == "density" or bool(self.has_esp[self._pos(key)])

    # --------------------------------------------------------------------------- values

    def values(self, key: str | int, field: str = "density") -> np.ndarray:
        """The float32 grid values [nx, ny, nz] (units: ``UNITS[field]``), as the engine gave
        them."""
        pos = self._pos(key)
        if not self.has(pos, field):
            raise KeyError(f"{self.ids[pos]!r} has no {field} in {self.path}")
        lo, hi = int(self.offsets[pos]), int(self.offsets[pos + 1])
        return self._values[field][lo:hi].reshape(tuple(int(n) for n in self.shape[pos]))

    def grid(self, key: str | int, field: str = "density") -> Grid:
        """One molecule's field as a :class:`Grid` (origin and spacing in bohr)."""
        pos = self._pos(key)
        return Grid(
            origin_bohr=self.origin[pos].copy(),
            spacing_bohr=self.spacing[pos].copy(),
            values=self.values(pos, field),
        )

    def get(self, key: str | int, field: str = "density") -> xr.DataArray:
        """One molecule's field as a DataArray with dims (x, y, z), coordinates in bohr and
        attrs: id, field, units, origin/spacing (bohr), provenance, labels, checks."""
        pos = self._pos(key)
        grid = self.grid(pos, field)
        meta = self.metadata(pos)
        axes = grid.axes_bohr()
        coords = {
            dim: xr.Variable(dim, axis, attrs={"units": "bohr"})
            for dim, axis in zip("xyz", axes, strict=True)
        }
        return xr.DataArray(
            grid.values,
            dims=("x", "y", "z"),
            coords=coords,
            name=field,
            attrs={
                "id": self.ids[pos],
                "field": field,
                "long_name": LONG_NAMES[field],
                "units": UNITS[field],
                "origin_bohr": grid.origin_bohr.tolist(),
                "spacing_bohr": grid.spacing_bohr.tolist(),
                "provenance": meta["provenance"],
                "labels": meta["labels"],
                "checks": meta["checks"],
                "shard": str(self.path),
                "position": pos,
            },
        )

    def esp(self, key: str | int) -> xr.DataArray:
        """The electrostatic potential (hartree/e) as :meth:`get` returns it."""
        return self.get(key, "esp")

    def result(self, key: str | int) -> DensityResult:
        """Rebuild the full :class:`DensityResult` of one molecule."""
        pos = self._pos(key)
        numbers, coords = self.atoms(pos)
        meta = self.metadata(pos)
        return DensityResult(
            id=self.ids[pos],
            atomic_numbers=numbers,
            coords_bohr=coords,
            density=self.grid(pos, "density"),
            esp=self.grid(pos, "esp") if self.has(pos, "esp") else None,
            labels=meta["labels"],
            checks=meta["checks"],
            provenance=meta["provenance"],
        )


def open_store(path: str | Path) -> ShardStore:
    """Open one finished shard store; raises :class:`IncompleteStoreError` for anything
    without the completion marker (temporary or killed writes, other directories)."""
    return ShardStore(path)
