"""Molecule sources: loaders by config name (:data:`FORMATS`) and the chemistry filter.

=====================  ===================================================================
format                 input
=====================  ===================================================================
``pcqm4mv2_csv``       OGB PCQM4Mv2 ``data.csv.gz``: idx, SMILES, HOMO–LUMO gap (eV)
``pcqm4mv2_sdf``       OGB ``pcqm4m-v2-train.sdf``: DFT geometries (Å), id = record index
``pcqm4mv2_cxsmiles``  graphium PCQM4Mv2 CSV: CXSMILES with explicit H + coordinates (Å)
``pubchem_tsv``        PubChem ``CID<TAB>SMILES``
``pubchem_sdf``        PubChem SD file (2D or 3D)
``qm9_csv``            QM9, DeepChem gdb9 CSV: SMILES + 19 labels
``qm9_xyz``            QM9 raw ``dsgdb9nsd_*.xyz`` files (directory, file or tar archive)
``smiles``             SMILES per line with optional name
``sdf``                any SD file
``xyz``                (multi-frame, extended) XYZ
=====================  ===================================================================
"""

from __future__ import annotations

from rhoflow.sources import filters, generic, pcqm4mv2, pubchem, qm9
from rhoflow.sources.base import RawEntry, SourceFormat, SourceRecord
from rhoflow.sources.filters import DEFAULT_ALLOWED_ELEMENTS, DEFAULT_SETTINGS, check

FORMATS: dict[str, SourceFormat] = {
    fmt.name: fmt
    for fmt in (
        pcqm4mv2.CSV,
        pcqm4mv2.SDF,
        pcqm4mv2.CXSMILES,
        pubchem.TSV,
        pubchem.SDF,
        qm9.CSV,
        qm9.XYZ,
        generic.SMILES,
        generic.SDF,
        generic.XYZ,
    )
}
"""Every loader by its config name."""

__all__ = [
    "DEFAULT_ALLOWED_ELEMENTS",
    "DEFAULT_SETTINGS",
    "FORMATS",
    "RawEntry",
    "SourceFormat",
    "SourceRecord",
    "check",
    "filters",
    "generic",
    "pcqm4mv2",
    "pubchem",
    "qm9",
]
