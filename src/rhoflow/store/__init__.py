"""The density store: one Zarr v3 store per shard, an id index over all shards.

Write a shard (streaming, atomic)::

    with StoreWriter("shard-0001.zarr") as store:
        for result in results:          # DensityResult objects, one at a time
            store.add(result)

Read::

    store = open_store("shard-0001.zarr")          # refuses unfinished stores
    rho = store.get("mol-42")                      # xarray.DataArray, dims x, y, z (bohr)
    write_index(shard_paths, "index.parquet")      # id -> shard, position
    ds = open_dataset("index.parquet")
    ds.get("mol-42"); ds.esp("mol-42")             # O(1) by id
    ds.map(lambda da: float(da.max())).compute()   # dask bag over all molecules
    info("shard-0001.zarr")                        # molecules, engines, failures, bytes, files
    dataset_stats(ds.shards)                       # checks over all molecules (dask pass)

Cube interop: ``export_cube(store, id, "x_Dt.cube")``, ``import_cubes(find_cube_pairs(dir),
"imported.zarr")`` (EDBench ``<id>_Dt.cube`` + ``<id>_ESP.cube``).

On-disk layout (plain float32 Zarr v3, readable without rhoflow): :mod:`rhoflow.store.layout`;
the Parquet index: :mod:`rhoflow.store.dataset`.
"""

from rhoflow.store.cubes import cube_id, export_cube, find_cube_pairs, import_cubes
from rhoflow.store.dataset import Dataset, cached_store, open_dataset, write_index
from rhoflow.store.info import disk_usage, info
from rhoflow.store.layout import FIELDS, UNITS, ledger_path
from rhoflow.store.reader import IncompleteStoreError, ShardStore, open_store
from rhoflow.store.stats import dataset_stats
from rhoflow.store.writer import StoreWriter, write_store

__all__ = [
    "FIELDS",
    "UNITS",
    "Dataset",
    "IncompleteStoreError",
    "ShardStore",
    "StoreWriter",
    "cached_store",
    "cube_id",
    "dataset_stats",
    "disk_usage",
    "export_cube",
    "find_cube_pairs",
    "import_cubes",
    "info",
    "ledger_path",
    "open_dataset",
    "open_store",
    "write_index",
    "write_store",
]
