"""PubChem source + 3DGrid-VQGAN filter over a CID–SMILES file: counts and wall time.

    python benchmarks/pubchem_source.py [path]

``path`` defaults to ``../shared/data/pubchem/cid_smiles_10k.tsv`` beside the repository. Reads
and parses every line (``pubchem_tsv``) in one process, applies :func:`rhoflow.sources.check`
with the default settings, and prints molecules read, kept, rejections per reason (parse
failures included) and the wall time. Writes nothing.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from rhoflow.sources import DEFAULT_SETTINGS, FORMATS, check

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared/data/pubchem/cid_smiles_10k.tsv"


def run(path: Path) -> tuple[int, int, Counter[str], float]:
    """(molecules read, kept, rejections per reason, wall time in s) for one file."""
    source = FORMATS["pubchem_tsv"]
    start = time.perf_counter()
    read = kept = 0
    rejected: Counter[str] = Counter()
    for entry in source.read_raw(path, {}):
        read += 1
        record = source.parse(entry, {})
        failure = record.failure or check(record.mol, DEFAULT_SETTINGS)
        if failure:
            rejected[failure[0]] += 1
        else:
            kept += 1
    return read, kept, rejected, time.perf_counter() - start


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    read, kept, rejected, wall = run(path)
    print(f"file        {path}")
    print(f"read        {read}")
    print(f"kept        {kept} ({100 * kept / max(read, 1):.1f} %)")
    for reason, count in sorted(rejected.items(), key=lambda item: -item[1]):
        print(f"  {reason:28s} {count}")
    print(f"wall time   {wall:.2f} s ({1e6 * wall / max(read, 1):.0f} µs per molecule)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
