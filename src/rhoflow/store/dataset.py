"""Many shard stores as one dataset: the consolidated index and dask-backed passes.

The index is one Parquet file with one row per molecule:

``id`` (string)
    molecule id, unique over the dataset
``shard`` (string)
    the shard store holding it, relative to the index file's directory when the store lies
    below it (so a dataset directory can be moved as a whole), else absolute
``position`` (int32)
    the molecule's position inside that shard

File-level key/value metadata: ``rhoflow_index: "1"``. Looking a molecule up is a hash-table
lookup (id → row) followed by one shard read; shards are opened lazily and the most recently
used ``max_open`` stay open.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr

from rhoflow.io import atomic_path
from rhoflow.store.reader import ShardStore, open_store

INDEX_VERSION = "1"


def _relative(shard: Path, base: Path) -> str:
    shard, base = shard.resolve(), base.resolve()
    try:
        return shard.relative_to(base).as_posix()
    except ValueError:
        return str(shard)


def _shard_ids(shard: str) -> list[str]:
    return open_store(shard).ids


def write_index(shards: Iterable[str | Path], out_path: str | Path) -> Path:
    """Write the consolidated Parquet index of ``shards`` (finished stores) to ``out_path``.

    The shards' ids are read by one dask task per shard, on the current scheduler (a
    :func:`rhoflow.cluster.dask_client`, else dask's threads); the index is the same on any.
    Raises ``ValueError`` when an id occurs twice and :class:`IncompleteStoreError` for a shard
    without its completion marker. Written atomically; returns ``out_path``.
    """
    import dask

    out = Path(out_path)
    paths = [Path(shard).absolute() for shard in shards]
    listed = dask.compute(*[dask.delayed(_shard_ids, pure=True)(str(p)) for p in paths])
    ids: list[str] = []
    shard_col: list[str] = []
    positions: list[np.ndarray] = []
    for path, shard_ids in zip(paths, listed, strict=True):
        ids.extend(shard_ids)
        shard_col.extend([_relative(path, out.parent)] * len(shard_ids))
        positions.append(np.arange(len(shard_ids), dtype=np.int32))
    index = pd.Index(ids)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"duplicate molecule ids across shards, e.g. {dup}")
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "shard": pa.array(shard_col, pa.string()).dictionary_encode(),
            "position": pa.array(
                np.concatenate(positions) if positions else np.empty(0, np.int32), pa.int32()
            ),
        }
    ).replace_schema_metadata({"rhoflow_index": INDEX_VERSION})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return out


def _stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path / "zarr.json")
    return st.st_ino, st.st_mtime_ns


@lru_cache(maxsize=32)
def _cached(path: str, stamp: tuple[int, int]) -> ShardStore:
    return open_store(path)


def cached_store(path: str | Path) -> ShardStore:
    """Open a shard store, reusing an already open one in this process if the store on disk
    is unchanged (keyed by path, inode and mtime of its root ``zarr.json``)."""
    p = Path(path)
    try:
        stamp = _stamp(p)
    except FileNotFoundError:
        return open_store(p)  # raises IncompleteStoreError
    return _cached(str(p), stamp)


def _apply_partition(
    shard: str, positions: list[int], fn: Callable[[xr.DataArray], Any], field: str
) -> list[Any]:
    store = cached_store(shard)
    return [fn(store.get(pos, field)) for pos in positions if store.has(pos, field)]


def _load_values(shard: str, position: int, field: str) -> np.ndarray:
    return cached_store(shard).values(position, field)


class Dataset:
    """Molecules of many shard stores, by id in O(1). Use :func:`open_dataset`."""

    def __init__(
        self,
        shards: Sequence[str | Path],
        ids: Sequence[str],
        shard_of: np.ndarray,
        position: np.ndarray,
        max_open: int = 64,
    ) -> None:
        self.shards = [Path(s) for s in shards]
        self._index = pd.Index(ids, dtype=object)
        if not self._index.is_unique:
            dup = self._index[self._index.duplicated()].unique()[:5].tolist()
            raise ValueError(f"duplicate molecule ids across shards, e.g. {dup}")
        self._shard_of = np.asarray(shard_of, dtype=np.int32)
        self._position = np.asarray(position, dtype=np.int32)
        self.max_open = max_open
        self._open: OrderedDict[int, ShardStore] = OrderedDict()

    @classmethod
    def from_shards(cls, shards: Iterable[str | Path], max_open: int = 64) -> Dataset:
        """Build the id index in memory by opening every shard and reading its ids (the last
        ``max_open`` shards stay open)."""
        paths: list[Path] = []
        ids: list[str] = []
        shard_of: list[np.ndarray] = []
        recent: OrderedDict[int, ShardStore] = OrderedDict()
        for k, shard in enumerate(shards):
            store = open_store(shard)
            paths.append(store.path)
            ids.extend(store.ids)
            shard_of.append(np.full(len(store), k, dtype=np.int32))
            recent[k] = store
            if len(recent) > max_open:
                recent.popitem(last=False)
        dataset = cls(
            paths,
            ids,
            np.concatenate(shard_of) if shard_of else np.empty(0, np.int32),
            np.concatenate([np.arange(len(s), dtype=np.int32) for s in shard_of])
            if shard_of
            else np.empty(0, np.int32),
            max_open,
        )
        dataset._open = recent
        return dataset

    @classmethod
    def from_index(cls, index_path: str | Path, max_open: int = 64) -> Dataset:
        """Open the Parquet index written by :func:`write_index` (shards are not opened)."""
        index_path = Path(index_path)
        table = pq.read_table(index_path)
        meta = table.schema.metadata or {}
        if meta.get(b"rhoflow_index") != INDEX_VERSION.encode():
            raise ValueError(f"{index_path}: not a rhoflow store index")
        shard_col = table.column("shard").combine_chunks()
        if isinstance(shard_col.type, pa.DictionaryType):
            names = shard_col.dictionary.to_pylist()
            codes = shard_col.indices.to_numpy(zero_copy_only=False)
        else:
            codes_index, uniques = pd.factorize(shard_col.to_pandas())
            names, codes = list(uniques), codes_index
        base = index_path.parent
        shards = [Path(n) if os.path.isabs(n) else base / n for n in names]
        return cls(
            shards,
            table.column("id").to_pylist(),
            codes,
            table.column("position").to_numpy(),
            max_open,
        )

    # ---------------------------------------------------------------------------- access

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"Dataset(molecules={len(self)}, shards={len(self.shards)})"

    @property
    def ids(self) -> list[str]:
        """All molecule ids (index order: shard by shard, position order)."""
        return self._index.tolist()

    def __contains__(self, mol_id: object) -> bool:
        return mol_id in self._index

    def locate(self, mol_id: str) -> tuple[Path, int]:
        """``(shard path, position)`` of ``mol_id`` (``KeyError`` if absent)."""
        row = self._index.get_loc(mol_id)
        if not isinstance(row, int | np.integer):  # pragma: no cover - index is unique
            raise KeyError(mol_id)
        return self.shards[self._shard_of[row]], int(self._position[row])

    def _store(self, k: int) -> ShardStore:
        store = self._open.get(k)
        if store is None:
            store = open_store(self.shards[k])
            self._open[k] = store
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(k)
        return store

    def _lookup(self, mol_id: str) -> tuple[ShardStore, int]:
        try:
            row = self._index.get_loc(mol_id)
        except KeyError:
            raise KeyError(f"{mol_id!r} is not in this dataset") from None
        store, pos = self._store(int(self._shard_of[row])), int(self._position[row])
        if pos >= len(store) or store.ids[pos] != mol_id:
            raise ValueError(f"stale index: {store.path} no longer holds {mol_id!r} at {pos}")
        return store, pos

    def get(self, mol_id: str, field: str = "density") -> xr.DataArray:
        """One molecule's field as a DataArray (see :meth:`ShardStore.get`)."""
        store, pos = self._lookup(mol_id)
        return store.get(pos, field)

    def esp(self, mol_id: str) -> xr.DataArray:
        """One molecule's electrostatic potential (hartree/e)."""
        return self.get(mol_id, "esp")

    def values(self, mol_id: str, field: str = "density") -> np.ndarray:
        """One molecule's float32 values [nx, ny, nz] without the xarray wrapping."""
        store, pos = self._lookup(mol_id)
        return store.values(pos, field)

    def metadata(self, mol_id: str) -> dict[str, Any]:
        """Provenance, labels and checks of one molecule."""
        store, pos = self._lookup(mol_id)
        return store.metadata(pos)

    def shard_store(self, mol_id: str) -> tuple[ShardStore, int]:
        """The opened shard holding ``mol_id`` and its position there."""
        return self._lookup(mol_id)

    # ------------------------------------------------------------------------------ dask

    def _partitions(self, partition_size: int) -> list[tuple[str, list[int]]]:
        parts: list[tuple[str, list[int]]] = []
        order = np.lexsort((self._position, self._shard_of))
        shard_of, position = self._shard_of[order], self._position[order]
        for k in np.unique(shard_of):
            pos = position[shard_of == k].tolist()
            for start in range(0, len(pos), partition_size):
                parts.append((str(self.shards[k]), pos[start : start + partition_size]))
        return parts

    def map(
        self,
        fn: Callable[[xr.DataArray], Any],
        field: str = "density",
        partition_size: int = 100,
    ) -> Any:
        """A ``dask.bag.Bag`` of ``fn(DataArray)`` for every molecule that has ``field``.

        One partition per ``partition_size`` molecules of a shard; each task opens its shard
        itself, so the bag runs on any dask scheduler (threads, processes, distributed).
        E.g. ``ds.map(lambda da: float(da.sum()) * da.attrs["spacing_bohr"][0] ** 3)``.
        """
        import dask
        import dask.bag as db

        tasks = [
            dask.delayed(_apply_partition)(shard, positions, fn, field)
            for shard, positions in self._partitions(partition_size)
        ]
        return db.from_delayed(tasks) if tasks else db.from_sequence([])

    def to_delayed(self, field: str = "density") -> list[Any]:
        """One ``dask.delayed`` float32 array per molecule (id order of :attr:`ids`)."""
        import dask

        return [
            dask.delayed(_load_values, pure=True)(str(self.shards[k]), int(p), field)
            for k, p in zip(self._shard_of, self._position, strict=True)
        ]


def open_dataset(source: str | Path | Iterable[str | Path], max_open: int = 64) -> Dataset:
    """Open a dataset from a Parquet index (``*.parquet``), one shard store, or a list of shard
    stores. Lookups by id are O(1); shards are opened lazily."""
    if isinstance(source, str | Path):
        path = Path(source)
        if path.suffix == ".parquet":
            return Dataset.from_index(path, max_open)
        return Dataset.from_shards([path], max_open)
    return Dataset.from_shards(source, max_open)
