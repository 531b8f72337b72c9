"""Zarr v3 groups as every rhoflow stage writes them: atomic, sharded, consolidated, complete.

One job writes one group, under a hidden temporary sibling (:func:`rhoflow.io.atomic_path`):

1. :func:`create_group` opens the group with its ``format`` attributes;
2. arrays are created with ``dimension_names`` and a ``units`` attribute (so ``xarray.open_zarr``
   opens every group), per-molecule arrays through the Zarr v3 **sharding codec**: many
   molecules per file, one inner chunk per molecule (or per block of values), located through the
   shard's index, so any zarr implementation reads one molecule with one inner-chunk read;
   :class:`RowAppender` appends rows and writes only whole shards (zarr then never
   read-modifies-writes a shard file);
3. :func:`finish_group` sets ``complete: true`` (written last) and consolidates the metadata
   into the root ``zarr.json``: a reader opens a group with one file read, and files that are not
   part of the hierarchy (Snakemake's ``.snakemake_timestamp`` in ``directory()`` outputs) are
   never listed, so opening raises no warnings.

Readers open groups with :func:`open_finished_group`, which refuses anything without the
completion marker (a killed write, a foreign directory).

Every array uses one codec chain from the Zarr v3 specification: Blosc (zstd level 5, byte
shuffle), readable by zarr-python, zarrs, tensorstore and zarr.js alike (measured against zstd,
bit-shuffle and pcodec in ``benchmarks/store_formats.py``).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec


class IncompleteStoreError(ValueError):
    """The path is not a finished group of the expected format (no ``complete: true``)."""


SHARD_BYTES = 1 << 28
"""Target uncompressed bytes of one shard file (256 MiB): a writer buffers one shard per
array, and 1,000 molecules of any representation fit in a few shard files."""


def compressor() -> BloscCodec:
    """The lossless codec of every array: Blosc(zstd level 5, byte shuffle)."""
    return BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")


def create_group(path: str | Path, attributes: dict[str, Any]) -> zarr.Group:
    """A new Zarr v3 group at ``path`` (normally a temporary path) with ``attributes``."""
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update(attributes)
    return group


def table(
    group: zarr.Group,
    name: str,
    data: np.ndarray,
    dims: tuple[str, ...],
    units: str | None = "1",
    **attributes: Any,
) -> zarr.Array:
    """Write a small array (one chunk) named ``name`` with ``dimension_names=dims``; numeric
    arrays get a ``units`` attribute ("1" for counts, indices and flags)."""
    is_text = data.dtype.kind in "UO"
    if units is not None and not is_text:
        attributes = {"units": units, **attributes}
    array = group.create_array(
        name,
        shape=data.shape,
        dtype=str if is_text else data.dtype,
        chunks=tuple(max(1, n) for n in data.shape),
        compressors="auto" if is_text else compressor(),
        dimension_names=dims,
        attributes=attributes,
    )
    if data.size:
        array[...] = data
    return array


MAX_SHARD_ROWS = 8192
"""Most rows (inner chunks) per shard file: a shard's index holds one entry per inner chunk,
and zarr writes every entry of a shard it writes, so tiny rows (a feature vector of a few
numbers) would otherwise make shards of millions of mostly empty chunks (measured: 44 s to
write 90 six-number rows with 11 M-row shards, 0.1 s capped)."""


def rows_per_shard(row_shape: tuple[int, ...], dtype: Any, target_bytes: int = SHARD_BYTES) -> int:
    """Rows (molecules) per shard file so a shard holds about ``target_bytes`` uncompressed,
    at most :data:`MAX_SHARD_ROWS`."""
    row_bytes = max(1, math.prod(row_shape) * np.dtype(dtype).itemsize)
    return max(1, min(MAX_SHARD_ROWS, target_bytes // row_bytes))


def sharded_array(
    group: zarr.Group,
    name: str,
    row_shape: tuple[int, ...],
    dtype: Any,
    dims: tuple[str, ...],
    units: str,
    *,
    rows_per_chunk: int = 1,
    shard_rows: int | None = None,
    fill_value: Any = 0,
    encoding: dict[str, Any] | None = None,
    **attributes: Any,
) -> zarr.Array:
    """An empty array ``[0, *row_shape]`` that grows along axis 0 (one row per molecule, or per
    value for 1-D arrays): inner chunks of ``rows_per_chunk`` rows, shards of ``shard_rows``
    rows (default :func:`rows_per_shard`), compressed with :func:`compressor` unless
    ``encoding`` (``create_array``'s ``compressors`` / ``serializer``) says otherwise."""
    if shard_rows is None:
        shard_rows = rows_per_shard(row_shape, dtype)
    shard_rows = max(rows_per_chunk, shard_rows // rows_per_chunk * rows_per_chunk)
    return group.create_array(
        name,
        shape=(0, *row_shape),
        dtype=dtype,
        chunks=(rows_per_chunk, *row_shape),
        shards=(shard_rows, *row_shape),
        fill_value=fill_value,
        dimension_names=dims,
        attributes={"units": units, **attributes},
        **(encoding or {"compressors": compressor()}),
    )


class RowAppender:
    """Appends rows along axis 0 of a sharded array through a one-shard buffer: only whole
    shards are written until :meth:`close` writes the last, partial one. Memory: one shard."""

    def __init__(self, array: zarr.Array) -> None:
        self.array = array
        self.shard_rows = int(array.shards[0]) if array.shards else int(array.chunks[0])
        self.buffer = np.empty((self.shard_rows, *array.shape[1:]), dtype=array.dtype)
        self.filled = 0
        self.written = 0

    def push(self, rows: np.ndarray) -> None:
        """Append ``rows`` [k, *row_shape] (k may exceed a shard)."""
        pos = 0
        while pos < len(rows):
            n = min(self.shard_rows - self.filled, len(rows) - pos)
            self.buffer[self.filled : self.filled + n] = rows[pos : pos + n]
            self.filled += n
            pos += n
            if self.filled == self.shard_rows:
                self._write()

    def _write(self) -> None:
        end = self.written + self.filled
        self.array.resize((end, *self.array.shape[1:]))
        self.array[self.written : end] = self.buffer[: self.filled]
        self.written = end
        self.filled = 0

    def close(self) -> int:
        """Write what is buffered; returns the rows written in all."""
        if self.filled:
            self._write()
        return self.written


def finish_group(path: str | Path, group: zarr.Group) -> None:
    """Mark ``group`` (at ``path``) complete, last, and consolidate its metadata."""
    group.attrs["complete"] = True
    with warnings.catch_warnings():
        # consolidated metadata is zarr-python's convention for v3 (read by xarray, zarrs);
        # other readers ignore it and list the arrays themselves
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(str(path))


def open_finished_group(path: str | Path, fmt: str | tuple[str, ...]) -> zarr.Group:
    """Open a finished group of format ``fmt`` read-only; :class:`IncompleteStoreError` for a
    missing path, another format or a group without the completion marker."""
    formats = (fmt,) if isinstance(fmt, str) else fmt
    try:
        group = zarr.open_group(str(path), mode="r", zarr_format=3)
    except (FileNotFoundError, NotADirectoryError, ValueError, zarr.errors.NodeTypeValidationError,
            zarr.errors.GroupNotFoundError) as exc:
        raise IncompleteStoreError(f"{path}: not a finished rhoflow group ({exc})") from exc
    attrs = group.attrs
    if attrs.get("format") not in formats:
        raise IncompleteStoreError(f"{path}: format {attrs.get('format')!r}, expected {formats}")
    if attrs.get("complete") is not True:
        raise IncompleteStoreError(f"{path}: incomplete (no completion marker)")
    return group


class GroupWriter:
    """Context manager that writes one group atomically: inside the block :attr:`group` lives
    under a hidden temporary sibling of ``path`` (:func:`rhoflow.io.atomic_path`); on a clean
    exit :meth:`_finish` writes what the subclass buffered, then the group is marked complete,
    consolidated (:func:`finish_group`) and renamed onto ``path``. An exception inside the
    block, or in :meth:`_start` / :meth:`_finish`, removes the temporary group and leaves
    ``path`` untouched; a killed job leaves only the temporary group, which readers refuse."""

    def __init__(self, path: str | Path, attributes: dict[str, Any]) -> None:
        self.path = Path(path)
        self.attributes = attributes
        self.group: zarr.Group | None = None
        self._atomic: Any = None
        self._tmp: Path | None = None

    def _start(self) -> None:
        """Create the arrays the writer appends to (called once the group exists)."""

    def _finish(self) -> None:
        """Write what is buffered (called before the group is completed)."""

    def __enter__(self) -> Any:
        from rhoflow.io import atomic_path

        if self._atomic is not None:
            raise RuntimeError(f"{type(self).__name__} is not reentrant")
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            self.group = create_group(self._tmp, self.attributes)
            self._start()
        except BaseException as exc:
            atomic, self._atomic = self._atomic, None
            atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        atomic, self._atomic = self._atomic, None
        if exc_type is None:
            try:
                self._finish()
                assert self._tmp is not None and self.group is not None
                finish_group(self._tmp, self.group)
            except BaseException as err:
                atomic.__exit__(type(err), err, err.__traceback__)
                raise
        return atomic.__exit__(exc_type, exc, tb)


# --------------------------------------------------------------- per-molecule groups


class MoleculeGroupWriter(GroupWriter):
    """Writes one per-molecule group (the representation format), atomically.

    Root attributes: ``format``, ``format_version``, ``n_molecules``, the caller's attributes
    (``settings``, ``source``, what the arrays hold) and, written last, ``complete: true``.
    Arrays: ``ids`` str [molecule] and each array declared with :meth:`array`, ``[molecule,
    *row_shape]`` with ``dimension_names``, a ``units`` attribute, one molecule per inner chunk
    and :func:`rows_per_shard` molecules per shard file. Row ``k`` of every array belongs to
    ``ids[k]``::

        with MoleculeGroupWriter(out, "rhoflow-voxels", {"settings": s}) as w:
            w.array("voxels", (11, 48, 48, 48), "float16", dims, "see channel_units")
            for mol_id, cube in results:
                w.add(mol_id, voxels=cube)
    """

    FORMAT_VERSION = 2

    def __init__(self, path: str | Path, fmt: str, attributes: dict[str, Any]) -> None:
        super().__init__(
            path, {"format": fmt, "format_version": self.FORMAT_VERSION, **attributes}
        )
        self._appenders: dict[str, RowAppender] = {}
        self.ids: list[str] = []

    def array(
        self,
        name: str,
        row_shape: tuple[int, ...],
        dtype: Any,
        dims: tuple[str, ...],
        units: str,
        **attributes: Any,
    ) -> None:
        """Declare a per-molecule array ``[molecule, *row_shape]``; ``dims`` names every axis,
        starting with ``"molecule"``."""
        assert self.group is not None, "use MoleculeGroupWriter as a context manager"
        if dims[0] != "molecule" or len(dims) != 1 + len(row_shape):
            raise ValueError(f"{name}: dims {dims} must be ('molecule', one per row axis)")
        array = sharded_array(self.group, name, row_shape, dtype, dims, units, **attributes)
        self._appenders[name] = RowAppender(array)

    def add(self, mol_id: str, **rows: np.ndarray) -> None:
        """Append one molecule: one row per declared array."""
        if set(rows) != set(self._appenders):
            raise ValueError(f"{mol_id}: rows for {sorted(rows)}, arrays {sorted(self._appenders)}")
        for name, row in rows.items():
            self._appenders[name].push(np.asarray(row)[None])
        self.ids.append(mol_id)

    def _finish(self) -> None:
        assert self.group is not None
        for appender in self._appenders.values():
            appender.close()
        table(self.group, "ids", np.array(self.ids, dtype=str).reshape(-1), ("molecule",))
        self.group.attrs["n_molecules"] = len(self.ids)


class MoleculeGroup:
    """One finished per-molecule group, read-only: ``group[id]`` → ``{array name: row}``, each
    row one inner-chunk read. Use :func:`open_representation`."""

    def __init__(self, path: str | Path, fmt: str | tuple[str, ...]) -> None:
        self.path = Path(path)
        self.group = open_finished_group(self.path, fmt)
        self.attrs: dict[str, Any] = dict(self.group.attrs)
        self.ids: list[str] = [str(x) for x in self.group["ids"][...].tolist()]
        self._pos = {mol_id: i for i, mol_id in enumerate(self.ids)}
        self.arrays: dict[str, zarr.Array] = {
            name: array for name, array in self.group.arrays() if name != "ids"
        }

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, mol_id: object) -> bool:
        return mol_id in self._pos

    def __repr__(self) -> str:
        return f"MoleculeGroup({str(self.path)!r}, {self.attrs['format']}, molecules={len(self)})"

    def position(self, mol_id: str) -> int:
        """Row of ``mol_id`` (``KeyError`` if absent)."""
        try:
            return self._pos[mol_id]
        except KeyError:
            raise KeyError(f"{mol_id!r} is not in {self.path}") from None

    def read(self, key: str | int, name: str) -> np.ndarray:
        """One molecule's row of array ``name`` (by id or row)."""
        pos = key if isinstance(key, int | np.integer) else self.position(key)
        return np.asarray(self.arrays[name][int(pos)])

    def __getitem__(self, key: str | int) -> dict[str, np.ndarray]:
        return {name: self.read(key, name) for name in self.arrays}


class MoleculeGroups:
    """Several groups of one format (a representation's shards) as one id → row mapping;
    groups open lazily, so a DataLoader worker opens only what it reads."""

    def __init__(self, paths: list[Path], fmt: str | tuple[str, ...]) -> None:
        self.paths = paths
        self.fmt = fmt
        self._open: dict[int, MoleculeGroup] = {}
        self.ids: list[str] = []
        self._where: dict[str, tuple[int, int]] = {}
        for k, path in enumerate(paths):
            group = self._group(k)
            for pos, mol_id in enumerate(group.ids):
                if mol_id in self._where:
                    raise ValueError(f"{mol_id!r} is in {paths[self._where[mol_id][0]]} and {path}")
                self._where[mol_id] = (k, pos)
            self.ids.extend(group.ids)

    def _group(self, k: int) -> MoleculeGroup:
        if k not in self._open:
            self._open[k] = MoleculeGroup(self.paths[k], self.fmt)
        return self._open[k]

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, mol_id: object) -> bool:
        return mol_id in self._where

    @property
    def attrs(self) -> dict[str, Any]:
        """The first group's attributes (channels, units, settings: one representation's)."""
        return self._group(0).attrs

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers: reopen there
        return {**self.__dict__, "_open": {}}

    def locate(self, mol_id: str) -> tuple[MoleculeGroup, int]:
        """The group holding ``mol_id`` and its row there."""
        try:
            k, pos = self._where[mol_id]
        except KeyError:
            raise KeyError(f"{mol_id!r} is in none of {len(self.paths)} groups") from None
        return self._group(k), pos

    def read(self, mol_id: str, name: str) -> np.ndarray:
        group, pos = self.locate(mol_id)
        return group.read(pos, name)

    def __getitem__(self, mol_id: str) -> dict[str, np.ndarray]:
        group, pos = self.locate(mol_id)
        return group[pos]


REPRESENTATION_FORMATS: tuple[str, ...] = (
    "rhoflow-voxels",
    "rhoflow-pointclouds",
    "rhoflow-images",
)


def open_representation(
    source: str | Path | list[str | Path], fmt: str | tuple[str, ...] = REPRESENTATION_FORMATS
) -> MoleculeGroup | MoleculeGroups:
    """Open one representation group (``voxels/<shard>.zarr``, ``pointclouds/…``,
    ``render/…``) or a list of them; ``rep[id]`` gives the molecule's arrays, e.g.
    ``open_representation("results/voxels/demo-00000.zarr")["demo:water"]["voxels"]``."""
    if isinstance(source, str | Path):
        return MoleculeGroup(source, fmt)
    return MoleculeGroups([Path(p) for p in source], fmt)
