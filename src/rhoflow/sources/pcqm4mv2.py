"""PCQM4Mv2 (OGB-LSC; ~3.7M PubChemQC molecules, HOMO–LUMO gap from B3LYP/6-31G*) in three
layouts. Every format gives the label ``homo_lumo_gap_ev`` (eV) where the file has it.

``pcqm4mv2_csv`` — OGB's raw ``data.csv.gz`` (or the same as plain ``.csv``)::

    idx            0-based molecule index; the native id
    smiles         SMILES, no hydrogens, no coordinates
    homolumogap    HOMO–LUMO gap in eV; empty/NaN for the test splits (label None)

``pcqm4mv2_sdf`` — OGB's ``pcqm4m-v2-train.sdf``: DFT-relaxed geometries of the training
molecules as an SD file, heavy atoms only (no explicit H), coordinates in Å. OGB defines the
i-th record to be molecule ``idx`` i, so the native id is the 0-based record index (matching
``pcqm4mv2_csv``'s idx); title lines and data items are not used as ids. Records are split on
``$$$$`` and parsed as mol blocks; hydrogens are left implicit (the core adds them with
coordinates). No labels: the gap is in ``data.csv.gz``.

``pcqm4mv2_cxsmiles`` — the graphium layout (``pcqm4mv2-2k.csv`` and the like)::

    smiles    CXSMILES with explicit H and the 3D coordinates (Å) of every atom in SMILES atom
              order: ``[H]C1=C... |(x0,y0,z0;x1,y1,z1;...)|``
    homo      the HOMO–LUMO gap in eV despite the column name → ``homo_lumo_gap_ev``

    native id: the 0-based data row index. The coordinates become a 3D conformer in the
    CXSMILES atom order. The CXSMILES carry no radical flags; since every atom has coordinates,
    an atom without enough hydrogens for its valence is a radical, not one with implicit H.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rdkit import Chem

from rhoflow.sources.base import RawEntry, SourceFormat, SourceRecord
from rhoflow.sources.generic import (
    EntryError,
    iter_sdf_records,
    mol_from_molblock,
    mol_from_smiles,
    open_text,
    parse_float,
    parser,
    valid_id,
)

LABEL = "homo_lumo_gap_ev"


def _gap(text: str) -> float | None:
    """Gap (eV) from a CSV field; empty or NaN → None."""
    text = text.strip()
    if not text or text.lower() == "nan":
        return None
    return parse_float(text)


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str], list[str]]]:
    """(data row index, header, row) of a CSV file whose header contains ``columns``."""
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        missing = set(columns) - set(header)
        if missing:
            raise ValueError(f"{path}: header {header} lacks columns {sorted(missing)}")
        for index, row in enumerate(reader):
            yield index, header, row


def _fields(entry: RawEntry) -> dict[str, str]:
    header, row = entry.payload
    if len(row) != len(header):
        raise EntryError("invalid_structure", f"row has {len(row)} fields, header {len(header)}")
    return dict(zip(header, row, strict=True))


# --- pcqm4mv2_csv -------------------------------------------------------------------------


def read_csv(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Rows of ``data.csv(.gz)``; payload = (header, row)."""
    for index, header, row in _rows(path, ("idx", "smiles", "homolumogap")):
        idx = row[header.index("idx")].strip() if len(row) == len(header) else ""
        yield RawEntry(idx if valid_id(idx) else str(index), (header, row))


@parser
def parse_csv(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule from the SMILES (no coordinates) and its gap (eV)."""
    fields = _fields(entry)
    labels = {LABEL: _gap(fields["homolumogap"])}
    return SourceRecord(entry.native_id, mol=mol_from_smiles(fields["smiles"]), labels=labels)


# --- pcqm4mv2_sdf -------------------------------------------------------------------------


def read_sdf(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Records of ``pcqm4m-v2-train.sdf``; native id = record index (= idx); payload = text."""
    for index, record in enumerate(iter_sdf_records(path)):
        yield RawEntry(str(index), record)


@parser
def parse_sdf(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule (heavy atoms, implicit H) with its DFT geometry (Å); no labels."""
    return SourceRecord(entry.native_id, mol=mol_from_molblock(entry.payload))


# --- pcqm4mv2_cxsmiles --------------------------------------------------------------------


def read_cxsmiles(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Rows of a graphium CSV; native id = row index; payload = (header, row)."""
    for index, header, row in _rows(path, ("smiles", "homo")):
        yield RawEntry(str(index), (header, row))


def _no_implicit_hydrogens(mol: Chem.Mol, smiles: str) -> Chem.Mol:
    """Re-read ``smiles`` so that atoms get no hydrogens beyond the written ones: valences left
    open are radicals.

    graphium's CXSMILES drop the radical flags of PCQM4Mv2's radicals (``[N]``, ``[CH]`` in OGB's
    SMILES become ``N``, ``C([H])``), so RDKit would fill their valences with implicit hydrogens
    that have no coordinates. 111 of the first 1,000 molecules are radicals.
    """
    if not any(atom.GetTotalNumHs() for atom in mol.GetAtoms()):  # H not counting H atoms
        return mol
    params = Chem.SmilesParserParams()
    params.removeHs = False
    params.sanitize = False
    out = Chem.MolFromSmiles(smiles, params)
    for atom in out.GetAtoms():
        atom.SetNoImplicit(True)  # bracket atoms keep their written H count
    Chem.SanitizeMol(out)  # assigns the radicals
    Chem.AssignStereochemistry(out, cleanIt=True, force=True)
    return out


@parser
def parse_cxsmiles(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule with explicit H and its geometry (Å) from the CXSMILES, plus the gap (eV).

    When coordinates are given, the atoms are exactly those of the CXSMILES: valences left open
    are radicals (see :func:`_no_implicit_hydrogens`).
    """
    fields = _fields(entry)
    labels = {LABEL: _gap(fields["homo"])}
    mol = mol_from_smiles(fields["smiles"])
    if mol.GetNumConformers():
        mol = _no_implicit_hydrogens(mol, fields["smiles"])
    return SourceRecord(entry.native_id, mol=mol, labels=labels)


CSV = SourceFormat(
    "pcqm4mv2_csv", read_csv, parse_csv, "PCQM4Mv2 OGB data.csv(.gz): idx, SMILES, gap (eV)"
)
SDF = SourceFormat(
    "pcqm4mv2_sdf",
    read_sdf,
    parse_sdf,
    "PCQM4Mv2 OGB pcqm4m-v2-train.sdf: DFT geometries (Å), id = record index",
)
CXSMILES = SourceFormat(
    "pcqm4mv2_cxsmiles",
    read_cxsmiles,
    parse_cxsmiles,
    "PCQM4Mv2 graphium CSV: CXSMILES with explicit H and coordinates (Å), gap (eV)",
)
