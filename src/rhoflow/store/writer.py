"""Stream :class:`DensityResult` objects into one shard store, atomically.

>>> with StoreWriter("results/density/shard-0003.zarr") as store:   # doctest: +SKIP
...     for result in engine_results:
...         store.add(result)

Values are encoded (:mod:`rhoflow.store.codec`) and buffered until a whole value-array shard
can be written, so memory stays at about one shard file per field (``shard_values`` words)
plus one molecule, whatever the number of molecules. Everything is written under a hidden
temporary sibling (``.<name>.tmp-<random>``, see :func:`rhoflow.io.atomic_path`); on a clean
exit the writer writes the small per-molecule tables, sets ``complete: true`` last and
renames the directory onto the target. An exception inside the block removes the temporary
directory and leaves the target untouched; a killed job leaves only the hidden temporary
directory, which has no ``complete`` attribute and which readers refuse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numcodecs
import numpy as np
import zarr

from rhoflow import __version__
from rhoflow.io import atomic_path
from rhoflow.result import DensityResult, Grid
from rhoflow.store import codec
from rhoflow.store.layout import (
    BLOSC_CLEVEL,
    BLOSC_CNAME,
    CHUNK_VALUES,
    FIELDS,
    FORMAT,
    FORMAT_VERSION,
    LONG_NAMES,
    SHARD_VALUES,
    UNITS,
    compressor,
)

DEFAULT_CODES: tuple[int, ...] = (
    codec.FLOAT_L1,
    codec.FLOAT_L2,
    codec.DECIMAL_L1,
    codec.DECIMAL_L2,
    codec.SPLIT_L1,
    codec.SPLIT_L2,
)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in molecule metadata")


def _meta_json(result: DensityResult) -> str:
    meta = {"provenance": result.provenance, "labels": result.labels, "checks": result.checks}
    return json.dumps(meta, sort_keys=True, default=_json_default, allow_nan=True)


class _ValueStream:
    """Appends encoded words to a 1-D sharded uint32 array through a one-shard buffer: only
    whole shards are written (zarr then never re-reads a shard) until :meth:`close` writes the
    last, partial one. Memory: one shard of words."""

    def __init__(self, array: zarr.Array, shard_values: int) -> None:
        self.array = array
        self.shard_values = shard_values
        self.buffer: np.ndarray | None = None
        self.filled = 0
        self.written = 0

    def push(self, words: np.ndarray) -> None:
        pos = 0
        while pos < words.size:
            if self.buffer is None:
                self.buffer = np.empty(self.shard_values, dtype=np.uint32)
            n = min(self.shard_values - self.filled, words.size - pos)
            self.buffer[self.filled : self.filled + n] = words[pos : pos + n]
            self.filled += n
            pos += n
            if self.filled == self.shard_values:
                self._write()

    def _write(self) -> None:
        assert self.buffer is not None
        end = self.written + self.filled
        self.array.resize((end,))
        self.array[self.written : end] = self.buffer[: self.filled]
        self.written = end
        self.filled = 0

    def close(self) -> int:
        if self.filled:
            self._write()
        self.buffer = None
        return self.written


class StoreWriter(AbstractContextManager["StoreWriter"]):
    """Context manager that writes one shard store (layout: :mod:`rhoflow.store.layout`).

    ``shard_values`` words per value-array shard file (default 2**26 = 256 MiB raw; the
    writer's memory is about this much per field), ``chunk_values`` words per inner chunk,
    ``codes`` the encodings to try per molecule and field (the smallest compressed wins; pass
    ``(codec.RAW,)`` to store plain float32 bit patterns), ``clevel`` the zstd level.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        shard_values: int = SHARD_VALUES,
        chunk_values: int = CHUNK_VALUES,
        codes: tuple[int, ...] = DEFAULT_CODES,
        clevel: int = BLOSC_CLEVEL,
    ) -> None:
        if chunk_values <= 0 or shard_values % chunk_values:
            raise ValueError("shard_values must be a positive multiple of chunk_values")
        unknown = set(codes) - set(codec.ENCODINGS)
        if not codes or unknown:
            raise ValueError(f"codes must be a non-empty subset of {sorted(codec.ENCODINGS)}")
        self.path = Path(path)
        self.shard_values = shard_values
        self.chunk_values = chunk_values
        self.codes = tuple(codes)
        self.clevel = clevel
        self._trial = numcodecs.Blosc(BLOSC_CNAME, clevel, numcodecs.Blosc.SHUFFLE)
        self._atomic: AbstractContextManager[Path] | None = None
        self._group: zarr.Group | None = None
        self._streams: dict[str, _ValueStream] = {}
        self._ids: list[str] = []
        self._seen: set[str] = set()
        self._meta: list[str] = []
        self._numbers: list[np.ndarray] = []
        self._coords: list[np.ndarray] = []
        self._shape: list[np.ndarray] = []
        self._words: list[np.ndarray] = []
        self._origin: list[np.ndarray] = []
        self._spacing: list[np.ndarray] = []
        self._encoding: list[np.ndarray] = []

    # ------------------------------------------------------------------ context protocol

    def __enter__(self) -> StoreWriter:
        if self._atomic is not None:
            raise RuntimeError("StoreWriter is not reentrant")
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._group = zarr.open_group(tmp, mode="w", zarr_format=3)
            self._group.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION})
            for name in FIELDS:
                array = self._group.create_array(
                    name,
                    shape=(0,),
                    dtype=np.uint32,
                    chunks=(self.chunk_values,),
                    shards=(self.shard_values,),
                    compressors=compressor(self.clevel),
                    fill_value=0,
                    attributes={
                        "units": UNITS[name],
                        "long_name": LONG_NAMES[name],
                        "decoded_dtype": "float32",
                        "encoding": "see the root 'encodings' attribute and the per-molecule "
                        "'encoding' array; rhoflow.store.codec.decode",
                    },
                )
                self._streams[name] = _ValueStream(array, self.shard_values)
        except BaseException as exc:
            atomic, self._atomic = self._atomic, None
            atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._atomic is not None
        atomic, self._atomic = self._atomic, None
        if exc_type is None:
            try:
                self._finalise()
            except BaseException as err:
                atomic.__exit__(type(err), err, err.__traceback__)
                raise
        return atomic.__exit__(exc_type, exc, tb)

    # ---------------------------------------------------------------------------- writing

    @property
    def n_molecules(self) -> int:
        """Molecules added so far."""
        return len(self._ids)

    def _size(self, words: np.ndarray) -> int:
        return len(self._trial.encode(np.ascontiguousarray(words)))

    def _encode_grid(self, field: str, grid: Grid | None) -> tuple[np.ndarray, ...]:
        if grid is None:
            nan3 = np.full(3, np.nan)
            return np.zeros(3, np.int32), nan3, nan3, codec.RAW, np.empty(0, np.uint32)
        values = np.asarray(grid.values)
        if values.ndim != 3:
            raise ValueError(f"{field} values must be 3-D, got shape {values.shape}")
        origin = np.asarray(grid.origin_bohr, dtype=np.float64).reshape(3)
        spacing = np.asarray(grid.spacing_bohr, dtype=np.float64).reshape(3)
        code, words = codec.encode(values.astype(np.float32, copy=False), self._size, self.codes)
        return np.array(values.shape, np.int32), origin, spacing, code, words

    def add(self, result: DensityResult) -> None:
        """Append one molecule (grids are encoded and buffered; nothing is kept per molecule
        beyond its small metadata)."""
        if self._group is None:
            raise RuntimeError("use StoreWriter as a context manager")
        mol_id = str(result.id)
        if mol_id in self._seen:
            raise ValueError(f"duplicate molecule id {mol_id!r} in {self.path}")
        numbers = np.asarray(result.atomic_numbers).reshape(-1)
        coords = np.asarray(result.coords_bohr, dtype=np.float64).reshape(-1, 3)
        if len(numbers) != len(coords):
            raise ValueError(f"{mol_id}: {len(numbers)} atomic numbers, {len(coords)} positions")
        if np.any((numbers < 0) | (numbers > 255)):
            raise ValueError(f"{mol_id}: atomic numbers must be in 0..255")
        if result.density is None:
            raise ValueError(f"{mol_id}: a molecule needs a density grid")
        meta = _meta_json(result)
        encoded = [self._encode_grid(name, getattr(result, name)) for name in FIELDS]
        for name, (*_, words) in zip(FIELDS, encoded, strict=True):
            self._streams[name].push(words)
        self._ids.append(mol_id)
        self._seen.add(mol_id)
        self._meta.append(meta)
        self._numbers.append(numbers.astype(np.uint8))
        self._coords.append(coords)
        self._shape.append(np.stack([e[0] for e in encoded]))
        self._origin.append(np.stack([e[1] for e in encoded]))
        self._spacing.append(np.stack([e[2] for e in encoded]))
        self._encoding.append(np.array([e[3] for e in encoded], np.uint8))
        self._words.append(np.array([e[4].size for e in encoded], np.int64))

    def _table(self, name: str, data: np.ndarray, **attributes: Any) -> None:
        assert self._group is not None
        chunks = tuple(max(1, n) for n in data.shape)
        array = self._group.create_array(
            name,
            shape=data.shape,
            dtype=data.dtype if data.dtype.kind != "U" else str,
            chunks=chunks,
            compressors=compressor(self.clevel) if data.dtype.kind != "U" else "auto",
            attributes=attributes,
        )
        if data.size:
            array[...] = data

    def _finalise(self) -> None:
        assert self._group is not None
        points = {name: stream.close() for name, stream in self._streams.items()}
        n = len(self._ids)
        n_atoms = np.array([len(z) for z in self._numbers], dtype=np.int64)
        self._table("ids", np.array(self._ids, dtype=str).reshape(n))
        self._table(
            "meta",
            np.array(self._meta, dtype=str).reshape(n),
            description="JSON per molecule: provenance, labels (Hartree), checks",
        )
        self._table(
            "atom_offset",
            np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64),
            units=UNITS["atom_offset"],
        )
        self._table(
            "atomic_numbers",
            np.concatenate(self._numbers) if n else np.empty(0, np.uint8),
            units=UNITS["atomic_numbers"],
        )
        self._table(
            "coords",
            np.concatenate(self._coords) if n else np.empty((0, 3)),
            units=UNITS["coords"],
        )
        stack = {
            "grid_shape": (self._shape, np.int32),
            "grid_origin": (self._origin, np.float64),
            "grid_spacing": (self._spacing, np.float64),
        }
        for name, (rows, dtype) in stack.items():
            data = np.stack(rows).astype(dtype) if n else np.empty((0, 2, 3), dtype)
            self._table(name, data, units=UNITS[name], fields=list(FIELDS))
        self._table(
            "encoding",
            np.stack(self._encoding) if n else np.empty((0, 2), np.uint8),
            units=UNITS["encoding"],
            fields=list(FIELDS),
            codes={str(k): v for k, v in codec.ENCODINGS.items()},
        )
        words = np.stack(self._words) if n else np.empty((0, len(FIELDS)), np.int64)
        offsets = np.zeros((n + 1, len(FIELDS)), np.int64)
        np.cumsum(words, axis=0, out=offsets[1:])
        self._table("word_offset", offsets, units=UNITS["word_offset"], fields=list(FIELDS))
        expected = {name: int(offsets[-1, f]) for f, name in enumerate(FIELDS)}
        if expected != points:  # pragma: no cover - internal consistency
            raise AssertionError(f"value stream lengths {points} != word counts {expected}")
        self._group.attrs.update(
            {
                "n_molecules": n,
                "n_atoms": int(n_atoms.sum()),
                "fields": list(FIELDS),
                "units": UNITS,
                "encodings": {str(k): v for k, v in codec.ENCODINGS.items()},
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "rhoflow_version": __version__,
            }
        )
        self._group.attrs["complete"] = True  # the completion marker, written last


def write_store(path: str | Path, results: Iterable[DensityResult], **options: Any) -> Path:
    """Write ``results`` (any iterable, consumed one at a time) as one shard store at ``path``.

    ``options`` go to :class:`StoreWriter`. Returns the store path.
    """
    with StoreWriter(path, **options) as writer:
        for result in results:
            writer.add(result)
    return Path(path)
