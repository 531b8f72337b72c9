"""The 3DGrid-VQGAN PubChem chemistry filter.

A molecule is kept when all its elements are allowed (default: main-group elements up to Ba),
it has at most ``max_heavy_atoms`` heavy atoms, it is neutral and no atom carries a formal
charge (no zwitterions or charge-separated resonance forms such as nitro groups written
``[N+](=O)[O-]``). :func:`check` reports the first failed test, in this order:

===============================  =============================================================
reason                           test (settings key)
===============================  =============================================================
``filtered_element``             an element not in ``allowed_elements`` (implicit H counts)
``filtered_heavy_atoms``         more heavy atoms than ``max_heavy_atoms``
``filtered_charge``              net formal charge ≠ 0 (``require_neutral``)
``filtered_charge_separation``   some atom has a formal charge, or the bond orders (and so the
                                 formal charges) are unknown (``reject_formal_charges``)
===============================  =============================================================
"""

from __future__ import annotations

from typing import Any

from rdkit import Chem

from rhoflow.molecule import has_unknown_bond_orders

DEFAULT_ALLOWED_ELEMENTS: tuple[str, ...] = (
    "H", "He",
    "Li", "Be", "B", "C", "N", "O", "F", "Ne",
    "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
    "K", "Ca", "Ga", "Ge", "As", "Se", "Br", "Kr",
    "Rb", "Sr", "In", "Sn", "Sb", "Te", "I", "Xe",
    "Cs", "Ba",
)  # fmt: skip
"""Main-group elements up to Ba (periods 1–6, groups 1, 2, 13–18; no transition metals)."""

DEFAULT_SETTINGS: dict[str, Any] = {
    "allowed_elements": list(DEFAULT_ALLOWED_ELEMENTS),
    "max_heavy_atoms": 30,
    "require_neutral": True,
    "reject_formal_charges": True,
}
"""The filter as used for 3DGrid-VQGAN; keys missing from ``settings`` take these values."""


def check(mol: Chem.Mol, settings: dict[str, Any]) -> tuple[str, str] | None:
    """``(reason, message)`` for the first test ``mol`` fails, or None if it passes.

    ``settings``: ``allowed_elements`` (symbols), ``max_heavy_atoms`` (int), ``require_neutral``
    and ``reject_formal_charges`` (bool); see :data:`DEFAULT_SETTINGS`.
    """
    conf = {**DEFAULT_SETTINGS, **settings}
    elements: set[str] = set()
    charged: list[str] = []
    implicit_h = False
    for atom in mol.GetAtoms():  # one pass: atom access dominates the cost
        elements.add(atom.GetSymbol())
        implicit_h = implicit_h or atom.GetTotalNumHs() > 0
        if atom.GetFormalCharge():
            charged.append(f"{atom.GetSymbol()}{atom.GetIdx() + 1}{atom.GetFormalCharge():+d}")
    if implicit_h:
        elements.add("H")

    bad = sorted(elements - set(conf["allowed_elements"]))
    if bad:
        word = "element" if len(bad) == 1 else "elements"
        return "filtered_element", f"{word} {', '.join(bad)} not allowed"

    heavy = mol.GetNumHeavyAtoms()
    if heavy > conf["max_heavy_atoms"]:
        return "filtered_heavy_atoms", f"{heavy} heavy atoms > {conf['max_heavy_atoms']}"

    charge = Chem.GetFormalCharge(mol)
    if conf["require_neutral"] and charge != 0:
        return "filtered_charge", f"net charge {charge:+d}"

    if conf["reject_formal_charges"] and has_unknown_bond_orders(mol):
        return "filtered_charge_separation", "bond orders unknown: formal charges cannot be checked"
    if conf["reject_formal_charges"] and charged:
        shown = ", ".join(charged[:6]) + (", ..." if len(charged) > 6 else "")
        net = f"{charge:+d}" if charge else "0"
        return "filtered_charge_separation", f"formal charges on {shown} (net {net})"
    return None
