"""Typed labels: one Parquet table per density engine, one row per molecule of its stores.

``results/density/<engine>/labels.parquet`` joins by id what the engine computed (the labels and
checks stored with each density) and the source's labels (the ``labels`` JSON of the conformer
tables), as plain columns whose names end in their unit: a loader reads numbers, never JSON.
The JSON is parsed once, here, when the table is built.

=====================  =======  ===============================================================
column                 type     meaning
=====================  =======  ===============================================================
id                     string   molecule id; rows in store order, shard by shard
shard                  string   the shard the molecule is stored in
n_atoms                int32    atoms, hydrogens included
<engine label>         float64  as stored, e.g. ``final_energy_hartree``, ``gap_ev``,
                                ``dipole_debye`` (README "Densities")
<check>                float64  ``n_electrons_expected``, ``n_electrons_dm``,
                                ``grid_sum_electrons`` (e), ``captured_fraction``,
                                ``rho_min_e_per_bohr3``, ``rho_max_e_per_bohr3`` (the store's
                                ``rho_min``/``rho_max``, named with their unit)
source_<label>         float64  the source's labels, e.g. ``source_homo_lumo_gap_ev``
                                (PCQM4Mv2), ``source_gap_hartree``, ``source_u0_hartree`` (QM9)
=====================  =======  ===============================================================

Missing values (a label the engine or source did not give for a molecule) are NaN. The columns
are the union over all molecules, engine labels, checks and source labels each sorted by name,
so they depend on the engine and sources, not on molecule order. Schema metadata
``rhoflow.units`` maps every numeric column to its unit (``Hartree``, ``eV``, ``D``, ``e``,
``1``, ...); a key whose unit cannot be read from its name is an error, not a unitless column.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rhoflow.io import write_parquet

UNITS_KEY = b"rhoflow.units"
SOURCE_PREFIX = "source_"

CHECK_COLUMNS = {"rho_min": "rho_min_e_per_bohr3", "rho_max": "rho_max_e_per_bohr3"}
"""Store check keys renamed so the column name carries the unit."""

SUFFIX_UNITS = (
    ("_e_per_bohr3", "e/bohr^3"),
    ("_hartree", "Hartree"),
    ("_kcal_per_mol", "kcal/mol"),
    ("_cal_per_mol_k", "cal/(mol K)"),
    ("_ev", "eV"),
    ("_debye", "D"),
    ("_ghz", "GHz"),
    ("_bohr3", "bohr^3"),
    ("_bohr2", "bohr^2"),
    ("_electrons", "e"),
    ("_fraction", "1"),
)
"""Unit of a column by the end of its name (first match)."""

PREFIX_UNITS = (("n_electrons", "e"), ("n_atoms", "1"))


def unit(column: str) -> str:
    """The unit of a label column, read from its name; ``ValueError`` when it has none."""
    for suffix, name in SUFFIX_UNITS:
        if column.endswith(suffix):
            return name
    for prefix, name in PREFIX_UNITS:
        if column.startswith(prefix):
            return name
    raise ValueError(f"label {column!r} does not name its unit (see rhoflow.labels.SUFFIX_UNITS)")


def _per_file(fn: Callable[[str], Any], paths: Sequence[str | Path]) -> tuple[Any, ...]:
    """``fn(path)`` for every path, one dask task each, on the current scheduler (a
    :func:`rhoflow.cluster.dask_client`, else dask's threads), in the order of ``paths``."""
    import dask

    return dask.compute(*[dask.delayed(fn, pure=True)(str(Path(p).absolute())) for p in paths])


def _table_labels(path: str) -> pd.DataFrame:
    table = pq.read_table(path, columns=["id", "atomic_numbers", "labels"])
    ids = table["id"].to_pylist()
    labels = pd.DataFrame([json.loads(t) for t in table["labels"].to_pylist()], index=ids)
    frame = labels.add_prefix(SOURCE_PREFIX)
    frame.insert(0, "shard", Path(path).stem)
    frame.insert(1, "n_atoms", pc.list_value_length(table["atomic_numbers"]).to_numpy())
    return frame


def source_labels(tables: Sequence[str | Path]) -> pd.DataFrame:
    """Frame indexed by id: ``shard``, ``n_atoms`` and ``source_<label>`` columns of molecule
    tables (``shard`` = table file stem); one dask task per table."""
    return _concat(list(_per_file(_table_labels, tables)), ["shard", "n_atoms"])


def _store_labels(path: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    from rhoflow.store import open_store

    store = open_store(path)
    metadata = store.all_metadata()
    labels = pd.DataFrame([m.get("labels") or {} for m in metadata], index=store.ids)
    checks = pd.DataFrame([m.get("checks") or {} for m in metadata], index=store.ids)
    checks = checks.rename(columns=CHECK_COLUMNS)
    clash = set(labels.columns) & set(checks.columns)
    if clash:
        raise ValueError(f"{path}: keys both label and check: {sorted(clash)}")
    frame = pd.concat([labels, checks], axis=1)
    frame.insert(0, "shard", Path(path).stem)
    return frame, list(labels.columns), list(checks.columns)


def engine_labels(stores: Sequence[str | Path]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Frame indexed by id: ``shard`` and the labels and checks of density shard stores; with
    the label and the check column names. One dask task per store."""
    per_store = _per_file(_store_labels, stores)
    label_names = {name for _, names, _ in per_store for name in names}
    check_names = {name for _, _, names in per_store for name in names}
    frames = [frame for frame, _, _ in per_store]
    return _concat(frames, ["shard"]), sorted(label_names), sorted(check_names)


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=columns)
    if not frame.index.is_unique:
        duplicates = frame.index[frame.index.duplicated()].unique().tolist()
        raise ValueError(f"molecule ids occur more than once: {duplicates[:5]}")
    return frame


def labels_frame(stores: Sequence[str | Path], tables: Sequence[str | Path]) -> pd.DataFrame:
    """The labels table (module docstring) of the molecules in ``stores``, or of those in
    ``tables`` when no stores are given; numeric columns float64 (NaN when missing)."""
    source = source_labels(tables)
    source_names = sorted(c for c in source.columns if c.startswith(SOURCE_PREFIX))
    if stores:
        engine, label_names, check_names = engine_labels(stores)
        missing = engine.index.difference(source.index)
        if len(missing):
            raise ValueError(f"stored molecules not in the molecule tables: {list(missing[:5])}")
        frame = engine.join(source.drop(columns="shard"))
    else:
        frame, label_names, check_names = source, [], []
    values = frame[[*label_names, *check_names, *source_names]].astype(np.float64)
    out = pd.concat([frame[["shard"]], frame["n_atoms"].astype(np.int32), values], axis=1)
    out.index.name = "id"
    return out


def write_labels(path: str | Path, frame: pd.DataFrame) -> None:
    """Write a :func:`labels_frame` atomically, units in the schema metadata; byte-identical
    for identical input."""
    numeric = list(frame.columns[1:])
    units = {column: unit(column) for column in numeric}
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("n_atoms", pa.int32(), nullable=False),
        *(pa.field(c, pa.float64(), nullable=False) for c in numeric[1:]),
    ]
    schema = pa.schema(fields, metadata={UNITS_KEY: json.dumps(units, sort_keys=True)})
    columns = {"id": frame.index.to_numpy(dtype=object), "shard": frame["shard"].to_numpy(object)}
    columns |= {c: frame[c].to_numpy() for c in numeric}
    table = pa.table(columns, schema=schema)
    write_parquet(path, table, ["shard"])


def build_labels(
    out: str | Path, stores: Sequence[str | Path], tables: Sequence[str | Path]
) -> pd.DataFrame:
    """Build and write the labels table of ``stores`` (or of ``tables`` alone); return it."""
    frame = labels_frame(stores, tables)
    write_labels(out, frame)
    return frame


def read_labels(path: str | Path) -> pd.DataFrame:
    """A labels table as a frame indexed by id; the unit of each column in ``.attrs["units"]``."""
    table = pq.read_table(path)
    frame = table.to_pandas().set_index("id")
    frame.attrs["units"] = json.loads(table.schema.metadata[UNITS_KEY])
    return frame
