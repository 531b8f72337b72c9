"""The label columns a source's molecules have in the labels table training reads, known from the
config alone, so that a config asking for a target its sources lack fails before any job runs.

With ``train.labels: source`` the table is ``results/labels/<source>.parquet``: the source's own
labels as ``source_<label>`` columns (:data:`SOURCE_LABELS`, by format). With a density engine
it is ``results/density/<engine>/labels.parquet``: the engine's labels (:data:`ENGINE_LABELS`)
for every molecule it computed, beside the ``source_<label>`` columns of the molecule's source.
Store checks (``n_electrons_dm`` …) are columns too, but no training target.

Called by :func:`rhoflow.config.validate` when the Snakefile is parsed: no imports, no data read.
The tables below restate what the loaders (:mod:`rhoflow.sources`) and the engines
(:mod:`rhoflow.density`) write; ``tests/test_labels.py`` checks that they agree.
"""

from __future__ import annotations

_QM9_XYZ = (
    "a_ghz", "b_ghz", "c_ghz", "mu_debye", "alpha_bohr3", "homo_hartree", "lumo_hartree",
    "gap_hartree", "r2_bohr2", "zpve_hartree", "u0_hartree", "u298_hartree", "h298_hartree",
    "g298_hartree", "cv_cal_per_mol_k",
)  # fmt: skip
_QM9_ATOMIZATION = (
    "u0_atom_kcal_per_mol", "u298_atom_kcal_per_mol", "h298_atom_kcal_per_mol",
    "g298_atom_kcal_per_mol",
)  # fmt: skip

SOURCE_LABELS: dict[str, frozenset[str]] = {
    "pcqm4mv2_csv": frozenset({"homo_lumo_gap_ev"}),
    "pcqm4mv2_sdf": frozenset(),
    "pcqm4mv2_cxsmiles": frozenset({"homo_lumo_gap_ev"}),
    "pubchem_tsv": frozenset(),
    "pubchem_sdf": frozenset(),
    "qm9_csv": frozenset(_QM9_XYZ + _QM9_ATOMIZATION),
    "qm9_xyz": frozenset(_QM9_XYZ),
    "smiles": frozenset(),
    "sdf": frozenset(),
    # an extended XYZ's energy= becomes a label only with a loader option the config has no key
    # for (rhoflow.sources.generic: energy_unit)
    "xyz": frozenset(),
}
"""Labels (with their unit) each source format gives its molecules (a value may be missing)."""

_ENERGIES = frozenset({"final_energy_hartree", "total_energy_hartree"})
_SCF_PARTS = frozenset(
    {
        "nuclear_repulsion_energy_hartree",
        "one_electron_energy_hartree",
        "two_electron_energy_hartree",
        "xc_energy_hartree",
    }
)
_FRONTIER = frozenset({"homo_hartree", "lumo_hartree", "gap_hartree", "gap_ev"})
_DIPOLE = frozenset({"dipole_x_debye", "dipole_y_debye", "dipole_z_debye", "dipole_debye"})

ENGINE_LABELS: dict[str, frozenset[str]] = {
    "psi4": _ENERGIES | _SCF_PARTS | _FRONTIER | _DIPOLE,
    "pyscf": _ENERGIES | _SCF_PARTS | _FRONTIER | _DIPOLE,
    "xtb": _ENERGIES | {"electronic_energy_hartree"} | _FRONTIER | _DIPOLE,
}
"""Labels each density engine stores with every molecule it computes."""


def label_columns(source_format: str, labels: str) -> frozenset[str]:
    """The columns of the labels table of ``train.labels = labels`` (``source`` or an engine)
    that a source of ``source_format`` gives its molecules: its ``source_<label>`` columns, and
    with an engine the engine's labels."""
    own = frozenset(f"source_{label}" for label in SOURCE_LABELS[source_format])
    return own if labels == "source" else own | ENGINE_LABELS[labels]
