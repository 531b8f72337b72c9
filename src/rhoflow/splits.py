"""Dataset splits: one file per source, ``id → train / val / test``, deterministic for a seed.

Every model trained on a source reads the same split file, so result tables compare models on
the same test molecules. The molecules split are those of the source's shard tables (parsed and
filtered, before conformers): a molecule that fails a later stage keeps its split, and changing
conformer or density settings never changes a split.

Split file ``results/splits/<source>.parquet`` (zstd; no timestamps, so the same molecules and
settings give byte-identical files), rows in input order:

==========  ======  ===================================================================
column      type    meaning
==========  ======  ===================================================================
id          string  molecule id
split       string  ``train``, ``val`` or ``test``
scaffold    string  scaffold splits only: Bemis–Murcko scaffold SMILES (no stereo); ``""``
                    for an acyclic molecule or a SMILES RDKit cannot read
==========  ======  ===================================================================

Schema metadata ``rhoflow.splits`` (JSON): ``source``, ``format``, ``method``, ``seed``,
``fractions``, ``counts`` (the counts used, or null when fractions were), ``n_molecules``
(in the source) and ``sizes`` (molecules per split).

Sizes. With ``counts = [n_train, n_val, n_test]`` the splits hold exactly that many (n_test
null: all the rest); molecules beyond the counts are left out of the file (rMD17's 950 / 50 /
1,000 of 100,000). Without counts, a full QM9 source (format ``qm9_csv`` or ``qm9_xyz``, at
least :data:`QM9_FULL` molecules) gets QM9's customary 110,000 / 10,000 / rest; any other
source is split by ``fractions``: ``round(f_val · N)`` and ``round(f_test · N)`` molecules
(halves up), train the remainder.

Methods. ``random``: the first n_train molecules of ``numpy.random.default_rng(seed)
.permutation(N)`` are train, the next n_val val, then test. ``scaffold`` (Bemis & Murcko 1996;
the DeepChem/EDBench convention): molecules sharing a scaffold form a group; groups are taken
largest first and each goes whole to the first of train, val, test with room for it (test has
no limit unless n_test is given; a group that fits nowhere is left out), so no scaffold
straddles two splits and val/test hold the rarer scaffolds. Groups of equal size are ordered
by a permutation drawn with the seed (DeepChem orders them by input position). "No ring
system" is not a shared scaffold: an acyclic or unreadable molecule is grouped only with copies
of its own SMILES; a molecule with an empty SMILES (bond orders unknown, see
:mod:`rhoflow.molecule`) is a group of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rhoflow.io import write_parquet

SPLITS = ("train", "val", "test")
QM9_FORMATS = ("qm9_csv", "qm9_xyz")
QM9_FULL = 130_000
"""A QM9 source with at least this many molecules is the full QM9 (133,885 records)."""
QM9_COUNTS = (110_000, 10_000, None)
METADATA_KEY = b"rhoflow.splits"

Sizes = tuple[int, int, int | None]
"""Molecules for train, val, test; test None = all the rest."""


def read_source(tables: Sequence[str | Path]) -> tuple[list[str], list[str]]:
    """Ids and SMILES of molecule tables, in table order (only these two columns are read)."""
    ids: list[str] = []
    smiles: list[str] = []
    for path in tables:
        table = pq.read_table(path, columns=["id", "smiles"])
        ids.extend(table["id"].to_pylist())
        smiles.extend(table["smiles"].to_pylist())
    return ids, smiles


def split_sizes(
    n: int,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    counts: Sequence[int | None] | None = None,
    fmt: str | None = None,
) -> tuple[Sizes, bool]:
    """Sizes for ``n`` molecules (module docstring) and whether they came from counts;
    ``fractions`` as the config checks them (three, ≥ 0, summing to 1)."""
    if counts is None and fmt in QM9_FORMATS and n >= QM9_FULL:
        counts = QM9_COUNTS
    if counts is not None:
        n_train, n_val, n_test = counts
        if n_train + n_val + (n_test or 0) > n:
            raise ValueError(f"split counts {list(counts)} exceed the {n} molecules")
        return (n_train, n_val, n_test), True
    n_val, n_test = (int(np.floor(f * n + 0.5)) for f in fractions[1:])
    return (n - n_val - n_test, n_val, None), False


def random_split(n: int, sizes: Sizes, seed: int) -> np.ndarray:
    """Split codes [n] int8 (0 train, 1 val, 2 test, -1 left out) from a seeded permutation."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val, n_test = sizes
    end = n if n_test is None else n_train + n_val + n_test
    codes = np.full(n, -1, dtype=np.int8)
    codes[order[:n_train]] = 0
    codes[order[n_train : n_train + n_val]] = 1
    codes[order[n_train + n_val : end]] = 2
    return codes


def nested_subset(ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The first ``max(1, round(fraction · n))`` of ``ids`` in a permutation drawn from
    ``seed``, kept in their given order: for one seed a smaller fraction's subset lies inside
    every larger one's (learning curves), and the same (ids, fraction, seed) give the same
    subset on any machine."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = len(ids)
    keep = np.sort(np.random.default_rng(seed).permutation(n)[: max(1, round(fraction * n))])
    return [ids[i] for i in keep] if n else []


def murcko_scaffold(smiles: str) -> str:
    """Bemis–Murcko scaffold SMILES without stereo; "" when acyclic or unreadable."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        return ""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_split(smiles: Sequence[str], sizes: Sizes, seed: int) -> tuple[np.ndarray, list[str]]:
    """Split codes [n] int8 (as :func:`random_split`) and the scaffold of each molecule."""
    from rdkit import rdBase

    with rdBase.BlockLogs():
        scaffolds = [murcko_scaffold(s) for s in smiles]
    groups: dict[tuple[str, str] | int, list[int]] = {}
    for i, (scaffold, text) in enumerate(zip(scaffolds, smiles, strict=True)):
        key = ("scaffold", scaffold) if scaffold else ("molecule", text) if text else i
        groups.setdefault(key, []).append(i)
    members = list(groups.values())
    tie = np.random.default_rng(seed).permutation(len(members))
    length = np.array([len(m) for m in members], dtype=np.int64)
    room = [sizes[0], sizes[1], len(smiles) if sizes[2] is None else sizes[2]]
    codes = np.full(len(smiles), -1, dtype=np.int8)
    for g in np.lexsort((tie, -length)):  # largest first, ties in seeded order
        for k in range(3):
            if length[g] <= room[k]:
                codes[members[g]] = k
                room[k] -= int(length[g])
                break
    return codes, scaffolds


def make_splits(
    ids: Sequence[str],
    smiles: Sequence[str],
    settings: Mapping[str, Any],
    *,
    source: str = "",
    fmt: str | None = None,
) -> pa.Table:
    """The split table of one source's molecules (module docstring), metadata included;
    ``settings`` is the completed config ``splits`` section."""
    method, seed = settings["method"], settings["seed"]
    fractions, counts = settings["fractions"], settings["counts"]
    sizes, from_counts = split_sizes(len(ids), fractions, counts, fmt)
    columns: dict[str, Any] = {}
    if method == "scaffold":
        codes, scaffolds = scaffold_split(smiles, sizes, seed)
        columns["scaffold"] = scaffolds
    else:
        codes = random_split(len(ids), sizes, seed)
    keep = np.flatnonzero(codes >= 0)
    names = np.array(SPLITS, dtype=object)
    table = pa.table(
        {
            "id": pa.array([ids[i] for i in keep], pa.string()),
            "split": pa.array(names[codes[keep]].tolist(), pa.string()),
            **{k: pa.array([v[i] for i in keep], pa.string()) for k, v in columns.items()},
        }
    )
    metadata = {
        "source": source,
        "format": fmt,
        "method": method,
        "seed": seed,
        "fractions": list(fractions),
        "counts": list(sizes) if from_counts else None,
        "n_molecules": len(ids),
        "sizes": {name: int((codes == k).sum()) for k, name in enumerate(SPLITS)},
    }
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def write_splits(path: str | Path, table: pa.Table) -> None:
    """Write a split table atomically, byte-identical for identical input."""
    write_parquet(path, table, ["split", "scaffold"])


def build_splits(
    tables: Sequence[str | Path],
    out: str | Path,
    source: str,
    fmt: str,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Split one source's molecule tables into ``out`` with the completed config ``splits``
    settings; return the file's metadata."""
    ids, smiles = read_source(tables)
    table = make_splits(ids, smiles, settings, source=source, fmt=fmt)
    write_splits(out, table)
    return json.loads(table.schema.metadata[METADATA_KEY])


def read_splits(path: str | Path) -> pd.DataFrame:
    """A split file as a frame indexed by id (columns ``split`` [, ``scaffold``]); its
    metadata in ``.attrs["splits"]``."""
    table = pq.read_table(path)
    frame = table.to_pandas().set_index("id")
    frame.attrs["splits"] = json.loads(table.schema.metadata[METADATA_KEY])
    return frame
