"""What every molecule source provides.

Reading a source has two steps so that the expensive one can run in parallel worker processes
while shard membership stays a function of input order alone:

1. ``read_raw(path, options)`` streams :class:`RawEntry` items in file order: the native id and
   the undecoded payload (a SMILES line, a mol block, an XYZ frame…). Cheap, sequential.
2. ``parse(entry, options)`` turns one entry into a :class:`SourceRecord`: an RDKit molecule
   (hydrogens explicit where the source gives them; a 3D conformer in Å when the source has
   coordinates) and its labels, or a ``(reason, message)`` failure. Picklable in and out.
   A geometry whose bond orders cannot be determined is a molecule with connectivity only,
   marked by :func:`rhoflow.molecule.mark_unknown_bond_orders` (not a failure).

Labels are floats keyed with their unit (``homo_lumo_gap_ev``, ``u0_hartree``); missing values
are ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RawEntry:
    """One undecoded molecule from a source file, in file order."""

    native_id: str
    payload: Any


@dataclass
class SourceRecord:
    """A parsed molecule: ``mol`` (RDKit, Å) and labels, or ``failure = (reason, message)``."""

    native_id: str
    mol: Any = None  # rdkit.Chem.Mol | None
    labels: dict[str, float | None] = field(default_factory=dict)
    failure: tuple[str, str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # RDKit's default pickling drops molecule properties such as the unknown-bond-order mark
        state = dict(self.__dict__)
        if self.mol is not None:
            from rdkit import Chem

            state["mol"] = self.mol.ToBinary(Chem.PropertyPickleOptions.MolProps)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["mol"] is not None:
            from rdkit import Chem

            state = {**state, "mol": Chem.Mol(state["mol"])}
        self.__dict__.update(state)


@dataclass(frozen=True)
class SourceFormat:
    """A loader: its name in config, reader and parser."""

    name: str
    read_raw: Callable[[Path, dict[str, Any]], Iterator[RawEntry]]
    parse: Callable[[RawEntry, dict[str, Any]], SourceRecord]
    description: str
