"""PubChem compounds as CID–SMILES lists or PubChem SD files.

``pubchem_tsv`` — e.g. ``CID-SMILES`` from the PubChem FTP site, no header::

    <CID><TAB><SMILES>

    CID      PubChem compound id (positive integer); the native id
    SMILES   (isomeric) SMILES, no coordinates
    Blank lines are skipped; a line without a tab or with a non-numeric CID is a malformed row
    (``invalid_structure``, native id ``line<number>``).

``pubchem_sdf`` — PubChem SD files (``Compound_*.sdf.gz`` are 2D, ``*_3D.sdf`` are 3D): records
separated by ``$$$$``, each a mol block with explicit H (title line = CID) followed by data
items such as::

    > <PUBCHEM_COMPOUND_CID>
    2244

    native id: ``PUBCHEM_COMPOUND_CID``, else the title line when valid, else the 0-based
    record index. Coordinates (Å) are kept for 3D blocks; 2D blocks give no conformer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rhoflow.sources.base import RawEntry, SourceFormat, SourceRecord
from rhoflow.sources.generic import (
    EntryError,
    iter_sdf_records,
    mol_from_molblock,
    mol_from_smiles,
    open_text,
    parser,
    valid_id,
)

_CID_ITEM = re.compile(r"^>[^\n]*<PUBCHEM_COMPOUND_CID>[^\n]*\n[ \t]*(\d+)[ \t]*$", re.MULTILINE)


def read_tsv(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Lines of a CID–SMILES file; payload = the SMILES, or None for a malformed row."""
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            cid, tab, smiles = line.rstrip("\r\n").partition("\t")
            cid = cid.strip()
            if tab and cid.isdigit() and smiles.strip():
                yield RawEntry(cid, smiles.strip())
            else:
                yield RawEntry(f"line{lineno}", None)


@parser
def parse_tsv(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule from the SMILES; no coordinates, no labels."""
    if entry.payload is None:
        raise EntryError("invalid_structure", "malformed row: expected <CID><TAB><SMILES>")
    return SourceRecord(entry.native_id, mol=mol_from_smiles(entry.payload))


def read_sdf(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Records of a PubChem SD file (``.sdf`` or ``.sdf.gz``); payload = the record text."""
    for index, record in enumerate(iter_sdf_records(path)):
        match = _CID_ITEM.search(record)
        title = record.split("\n", 1)[0].strip()
        native_id = match.group(1) if match else title if valid_id(title) else str(index)
        yield RawEntry(native_id, record)


@parser
def parse_sdf(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule as given (explicit H); 3D coordinates kept (Å), 2D dropped; no labels."""
    return SourceRecord(entry.native_id, mol=mol_from_molblock(entry.payload))


TSV = SourceFormat(
    "pubchem_tsv", read_tsv, parse_tsv, "PubChem CID<TAB>SMILES, no header; no coordinates"
)
SDF = SourceFormat(
    "pubchem_sdf", read_sdf, parse_sdf, "PubChem SD file; id = PUBCHEM_COMPOUND_CID; 3D kept"
)
