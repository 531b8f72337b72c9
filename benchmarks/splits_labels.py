"""Splits and a labels table for the first 1,000 PCQM4Mv2 molecules.

Builds the shard tables exactly as the ``shards`` stage does (``pcqm4mv2_cxsmiles`` loader,
no filter), then for the random and the scaffold method: split sizes, ids in more than one
split (must be 0), byte-identity of two files written with the same seed, and how many
molecules change split with another seed. Finally the labels table of the source labels
(``source_homo_lumo_gap_ev``, eV) of those molecules, with no density store.

    .venv/bin/python benchmarks/splits_labels.py [CSV] [--shard-size N] [--seed S]

CSV defaults to ../shared/data/pcqm4mv2/pcqm4mv2_first1000.csv (graphium CXSMILES layout).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rhoflow.config import section_settings
from rhoflow.labels import build_labels, read_labels
from rhoflow.shards import build_shards
from rhoflow.sources import DEFAULT_SETTINGS
from rhoflow.splits import build_splits, read_splits

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared/data/pcqm4mv2/pcqm4mv2_first1000.csv"
FRACTIONS = [0.8, 0.1, 0.1]


def report_method(tables: list[Path], workdir: Path, method: str, seed: int) -> None:
    settings = {"method": method, "fractions": FRACTIONS, "counts": None}
    paths = [workdir / f"{method}-{name}.parquet" for name in ("a", "b", "other")]
    start = time.perf_counter()
    for path, s in zip(paths, (seed, seed, seed + 1), strict=True):
        completed = section_settings("splits", {**settings, "seed": s})
        build_splits(tables, path, "pcqm4mv2", "pcqm4mv2_cxsmiles", completed)
    wall = (time.perf_counter() - start) / 3
    frame, other = read_splits(paths[0]), read_splits(paths[2])
    groups = {name: set(ids) for name, ids in frame.groupby("split").groups.items()}
    overlap = sum(len(groups[a] & groups[b]) for a, b in (("train", "val"), ("train", "test"),
                                                          ("val", "test")))  # fmt: skip
    sizes = frame["split"].value_counts().reindex(["train", "val", "test"]).to_dict()
    moved = int((frame["split"] != other["split"].reindex(frame.index)).sum())
    print(f"{method}: {sizes} of {len(frame)} molecules; {wall:.2f} s per split file")
    print(f"  ids in two splits: {overlap}; ids unique: {frame.index.is_unique}")
    print(f"  seed {seed} twice, byte-identical: {paths[0].read_bytes() == paths[1].read_bytes()}")
    print(f"  seed {seed + 1}: {moved} molecules in another split")
    if method == "scaffold":
        scaffolds = frame["scaffold"]
        ringed = scaffolds[scaffolds != ""]
        straddling = int((frame[scaffolds != ""].groupby("scaffold")["split"].nunique() > 1).sum())
        print(
            f"  {ringed.nunique()} scaffolds over {len(ringed)} molecules (largest "
            f"{ringed.value_counts().iloc[0]}), {len(scaffolds) - len(ringed)} acyclic; "
            f"scaffolds in two splits: {straddling}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        source = {"name": "pcqm4mv2", "format": "pcqm4mv2_cxsmiles", "filter": False}
        start = time.perf_counter()
        manifest = build_shards(
            [source], [args.csv], args.shard_size, DEFAULT_SETTINGS, workdir / "shards"
        )
        tables = [workdir / "shards" / f"{s.shard}.parquet" for s in manifest]
        print(
            f"{sum(s.n_molecules for s in manifest)} molecules in {len(tables)} shard tables "
            f"({sum(s.n_failed for s in manifest)} failed) in {time.perf_counter() - start:.1f} s"
        )
        for method in ("random", "scaffold"):
            report_method(tables, workdir, method, args.seed)

        start = time.perf_counter()
        build_labels(workdir / "labels.parquet", [], tables)
        wall = time.perf_counter() - start
        labels = read_labels(workdir / "labels.parquet")
        gap = labels["source_homo_lumo_gap_ev"]
        print(f"labels: {len(labels)} rows in {wall:.2f} s; columns id, {', '.join(labels)}")
        print(f"  dtypes: {labels.dtypes.astype(str).to_dict()}")
        print(f"  units: {labels.attrs['units']}")
        print(
            f"  source_homo_lumo_gap_ev: {gap.notna().sum()} values, mean {gap.mean():.4f}, "
            f"min {gap.min():.4f}, max {gap.max():.4f} eV; first {gap.iloc[0]:.4f} eV"
        )


if __name__ == "__main__":
    main()
