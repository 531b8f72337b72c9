"""Read one shard store: molecules by id or position, as xarray DataArrays or Grids.

Opening reads the small per-molecule tables (ids, grid geometry, encodings, atoms; a few
hundred kB per 1,000 molecules); a grid read then touches only the inner chunks of the value
array that hold that molecule. Layout: :mod:`rhoflow.store.layout`.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr
import zarr.api.asynchronous
from zarr.core.sync import sync as zsync

from rhoflow.result import DensityResult, Grid
from rhoflow.store import codec
from rhoflow.store.layout import FIELDS, FORMAT, FORMAT_VERSION, LONG_NAMES, UNITS
from rhoflow.store.shardio import DirectReader, array_metadata, read_table


class IncompleteStoreError(ValueError):
    """The path is not a finished density store (no ``complete: true`` marker)."""


def _field_index(field: str) -> int:
    try:
        return FIELDS.index(field)
    except ValueError:
        raise ValueError(f"unknown field {field!r}; stores hold {FIELDS}") from None


TABLES: tuple[str, ...] = (
    "ids",
    "meta",
    "atom_offset",
    "atomic_numbers",
    "coords",
    "grid_shape",
    "grid_origin",
    "grid_spacing",
    "encoding",
    "word_offset",
)
READABLE_VERSIONS = (1, FORMAT_VERSION)
"""Format versions this reader opens (version 1 had no ``word_offset``: one word per point)."""


def _check_attrs(path: Path, attrs: dict[str, Any]) -> None:
    if attrs.get("format") != FORMAT:
        raise IncompleteStoreError(f"{path}: not a {FORMAT} (attributes {sorted(attrs)})")
    if attrs.get("complete") is not True:
        raise IncompleteStoreError(f"{path}: store is incomplete (no completion marker)")
    if attrs.get("format_version") not in READABLE_VERSIONS:
        raise ValueError(
            f"{path}: format version {attrs.get('format_version')}, "
            f"this rhoflow reads {READABLE_VERSIONS}"
        )


def _tables(attrs: dict[str, Any]) -> tuple[str, ...]:
    return TABLES if attrs.get("format_version") != 1 else TABLES[:-1]


Loaded = tuple[dict[str, Any], dict[str, np.ndarray], dict[str, DirectReader | None]]


def _load_direct(path: Path) -> Loaded | None:
    """Root attributes, tables and value-array readers by plain file reads
    (:mod:`rhoflow.store.shardio`); None if any array is not laid out as the writer does."""
    try:
        root = array_metadata(path)
    except FileNotFoundError as exc:
        raise IncompleteStoreError(f"{path}: not a density store ({exc})") from exc
    except (NotADirectoryError, ValueError):
        return None
    if root.get("node_type") != "group" or root.get("zarr_format") != 3:
        return None
    attrs = dict(root.get("attributes") or {})
    _check_attrs(path, attrs)
    tables: dict[str, np.ndarray] = {}
    for name in _tables(attrs):
        table = read_table(path / name, array_metadata(path / name))
        if table is None:
            return None
        tables[name] = table
    readers = {
        name: DirectReader.from_metadata(path / name, array_metadata(path / name))
        for name in FIELDS
    }
    if any(reader is None for reader in readers.values()):
        return None
    return attrs, tables, readers


async def _load_zarr(
    path: Path,
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, zarr.Array]]:
    """The same through zarr, concurrently in one trip through zarr's event loop."""
    try:
        group = await zarr.api.asynchronous.open_group(store=str(path), mode="r", zarr_format=3)
    except (FileNotFoundError, NotADirectoryError, zarr.errors.GroupNotFoundError) as exc:
        raise IncompleteStoreError(f"{path}: not a density store ({exc})") from exc
    attrs = dict(group.attrs)
    _check_attrs(path, attrs)
    names = _tables(attrs)
    nodes = await asyncio.gather(*(group.getitem(name) for name in names + FIELDS))
    data = await asyncio.gather(*(node.getitem(...) for node in nodes[: len(names)]))
    tables = {name: np.asarray(d) for name, d in zip(names, data, strict=True)}
    arrays = {
        name: zarr.Array(node) for name, node in zip(FIELDS, nodes[len(names) :], strict=True)
    }
    return attrs, tables, arrays


class ShardStore:
    """One finished shard store, opened read-only. Use :func:`open_store`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        direct = _load_direct(self.path)
        arrays: dict[str, zarr.Array] = {}
        if direct is not None:
            attrs, tables, readers = direct
        else:
            attrs, tables, arrays = zsync(_load_zarr(self.path))
            readers = {field: DirectReader.for_array(array) for field, array in arrays.items()}
        self.attrs: dict[str, Any] = attrs
        self.shape: np.ndarray = tables["grid_shape"]  # [n, 2, 3]
        self.origin: np.ndarray = tables["grid_origin"]
        self.spacing: np.ndarray = tables["grid_spacing"]
        self.encoding: np.ndarray = tables["encoding"]
        self.atom_offset: np.ndarray = tables["atom_offset"]
        self.ids: list[str] = [str(x) for x in tables["ids"].tolist()]
        self._meta = tables["meta"]
        self._atoms = (tables["atomic_numbers"], tables["coords"])
        if "word_offset" in tables:
            self.offsets: np.ndarray = tables["word_offset"].astype(np.int64)  # [n + 1, 2]
        else:  # format version 1: one word per grid point
            sizes = np.prod(self.shape.astype(np.int64), axis=2)
            self.offsets = np.zeros((len(sizes) + 1, len(FIELDS)), dtype=np.int64)
            np.cumsum(sizes, axis=0, out=self.offsets[1:])
        self._values = arrays  # zarr arrays, used only where no direct reader applies
        self._direct = readers

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
        return bool(np.prod(self.shape[self._pos(key), _field_index(field)]) > 0)

    # --------------------------------------------------------------------------- values

    def words(self, field: str, lo: int, hi: int) -> np.ndarray:
        """Encoded words ``[lo, hi)`` of a value array (plain file reads when the layout is the
        writer's own, see :mod:`rhoflow.store.shardio`, else through zarr)."""
        direct = self._direct[field]
        if direct is not None:
            return direct.read(lo, hi)
        return self._values[field][lo:hi]

    def values(self, key: str | int, field: str = "density") -> np.ndarray:
        """The float32 grid values [nx, ny, nz] (units: ``UNITS[field]``), bit-exact."""
        pos = self._pos(key)
        f = _field_index(field)
        shape = tuple(int(n) for n in self.shape[pos, f])
        if math.prod(shape) == 0:
            raise KeyError(f"{self.ids[pos]!r} has no {field} in {self.path}")
        lo, hi = int(self.offsets[pos, f]), int(self.offsets[pos + 1, f])
        words = self.words(field, lo, hi)
        return codec.decode(words, int(self.encoding[pos, f]), shape)  # type: ignore[arg-type]

    def grid(self, key: str | int, field: str = "density") -> Grid:
        """One molecule's field as a :class:`Grid` (origin and spacing in bohr)."""
        pos = self._pos(key)
        f = _field_index(field)
        return Grid(
            origin_bohr=self.origin[pos, f].copy(),
            spacing_bohr=self.spacing[pos, f].copy(),
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

    def map(self, fn: Any, field: str = "density", partition_size: int = 100) -> Any:
        """Dask bag of ``fn(DataArray)`` over every molecule (see
        :meth:`rhoflow.store.dataset.Dataset.map`)."""
        from rhoflow.store.dataset import Dataset

        return Dataset.from_shards([self.path]).map(fn, field, partition_size)


def open_store(path: str | Path) -> ShardStore:
    """Open one finished shard store; raises :class:`IncompleteStoreError` for anything
    without the completion marker (temporary or killed writes, other directories)."""
    return ShardStore(path)
