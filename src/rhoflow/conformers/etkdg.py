"""Conformer search: RDKit ETKDGv3 embedding, MMFF94 minimisation, pruning, k lowest.

1. ETKDGv3 embeds up to ``n_conformers`` conformers (``randomSeed = seed``, one thread:
   deterministic) and drops near-duplicates at embedding (``pruneRmsThresh``, RDKit's
   symmetry-aware heavy-atom RMS).
2. MMFF94 minimises every conformer (energies in kcal/mol). Molecules MMFF94 cannot type
   (H–F, H–Cl, boranes, …) fall back to UFF, recorded as ``forcefield``; only a molecule that
   neither force field can handle fails with ``forcefield_failed``.
3. Minimisation funnels different embeddings into the same minimum, so duplicates are removed
   again: in order of MMFF energy a conformer is kept if its symmetry-aware heavy-atom RMS
   (Å, after alignment) to every kept conformer exceeds ``rms_prune_angstrom``.
4. The ``k_lowest`` lowest distinct conformers are returned.

Coordinates are in Å, in the atom order of the molecule given (explicit hydrogens included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers, rdMolAlign

from rhoflow.parallel import StageFailure

MMFF_MAX_ITERS = 2000
MMFF94_ELEMENTS: frozenset[int] = frozenset(
    {1, 3, 6, 7, 8, 9, 11, 12, 14, 15, 16, 17, 19, 20, 26, 29, 30, 35, 53}
)
"""Elements MMFF94 has atom types for (H Li C N O F Na Mg Si P S Cl K Ca Fe Cu Zn Br I)."""


@dataclass(frozen=True)
class Conformer:
    """One force-field-minimised conformer: coordinates in Å, energy in kcal/mol."""

    coords_angstrom: np.ndarray  # [n_atoms, 3]
    forcefield_energy_kcal_per_mol: float


@dataclass(frozen=True)
class ConformerSearch:
    """The k lowest distinct conformers (ascending energy) and search counts."""

    conformers: list[Conformer]
    n_embedded: int  # returned by ETKDG, after its own RMS pruning
    n_after_prune: int  # distinct after minimisation
    forcefield: str  # "MMFF94" or "UFF"


def search_conformers(
    mol: Chem.Mol,
    n_conformers: int = 50,
    seed: int = 42,
    rms_prune_angstrom: float = 0.1,
    k_lowest: int = 5,
) -> ConformerSearch:
    """Embed, MMFF94-minimise and prune conformers of ``mol`` (explicit H); keep the k lowest.

    Raises :class:`StageFailure` ``embed_failed`` (no conformer) or ``forcefield_failed``
    (MMFF94 has no parameters).
    """
    mol = Chem.Mol(mol)
    forcefield = choose_forcefield(mol)
    conf_ids = embed(mol, n_conformers, seed, rms_prune_angstrom)
    energies = minimize(mol, forcefield)
    distinct = prune(mol, conf_ids, energies, rms_prune_angstrom)
    chosen = distinct[:k_lowest]
    conformers = [
        Conformer(
            coords_angstrom=np.array(mol.GetConformer(cid).GetPositions(), dtype=np.float64),
            forcefield_energy_kcal_per_mol=energies[cid],
        )
        for cid in chosen
    ]
    return ConformerSearch(
        conformers, n_embedded=len(conf_ids), n_after_prune=len(distinct), forcefield=forcefield
    )


def choose_forcefield(mol: Chem.Mol) -> str:
    """``"MMFF94"`` when it has all parameters, else ``"UFF"``; raise ``forcefield_failed``
    naming what MMFF94 cannot handle when UFF cannot either."""
    if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
        return "MMFF94"
    if rdForceFieldHelpers.UFFHasAllMoleculeParams(mol):
        return "UFF"
    elements = sorted({a.GetAtomicNum() for a in mol.GetAtoms()} - MMFF94_ELEMENTS)
    if elements:
        symbols = ", ".join(Chem.GetPeriodicTable().GetElementSymbol(z) for z in elements)
        detail = f"no MMFF94 atom types for element(s) {symbols}"
    elif rdForceFieldHelpers.MMFFGetMoleculeProperties(mol) is None:
        detail = "MMFF94 atom typing failed (unsupported bonding or valence)"
    else:
        detail = "MMFF94 lacks bond/angle/torsion parameters for this molecule"
    raise StageFailure("forcefield_failed", f"{detail}; UFF has no parameters either")


def embed(mol: Chem.Mol, n_conformers: int, seed: int, rms_prune_angstrom: float) -> list[int]:
    """ETKDGv3-embed conformers into ``mol`` in place; return their ids (``embed_failed``: none)."""
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = int(seed)
    params.pruneRmsThresh = float(rms_prune_angstrom)
    params.numThreads = 1
    conf_ids = list(rdDistGeom.EmbedMultipleConfs(mol, int(n_conformers), params))
    if not conf_ids:
        raise StageFailure(
            "embed_failed", f"ETKDGv3 embedded 0 of {n_conformers} conformers (seed {seed})"
        )
    return conf_ids


def minimize(mol: Chem.Mol, forcefield: str = "MMFF94") -> dict[int, float]:
    """Minimise every conformer of ``mol`` in place with MMFF94 or UFF; energies in kcal/mol by
    conformer id."""
    if forcefield == "MMFF94":
        results = rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(
            mol, numThreads=1, maxIters=MMFF_MAX_ITERS, mmffVariant="MMFF94"
        )
    else:
        results = rdForceFieldHelpers.UFFOptimizeMoleculeConfs(
            mol, numThreads=1, maxIters=MMFF_MAX_ITERS
        )
    conformers = list(mol.GetConformers())
    energies = {c.GetId(): float(e) for c, (_, e) in zip(conformers, results, strict=True)}
    if not all(np.isfinite(e) for e in energies.values()):
        raise StageFailure("forcefield_failed", f"{forcefield} returned a non-finite energy")
    return energies


def prune(
    mol: Chem.Mol, conf_ids: list[int], energies: dict[int, float], rms_prune_angstrom: float
) -> list[int]:
    """Distinct conformer ids in ascending energy (heavy-atom RMS > threshold, Å, to all kept)."""
    probe = Chem.RemoveHs(mol, sanitize=False) if _n_heavy(mol) else Chem.Mol(mol)
    kept: list[int] = []
    for cid in sorted(conf_ids, key=lambda c: (energies[c], c)):
        if all(_rms(probe, cid, ref) > rms_prune_angstrom for ref in kept):
            kept.append(cid)
    return kept


def _n_heavy(mol: Chem.Mol) -> int:
    return sum(1 for a in mol.GetAtoms() if a.GetAtomicNum() > 1)


def _rms(mol: Chem.Mol, conf_id: int, ref_id: int) -> float:
    """Symmetry-aware RMS (Å) between two conformers of ``mol`` after optimal alignment."""
    if mol.GetNumAtoms() < 2:
        return 0.0
    return float(rdMolAlign.GetBestRMS(mol, mol, prbId=conf_id, refId=ref_id))
