"""QM9 (134k GDB-9 molecules, B3LYP/6-31G(2df,p)) in two layouts.

``qm9_csv`` — DeepChem's ``gdb9.sdf.csv`` layout (header row, comma separated, any column order):

    =================================  ====================================  ==================
    column                             meaning                               label key
    =================================  ====================================  ==================
    mol_id                             ``gdb_<index>``; the native id
    smiles                             SMILES (no coordinates)
    A, B, C                            rotational constants, GHz             ``a_ghz`` ...
    mu                                 dipole moment, Debye                  ``mu_debye``
    alpha                              isotropic polarizability, Bohr³       ``alpha_bohr3``
    homo, lumo, gap                    orbital energies, Hartree             ``homo_hartree`` ...
    r2                                 electronic spatial extent, Bohr²      ``r2_bohr2``
    zpve                               zero-point vibrational energy, Ha     ``zpve_hartree``
    u0, u298, h298, g298               U(0 K), U, H, G at 298.15 K, Hartree  ``u0_hartree`` ...
    cv                                 heat capacity at 298.15 K, cal/mol/K  ``cv_cal_per_mol_k``
    u0_atom, u298_atom, h298_atom,     atomization energies, kcal/mol        ``u0_atom_kcal_per
    g298_atom                                                                _mol`` ...
    =================================  ====================================  ==================

``qm9_xyz`` — the raw files ``dsgdb9nsd_NNNNNN.xyz`` of the original release (Ramakrishnan et
al. 2014), given as a directory of them (read in name order), one file, or the release archive
(``.tar``, ``.tar.bz2``, ``.tar.gz``; members in archive order). Each file::

    line 1       number of atoms n
    line 2       ``gdb <index>`` then A B C (GHz), mu (D), alpha (Bohr³), homo lumo gap (Ha),
                 r2 (Bohr²), zpve U0 U H G (Ha), Cv (cal/mol/K); U, H, G are at 298.15 K
    n lines      element, x y z (Å), Mulliken charge (e; not kept)
    line n+3     harmonic frequencies (cm⁻¹; not kept)
    line n+4     SMILES from GDB-17, SMILES of the B3LYP-relaxed geometry
    line n+5     InChI of the same two

    Numbers may use Mathematica exponents (``1.2345*^-6``). The molecule keeps the file's atom
    order and coordinates. Bonds, bond orders and formal charges are those of the relaxed
    SMILES, mapped onto the xyz atoms by matching its hydrogen-complete graph to the geometry
    (each SMILES bond must join atoms closer than 1.45 × the sum of their covalent radii); when
    no such mapping exists, they come from the geometry alone (``rdDetermineBonds.DetermineBonds``,
    net charge 0), and when that cannot assign bond orders either (zwitterions, unusual
    valences) the molecule keeps its connectivity from distances with unknown bond orders
    (:func:`rhoflow.sources.generic.mol_from_connectivity`). Stereo is assigned from the
    coordinates (not for connectivity only). Native id ``gdb_<index>``;
    labels as for ``qm9_csv`` without the atomization energies (U0 → ``u0_hartree``,
    U/H/G → ``u298/h298/g298_hartree``).
"""

from __future__ import annotations

import csv
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rdkit import Chem
from rdkit.Chem import rdDetermineBonds

from rhoflow.sources.base import RawEntry, SourceFormat, SourceRecord
from rhoflow.sources.generic import (
    EntryError,
    bare_mol,
    element_number,
    mol_from_atoms,
    mol_from_smiles,
    open_text,
    parse_float,
    parser,
    quiet,
    valid_id,
)

CSV_LABELS: dict[str, str] = {
    "A": "a_ghz",
    "B": "b_ghz",
    "C": "c_ghz",
    "mu": "mu_debye",
    "alpha": "alpha_bohr3",
    "homo": "homo_hartree",
    "lumo": "lumo_hartree",
    "gap": "gap_hartree",
    "r2": "r2_bohr2",
    "zpve": "zpve_hartree",
    "u0": "u0_hartree",
    "u298": "u298_hartree",
    "h298": "h298_hartree",
    "g298": "g298_hartree",
    "cv": "cv_cal_per_mol_k",
    "u0_atom": "u0_atom_kcal_per_mol",
    "u298_atom": "u298_atom_kcal_per_mol",
    "h298_atom": "h298_atom_kcal_per_mol",
    "g298_atom": "g298_atom_kcal_per_mol",
}
"""DeepChem column → label key (with unit)."""

XYZ_LABELS: tuple[str, ...] = tuple(CSV_LABELS.values())[:15]
"""Label keys of the 15 values after ``gdb <index>`` on line 2 of a raw QM9 file, in order."""

_TAR_SUFFIXES = (".tar", ".tar.bz2", ".tar.gz", ".tgz")
_COV_FACTOR = 1.45
"""A SMILES bond may join xyz atoms closer than this × the sum of their covalent radii."""


def _number(text: str | None) -> float | None:
    if text is None or not text.strip() or text.strip().lower() == "nan":
        return None
    return parse_float(text.strip())


# --- qm9_csv ------------------------------------------------------------------------------


def read_csv(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Rows of a DeepChem QM9 CSV; payload = the row as a dict. Raises if it lacks columns."""
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        missing = {"mol_id", "smiles"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a QM9 CSV (missing columns {sorted(missing)})")
        for index, row in enumerate(reader):
            mol_id = (row.get("mol_id") or "").strip()
            yield RawEntry(mol_id if valid_id(mol_id) else str(index), row)


@parser
def parse_csv(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule from the SMILES column (no coordinates) and the labels present in the row."""
    row: dict[str, str | None] = entry.payload
    # csv.DictReader files surplus fields under the key None and fills missing ones with None
    if None in row or None in row.values():
        raise EntryError("invalid_structure", "row length does not match the header")
    labels = {key: _number(row[col]) for col, key in CSV_LABELS.items() if col in row}
    return SourceRecord(entry.native_id, mol=mol_from_smiles(row["smiles"] or ""), labels=labels)


# --- qm9_xyz ------------------------------------------------------------------------------


def _xyz_id(text: str, name: str) -> str:
    """``gdb_<index>`` from line 2, else from a ``dsgdb9nsd_NNNNNN`` file name, else the stem."""
    lines = text.split("\n", 2)
    fields = lines[1].split() if len(lines) > 1 else []
    if len(fields) > 1 and fields[0] == "gdb" and fields[1].isdigit():
        return f"gdb_{int(fields[1])}"
    match = re.search(r"dsgdb9nsd_(\d+)", name)
    if match:
        return f"gdb_{int(match.group(1))}"
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(name).name.split(".")[0]).lstrip("_.+-")
    return stem or "qm9"


def read_xyz(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Raw QM9 files from a directory, a file or a tar archive; payload = the file text."""
    path = Path(path)
    if path.is_dir():
        for file in sorted(p for p in path.iterdir() if p.suffix == ".xyz"):
            text = file.read_text(encoding="utf-8")
            yield RawEntry(_xyz_id(text, file.name), text)
    elif path.name.endswith(_TAR_SUFFIXES):
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".xyz"):
                    data = tar.extractfile(member)
                    text = data.read().decode() if data is not None else ""
                    yield RawEntry(_xyz_id(text, member.name), text)
    else:
        text = path.read_text(encoding="utf-8")
        yield RawEntry(_xyz_id(text, path.name), text)


def _bonds_from_template(
    numbers: list[int], coords: list[tuple[float, float, float]], smiles: str
) -> Chem.Mol | None:
    """Molecule with the bonds, bond orders, charges and radicals of ``smiles`` on the xyz atoms,
    or None when its hydrogen-complete graph does not fit the geometry."""
    template, _ = quiet(Chem.MolFromSmiles, smiles)
    if template is None:
        return None
    template = Chem.AddHs(template)
    if sorted(a.GetAtomicNum() for a in template.GetAtoms()) != sorted(numbers):
        return None
    # candidate bonds: generous distance cutoff, so strained rings may add spurious ones
    graph = bare_mol(numbers, coords)
    quiet(rdDetermineBonds.DetermineConnectivity, graph, covFactor=_COV_FACTOR)
    pattern = Chem.RWMol(template)
    for bond in pattern.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    for atom in pattern.GetAtoms():
        atom.SetFormalCharge(0)
        atom.SetNumRadicalElectrons(0)
        atom.SetIsAromatic(False)
    # all atoms take part, so a match maps the template onto a spanning subgraph of candidates
    match = graph.GetSubstructMatch(pattern)
    if not match:
        return None
    out = bare_mol(numbers, coords)
    for bond in template.GetBonds():
        begin, end = match[bond.GetBeginAtomIdx()], match[bond.GetEndAtomIdx()]
        out.AddBond(begin, end, bond.GetBondType())
        out.GetBondBetweenAtoms(begin, end).SetIsAromatic(bond.GetIsAromatic())
    for atom in template.GetAtoms():
        target = out.GetAtomWithIdx(match[atom.GetIdx()])
        target.SetFormalCharge(atom.GetFormalCharge())
        target.SetNumRadicalElectrons(atom.GetNumRadicalElectrons())
        target.SetIsAromatic(atom.GetIsAromatic())
        target.SetNoImplicit(True)
    try:
        Chem.SanitizeMol(out)
    except (ValueError, RuntimeError):
        return None
    Chem.AssignStereochemistryFrom3D(out)
    return out.GetMol()


@parser
def parse_xyz(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule in file atom order with coordinates (Å) and the 15 labels of line 2."""
    lines = entry.payload.splitlines()
    try:
        n_atoms = int(lines[0])
    except (IndexError, ValueError):
        raise EntryError("invalid_structure", "first line is not an atom count") from None
    if n_atoms < 1 or len(lines) < n_atoms + 5:
        message = f"{len(lines)} lines for {n_atoms} atoms (expected {n_atoms + 5})"
        raise EntryError("invalid_structure", message)
    props = lines[1].split()
    if len(props) != 17 or props[0] != "gdb":
        raise EntryError("invalid_structure", f"line 2 is not 'gdb <index>' + 15 values: {props}")
    labels = {key: parse_float(value) for key, value in zip(XYZ_LABELS, props[2:], strict=True)}
    numbers, coords = [], []
    for line in lines[2 : 2 + n_atoms]:
        fields = line.split()
        if len(fields) < 4:
            raise EntryError("invalid_structure", f"short atom line {line!r}")
        numbers.append(element_number(fields[0]))
        coords.append((parse_float(fields[1]), parse_float(fields[2]), parse_float(fields[3])))
    smiles = lines[3 + n_atoms].split()
    mol = _bonds_from_template(numbers, coords, smiles[-1]) if smiles else None
    if mol is None:
        mol = mol_from_atoms(numbers, coords, charge=0)
    return SourceRecord(entry.native_id, mol=mol, labels=labels)


CSV = SourceFormat(
    "qm9_csv", read_csv, parse_csv, "QM9, DeepChem gdb9 CSV: SMILES + 19 labels; no coordinates"
)
XYZ = SourceFormat(
    "qm9_xyz",
    read_xyz,
    parse_xyz,
    "QM9 raw dsgdb9nsd_*.xyz (dir, file or tar): B3LYP geometry (Å) + 15 labels",
)
