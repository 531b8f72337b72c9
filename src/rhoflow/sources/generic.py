"""Generic molecule files (SMILES lists, SD files, XYZ trajectories) and the parsing helpers the
dataset loaders share.

``smiles`` — one molecule per line::

    <SMILES> [<name>]

    SMILES   a (plain) SMILES string; explicit ``[H]`` atoms are kept as given
    name     optional second whitespace-separated column; anything after it is ignored
    ``#`` comment lines and blank lines are skipped.
    native id: the name if given and valid (:data:`rhoflow.molecule.ID_PATTERN`), else the
    1-based line number.

``sdf`` — MDL SD file, records separated by a ``$$$$`` line; each record is a mol block::

    line 1   title                         native id when valid, else the 0-based record index
    line 2   program line                  ``2D``/``3D`` flag in columns 21-22
    line 3   comment
    line 4   counts line                   ``aaabbb ... V2000`` (or V3000 block)
    atoms    x y z (Å) symbol ...          coordinates kept only when the block is 3D
    bonds    atom1 atom2 order ...
    M  END
    > <NAME> / value lines                 data items (ignored)

``xyz`` — one or more frames, each::

    line 1   number of atoms n
    line 2   comment; extended XYZ puts ``key=value`` pairs here, e.g.
             ``Properties=species:S:1:pos:R:3:forces:R:3 energy=-97208.41 pbc="F F F"``
    n lines  element (symbol or atomic number) x y z (Å) [further columns]

    With ``Properties=`` the ``species`` and ``pos`` columns are located from it; without, they
    are columns 1 and 2-4. Bonds, bond orders and formal charges come from
    ``rdDetermineBonds.DetermineBonds`` with the net charge ``options["charge"]`` (default 0);
    when it cannot assign bond orders (zwitterions, nitro groups, hypervalent atoms) the frame
    keeps its connectivity from distances only (:func:`mol_from_connectivity`).
    ``energy=`` becomes label ``energy_<unit>`` only when ``options["energy_unit"]`` names its
    unit (e.g. ``kcal_per_mol``), since the file does not say.
    native id: ``<file stem>-<0-based frame index>`` (characters not allowed in ids become ``_``).
"""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDetermineBonds
from rdkit.Geometry import Point3D

from rhoflow.elements import ATOMIC_NUMBERS
from rhoflow.molecule import ID_PATTERN, mark_unknown_bond_orders
from rhoflow.sources.base import RawEntry, SourceFormat, SourceRecord

_SMILES_PARAMS = Chem.SmilesParserParams()
_SMILES_PARAMS.removeHs = False  # keep explicit H (and so CXSMILES coordinates per atom)
_SMILES_PARAMS.parseName = False
_SMILES_PARAMS.allowCXSMILES = True
_UNIT = re.compile(r"^[a-z][a-z0-9_]*$")
_CaptureErrorLog = getattr(rdBase, "CaptureErrorLog", None)  # RDKit >= 2026.03


class EntryError(Exception):
    """Bad data in one entry; becomes ``SourceRecord.failure = (reason, message)``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parser(
    fn: Callable[[RawEntry, dict[str, Any]], SourceRecord],
) -> Callable[[RawEntry, dict[str, Any]], SourceRecord]:
    """Wrap a parse function so bad molecule data gives a failure record instead of raising.

    :class:`EntryError` keeps its reason; RDKit's ``ValueError``/``RuntimeError`` (sanitization,
    bond perception, invariant violations) become ``invalid_structure``. RDKit logging is off
    while parsing.
    """

    @functools.wraps(fn)
    def parse(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
        try:
            with rdBase.BlockLogs():  # RDKit's messages end up in the failure, not on stderr
                return fn(entry, options)
        except EntryError as exc:
            return SourceRecord(entry.native_id, failure=(exc.reason, exc.message))
        except (ValueError, RuntimeError) as exc:
            message = _summarize(str(exc)) or type(exc).__name__
            return SourceRecord(entry.native_id, failure=("invalid_structure", message))

    return parse


def _summarize(log: str, limit: int = 300) -> str:
    """RDKit log text → one short line: no timestamps, stack traces or caret lines."""
    kept: list[str] = []
    for raw in log.splitlines():
        line = re.sub(r"^\[\d\d:\d\d:\d\d\]\s*", "", raw).strip()
        if line.startswith(("Violation occurred", "Stacktrace", "RDKIT:", "BOOST:")):
            continue
        if not line or set(line) <= set("*-~^ ") or line in kept or re.match(r"^\d+# ", line):
            continue
        kept.append(line)
    return "; ".join(kept)[:limit]


def quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Call an RDKit function with its logging silenced; return (result, summarized errors).

    RDKit before 2026.03 cannot capture its error log: the summary is then empty.
    """
    with rdBase.BlockLogs():
        if _CaptureErrorLog is None:
            return fn(*args, **kwargs), ""
        with _CaptureErrorLog() as capture:
            result = fn(*args, **kwargs)
    return result, _summarize(capture.messages)


def valid_id(text: str) -> bool:
    """Whether ``text`` can serve as a native id (:data:`rhoflow.molecule.ID_PATTERN`)."""
    return bool(ID_PATTERN.match(text))


def open_text(path: Path) -> TextIO:
    """Open a text file for reading, gunzipping ``*.gz``."""
    if Path(path).suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def keep_3d_conformer(mol: Chem.Mol) -> Chem.Mol:
    """Drop conformers unless the first one is 3D (2D depiction coordinates are not geometry)."""
    if mol.GetNumConformers() and not mol.GetConformer().Is3D():
        mol.RemoveAllConformers()
    return mol


def mol_from_smiles(smiles: str) -> Chem.Mol:
    """RDKit molecule from (CX)SMILES, sanitized, explicit H kept as written.

    CXSMILES coordinates ``|(x,y,z;...)|`` (Å) become a 3D conformer in SMILES atom order.
    Raises :class:`EntryError` ``invalid_smiles``.
    """
    mol, log = quiet(Chem.MolFromSmiles, smiles, _SMILES_PARAMS)
    if mol is None or mol.GetNumAtoms() == 0:
        shown = smiles if len(smiles) <= 80 else smiles[:77] + "..."
        # drop RDKit's echo of the input and its closing "Failed parsing SMILES ..." line
        details = [
            line.removeprefix("SMILES Parse Error: ")
            for line in log.split("; ")
            if line and line not in smiles and "Failed parsing SMILES" not in line
        ]
        fallback = "no atoms" if mol is not None else "rejected by RDKit"
        raise EntryError("invalid_smiles", f"{shown!r}: {'; '.join(details) or fallback}")
    return keep_3d_conformer(mol)


def mol_from_molblock(block: str) -> Chem.Mol:
    """RDKit molecule from a mol block, sanitized, hydrogens as given, 3D conformer kept (Å).

    Raises :class:`EntryError` ``invalid_structure``.
    """
    mol, log = quiet(Chem.MolFromMolBlock, block, True, False)
    if mol is None:
        lines = block.splitlines()
        if len(lines) < 4:
            raise EntryError("invalid_structure", f"mol block too short ({len(lines)} lines)")
        hint = f"counts line {lines[3].strip()!r}"
        raise EntryError("invalid_structure", log or f"RDKit could not read the mol block ({hint})")
    if mol.GetNumAtoms() == 0:
        raise EntryError("invalid_structure", "mol block has no atoms")
    return keep_3d_conformer(mol)


def set_conformer(mol: Chem.Mol, coords: list[tuple[float, float, float]]) -> Chem.Mol:
    """Replace the conformers of ``mol`` by one 3D conformer with ``coords`` (Å), atom order."""
    conf = Chem.Conformer(mol.GetNumAtoms())
    for i, (x, y, z) in enumerate(coords):
        conf.SetAtomPosition(i, Point3D(x, y, z))
    conf.Set3D(True)
    mol.RemoveAllConformers()
    mol.AddConformer(conf, assignId=True)
    return mol


def element_number(symbol: str) -> int:
    """Atomic number from an element symbol (any case) or a number; raises :class:`EntryError`."""
    if symbol.isdigit() and 0 < int(symbol) < 119:
        return int(symbol)
    z = ATOMIC_NUMBERS.get(symbol.capitalize())
    if z is None:
        raise EntryError("invalid_structure", f"unknown element {symbol!r}")
    return z


def parse_float(text: str) -> float:
    """Float from a coordinate/value field; accepts Mathematica ``1.2*^-6`` exponents."""
    try:
        return float(text.replace("*^", "e"))
    except ValueError:
        raise EntryError("invalid_structure", f"not a number: {text!r}") from None


def bare_mol(numbers: list[int], coords: list[tuple[float, float, float]]) -> Chem.RWMol:
    """Atoms without bonds, with a 3D conformer (Å), in the given order."""
    mol = Chem.RWMol()
    for z in numbers:
        mol.AddAtom(Chem.Atom(z))
    set_conformer(mol, coords)
    return mol


def mol_from_atoms(
    numbers: list[int], coords: list[tuple[float, float, float]], charge: int
) -> Chem.Mol:
    """Molecule from elements and coordinates (Å): bonds by ``DetermineBonds`` for net ``charge``.

    Stereo is assigned from the coordinates. When bond orders cannot be determined, the
    connectivity-only molecule of :func:`mol_from_connectivity`.
    """
    mol = bare_mol(numbers, coords)
    try:
        _, log = quiet(rdDetermineBonds.DetermineBonds, mol, charge=charge)
        determined = not log
    except (ValueError, RuntimeError):
        determined = False
    if not determined:
        return mol_from_connectivity(numbers, coords, charge)
    mol = mol.GetMol()
    Chem.AssignStereochemistryFrom3D(mol)
    return mol


MIN_DISTANCE_ANGSTROM = 0.5
"""Closer atoms make a geometry invalid (H2, the shortest bond, is 0.74 Å)."""


def mol_from_connectivity(
    numbers: list[int], coords: list[tuple[float, float, float]], charge: int
) -> Chem.Mol:
    """Molecule with bonds from interatomic distances only (``DetermineConnectivity``), all
    single, without implicit H, formal charges or radicals, marked as having unknown bond orders
    and net ``charge`` (:func:`rhoflow.molecule.mark_unknown_bond_orders`). Not sanitized.

    Raises :class:`EntryError` ``invalid_structure`` for atoms closer than
    :data:`MIN_DISTANCE_ANGSTROM`.
    """
    mol = bare_mol(numbers, coords)
    if len(numbers) > 1:
        distances = Chem.Get3DDistanceMatrix(mol)
        np.fill_diagonal(distances, np.inf)
        i, j = np.unravel_index(np.argmin(distances), distances.shape)
        if distances[i, j] < MIN_DISTANCE_ANGSTROM:
            message = f"atoms {i + 1} and {j + 1} are {distances[i, j]:.3f} Å apart"
            raise EntryError("invalid_structure", message)
    quiet(rdDetermineBonds.DetermineConnectivity, mol, useHueckel=False)
    for atom in mol.GetAtoms():
        atom.SetNoImplicit(True)
    mol.UpdatePropertyCache(strict=False)
    mol = mol.GetMol()
    mark_unknown_bond_orders(mol, charge)
    return mol


def iter_sdf_records(path: Path) -> Iterator[str]:
    """Stream the records of an SD file (text before each ``$$$$`` line, trailing one too)."""
    lines: list[str] = []
    with open_text(path) as fh:
        for line in fh:
            if line.startswith("$$$$"):
                yield "".join(lines)
                lines = []
            else:
                lines.append(line)
    if "".join(lines).strip():
        yield "".join(lines)


# --- smiles -------------------------------------------------------------------------------


def read_smiles(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Entries of a SMILES list; payload = the SMILES string."""
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            name = fields[1] if len(fields) > 1 else ""
            yield RawEntry(name if valid_id(name) else str(lineno), fields[0])


@parser
def parse_smiles(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule from a SMILES entry; no coordinates, no labels."""
    return SourceRecord(entry.native_id, mol=mol_from_smiles(entry.payload))


# --- sdf ----------------------------------------------------------------------------------


def read_sdf(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Entries of an SD file; payload = the record text."""
    for index, record in enumerate(iter_sdf_records(path)):
        title = record.split("\n", 1)[0].strip()
        yield RawEntry(title if valid_id(title) else str(index), record)


@parser
def parse_sdf(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule from a mol block; 3D coordinates kept (Å), no labels."""
    return SourceRecord(entry.native_id, mol=mol_from_molblock(entry.payload))


# --- xyz ----------------------------------------------------------------------------------


def read_xyz(path: Path, options: dict[str, Any]) -> Iterator[RawEntry]:
    """Frames of a (multi-frame, extended) XYZ file; payload = the frame text.

    Raises ``ValueError`` when a frame does not start with an atom count, or for bad options
    (``charge`` not an integer, ``energy_unit`` not a lower-case unit name).
    """
    unit = options.get("energy_unit")
    if unit is not None and not _UNIT.match(str(unit)):
        raise ValueError(f"energy_unit {unit!r} is not a unit name like 'kcal_per_mol'")
    int(options.get("charge", 0))  # a bad charge is a config error: raise here, not per frame
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(path).name.split(".")[0]).lstrip("_.+-")
    stem = stem or "xyz"
    with open_text(path) as fh:
        frame = 0
        while line := fh.readline():
            if not line.strip():
                continue
            try:
                n_atoms = int(line)
            except ValueError:
                message = f"{path}: frame {frame}: expected an atom count, got {line!r}"
                raise ValueError(message) from None
            body = [fh.readline() for _ in range(n_atoms + 1)]
            yield RawEntry(f"{stem}-{frame}", line + "".join(body))
            frame += 1


def _xyz_columns(comment: str) -> tuple[int, int]:
    """(species column, first pos column) from an extended-XYZ ``Properties=`` field."""
    match = re.search(r"(?:^|\s)Properties=(\S+)", comment)
    if not match:
        return 0, 1
    columns: dict[str, int] = {}
    fields = match.group(1).split(":")
    offset = 0
    for name, _type, width in zip(fields[0::3], fields[1::3], fields[2::3], strict=False):
        columns[name.lower()] = offset
        offset += int(width)
    if "species" not in columns or "pos" not in columns:
        raise EntryError("invalid_structure", f"Properties={match.group(1)} lacks species or pos")
    return columns["species"], columns["pos"]


@parser
def parse_xyz(entry: RawEntry, options: dict[str, Any]) -> SourceRecord:
    """Molecule from an XYZ frame: atoms in file order, coordinates (Å), perceived bonds."""
    lines = entry.payload.splitlines()
    try:
        n_atoms = int(lines[0])
    except (IndexError, ValueError):
        raise EntryError("invalid_structure", "frame does not start with an atom count") from None
    comment = lines[1] if len(lines) > 1 else ""
    atom_lines = [line.split() for line in lines[2 : 2 + n_atoms]]
    if n_atoms < 1 or len(atom_lines) < n_atoms:
        raise EntryError(
            "invalid_structure", f"frame announces {n_atoms} atoms, has {len(atom_lines)}"
        )
    species, pos = _xyz_columns(comment)
    numbers, coords = [], []
    for fields in atom_lines:
        if len(fields) < max(species, pos + 2) + 1:
            raise EntryError("invalid_structure", f"short atom line {' '.join(fields)!r}")
        numbers.append(element_number(fields[species]))
        coords.append(tuple(parse_float(v) for v in fields[pos : pos + 3]))
    mol = mol_from_atoms(numbers, coords, int(options.get("charge", 0)))
    labels: dict[str, float | None] = {}
    unit = options.get("energy_unit")
    if unit is not None:
        match = re.search(r'(?:^|\s)energy="?([^\s"]+)', comment)
        labels[f"energy_{unit}"] = parse_float(match.group(1)) if match else None
    return SourceRecord(entry.native_id, mol=mol, labels=labels)


SMILES = SourceFormat(
    "smiles", read_smiles, parse_smiles, "SMILES per line, optional name column; no coordinates"
)
SDF = SourceFormat("sdf", read_sdf, parse_sdf, "MDL SD file; title as id; 3D coordinates kept")
XYZ = SourceFormat(
    "xyz",
    read_xyz,
    parse_xyz,
    "(multi-frame, extended) XYZ; bonds perceived with options charge; energy= with energy_unit",
)
