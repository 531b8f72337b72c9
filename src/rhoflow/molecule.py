"""The molecule record and the molecule table, the form molecules take between stages.

A molecule table is one Parquet file (zstd) per shard with one row per molecule:

=================  ====================  ====================================================
column             type                  meaning
=================  ====================  ====================================================
id                 string                ``<source>:<native id>``, matches :data:`ID_PATTERN`
smiles             string                RDKit canonical isomeric SMILES (implicit H); empty
                                         when the bond orders are unknown (below)
charge             int16                 net charge (e)
multiplicity       int16                 2S+1, lowest spin for the electron count: 1 + (radical
                                         electrons mod 2), the PubChemQC/PCQM4Mv2 convention
atomic_numbers     list<int8>            every atom, hydrogens included, in ``molblock`` order
coords_angstrom    list<float64> | null  flattened [n_atoms, 3] coordinates in Å; null when the
                                         source gave none and no conformer was made yet
molblock           string                MDL V2000 block with explicit H (the bond graph, formal
                                         charges, radicals); its coordinates are those of the
                                         source, not updated by later stages
labels             string                JSON object of source labels; each key ends in its unit
                                         (``homo_lumo_gap_ev``, ``u0_hartree``, ``mu_debye``)
provenance         string                JSON object: how the current coordinates were made;
                                         ``bond_orders: "unknown"`` when they are (below)
=================  ====================  ====================================================

**Unknown bond orders.** A geometry-only input (XYZ frame, raw QM9 file) whose bond orders RDKit
cannot determine (zwitterions, nitro groups, hypervalent atoms) is kept with its connectivity
from interatomic distances: every bond single, no implicit hydrogens, formal charges or
radicals, the net charge as given, the lowest multiplicity for the electron count. Such a
molecule has ``provenance["bond_orders"] == "unknown"`` and an empty ``smiles``; its ``molblock``
holds the connectivity only. Sources mark the RDKit molecule with :func:`mark_unknown_bond_orders`
and :func:`from_rdkit` turns the mark into this form.

Rows keep the order of the input. The file is written with fixed writer options and no
timestamps, so the same molecules give byte-identical files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rhoflow.io import write_parquet

UNKNOWN_BOND_ORDERS = "unknown"
"""``provenance["bond_orders"]`` of a molecule with connectivity only (see the module docs)."""
_BOND_ORDERS_PROP = "rhoflow_bond_orders"
_NET_CHARGE_PROP = "rhoflow_net_charge"

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}$")
"""Ids are safe in file names, shell words and PyMOL object names: no spaces or quotes."""

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("smiles", pa.string(), nullable=False),
        pa.field("charge", pa.int16(), nullable=False),
        pa.field("multiplicity", pa.int16(), nullable=False),
        pa.field("atomic_numbers", pa.list_(pa.int8()), nullable=False),
        pa.field("coords_angstrom", pa.list_(pa.float64()), nullable=True),
        pa.field("molblock", pa.string(), nullable=False),
        pa.field("labels", pa.string(), nullable=False),
        pa.field("provenance", pa.string(), nullable=False),
    ]
)


def check_id(mol_id: str) -> str:
    """Return ``mol_id`` if it is a valid molecule id, else raise ``ValueError``."""
    if not ID_PATTERN.match(mol_id):
        raise ValueError(f"invalid molecule id {mol_id!r} (allowed: {ID_PATTERN.pattern})")
    return mol_id


@dataclass
class Molecule:
    """One molecule between stages. Coordinates in Å; labels keyed with their unit."""

    id: str
    smiles: str
    charge: int
    multiplicity: int
    atomic_numbers: np.ndarray  # [n_atoms] int
    molblock: str
    coords_angstrom: np.ndarray | None = None  # [n_atoms, 3] float64, Å
    labels: dict[str, float | None] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return int(len(self.atomic_numbers))

    @property
    def bond_orders_known(self) -> bool:
        """False for a connectivity-only molecule (``provenance["bond_orders"] == "unknown"``)."""
        return self.provenance.get("bond_orders") != UNKNOWN_BOND_ORDERS

    def to_rdkit(self):  # -> rdkit.Chem.Mol
        """RDKit molecule with explicit H; a conformer holds ``coords_angstrom`` if present.

        Sanitized, except a connectivity-only molecule (single bonds, valences as found).
        """
        from rdkit import Chem
        from rdkit.Geometry import Point3D

        known = self.bond_orders_known
        mol = Chem.MolFromMolBlock(self.molblock, sanitize=known, removeHs=False)
        if mol is None:
            raise ValueError(f"{self.id}: stored molblock does not parse")
        if not known:
            mol.UpdatePropertyCache(strict=False)
        mol.RemoveAllConformers()
        if self.coords_angstrom is not None:
            conf = Chem.Conformer(mol.GetNumAtoms())
            for i, (x, y, z) in enumerate(self.coords_angstrom):
                conf.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
            conf.Set3D(True)
            mol.AddConformer(conf, assignId=True)
        return mol


def mark_unknown_bond_orders(mol, charge: int) -> None:
    """Mark an RDKit molecule with connectivity only (single bonds, ``NoImplicit`` atoms) as
    having unknown bond orders and net ``charge`` (e), for :func:`from_rdkit`.

    The mark is a molecule property: RDKit's default pickling drops it
    (:class:`rhoflow.sources.SourceRecord` pickles it along).
    """
    mol.SetProp(_BOND_ORDERS_PROP, UNKNOWN_BOND_ORDERS)
    mol.SetIntProp(_NET_CHARGE_PROP, int(charge))


def has_unknown_bond_orders(mol) -> bool:
    """Whether an RDKit molecule is marked by :func:`mark_unknown_bond_orders`."""
    return bool(mol.HasProp(_BOND_ORDERS_PROP))


def from_rdkit(
    mol_id: str,
    mol,
    labels: dict[str, float | None] | None = None,
    provenance: dict[str, Any] | None = None,
    use_coordinates: bool = True,
) -> Molecule:
    """Build a :class:`Molecule` from an RDKit molecule.

    Hydrogens are made explicit (with coordinates when the input has a 3D conformer). The first
    conformer, if any and ``use_coordinates``, becomes ``coords_angstrom``. A molecule marked
    by :func:`mark_unknown_bond_orders` gets an empty SMILES, the marked charge, the lowest
    multiplicity for its electron count and ``provenance["bond_orders"] = "unknown"``.
    """
    from rdkit import Chem

    check_id(mol_id)
    provenance = dict(provenance or {})
    has_conf = use_coordinates and mol.GetNumConformers() > 0
    molh = Chem.AddHs(mol, addCoords=has_conf)
    if has_unknown_bond_orders(mol):
        smiles = ""
        charge = mol.GetIntProp(_NET_CHARGE_PROP)
        n_electrons = sum(a.GetAtomicNum() for a in molh.GetAtoms()) - charge
        multiplicity = 1 + n_electrons % 2
        provenance["bond_orders"] = UNKNOWN_BOND_ORDERS
    else:
        smiles = Chem.MolToSmiles(Chem.RemoveHs(molh, sanitize=False))
        charge = Chem.GetFormalCharge(molh)
        multiplicity = 1 + sum(a.GetNumRadicalElectrons() for a in molh.GetAtoms()) % 2
    coords = None
    if has_conf:
        coords = np.asarray(molh.GetConformer().GetPositions(), dtype=np.float64)
    else:
        molh.RemoveAllConformers()
    return Molecule(
        id=mol_id,
        smiles=smiles,
        charge=int(charge),
        multiplicity=int(multiplicity),
        atomic_numbers=np.array([a.GetAtomicNum() for a in molh.GetAtoms()], dtype=np.int64),
        molblock=Chem.MolToMolBlock(molh, includeStereo=True, kekulize=True),
        coords_angstrom=coords,
        labels=dict(labels or {}),
        provenance=provenance,
    )


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _clean_labels(labels: dict[str, float | None]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in labels.items():
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            out[key] = None
        else:
            out[key] = value
    return out


def to_table(molecules: Sequence[Molecule]) -> pa.Table:
    """Arrow table with :data:`SCHEMA` columns, in the given order."""
    return pa.table(
        {
            "id": [m.id for m in molecules],
            "smiles": [m.smiles for m in molecules],
            "charge": [m.charge for m in molecules],
            "multiplicity": [m.multiplicity for m in molecules],
            "atomic_numbers": [np.asarray(m.atomic_numbers).tolist() for m in molecules],
            "coords_angstrom": [
                None
                if m.coords_angstrom is None
                else np.asarray(m.coords_angstrom).ravel().tolist()
                for m in molecules
            ],
            "molblock": [m.molblock for m in molecules],
            "labels": [_json(_clean_labels(m.labels)) for m in molecules],
            "provenance": [_json(m.provenance) for m in molecules],
        },
        schema=SCHEMA,
    )


def write_molecules(path: str | Path, molecules: Iterable[Molecule]) -> None:
    """Write a molecule table atomically, byte-identical for identical input."""
    table = to_table(list(molecules))
    write_parquet(path, table, ["smiles"], row_group_size=4096)


def read_molecules(path: str | Path) -> list[Molecule]:
    """Read a molecule table written by :func:`write_molecules`."""
    table = pq.read_table(path, schema=SCHEMA)
    out = []
    for row in table.to_pylist():
        coords = row["coords_angstrom"]
        out.append(
            Molecule(
                id=row["id"],
                smiles=row["smiles"],
                charge=int(row["charge"]),
                multiplicity=int(row["multiplicity"]),
                atomic_numbers=np.asarray(row["atomic_numbers"], dtype=np.int64),
                molblock=row["molblock"],
                coords_angstrom=None if coords is None else np.asarray(coords).reshape(-1, 3),
                labels=json.loads(row["labels"]),
                provenance=json.loads(row["provenance"]),
            )
        )
    return out
