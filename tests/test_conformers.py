"""Conformers stage: isolation, ETKDG determinism, MINDO/3 and GFN2-xTB physics, ledger rows,
re-optimisation defaults and molecules with unknown bond orders."""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from rhoflow.config import ConfigError, section_settings
from rhoflow.conformers import generate_shard, mindo3, resolve_reoptimize, xtb
from rhoflow.conformers.etkdg import search_conformers
from rhoflow.molecule import Molecule, from_rdkit
from rhoflow.parallel import Failure, StageFailure, run_isolated
from rhoflow.sources import FORMATS

UNASSIGNABLE = Path(__file__).parent / "fixtures/generic/unassignable.xyz"

WATER = np.array([[0.0, 0.0, 0.0], [0.0, -0.80, 0.60], [0.0, 0.80, 0.60]])  # Å, stretched
WATER_Z = np.array([8, 1, 1])


def settings(**overrides) -> dict:
    base = {
        "method": "etkdg",
        "n_conformers": 10,
        "seed": 42,
        "rms_prune_angstrom": 0.1,
        "k_lowest": 5,
        "reoptimize": "none",
        "timeout_s": 60,
    }
    return {**base, **overrides}


def molecules(*smiles: str) -> list[Molecule]:
    return [from_rdkit(f"test:{i}", Chem.MolFromSmiles(s)) for i, s in enumerate(smiles)]


def bond_and_angle(coords: np.ndarray) -> tuple[float, float, float]:
    """O–H lengths (Å) and H–O–H angle (degrees) of water with O first."""
    a, b = coords[1] - coords[0], coords[2] - coords[0]
    ra, rb = np.linalg.norm(a), np.linalg.norm(b)
    return ra, rb, float(np.degrees(np.arccos(a @ b / (ra * rb))))


# --- run_isolated -------------------------------------------------------------------------------


def _segfault() -> None:
    faulthandler.disable()  # pytest's handler would print the child's stack
    os.kill(os.getpid(), signal.SIGSEGV)


def _job(x: int) -> int:
    if x == 1:
        raise ValueError("bad input 1")
    if x == 2:
        raise StageFailure("embed_failed", "no conformer")
    if x == 3:
        _segfault()
    if x == 4:
        time.sleep(30)
    time.sleep(0.05 * (6 - x))  # later items finish first
    return x * 10


def test_run_isolated_keeps_order_and_turns_every_failure_into_a_row():
    results = list(run_isolated(_job, range(7), timeout_s=2, workers=2, desc="test"))
    assert [item for item, _ in results] == list(range(7))
    outcomes = dict(results)
    assert outcomes[0] == 0 and outcomes[5] == 50 and outcomes[6] == 60
    assert outcomes[1] == Failure("engine_error", "ValueError: bad input 1")
    assert outcomes[2] == Failure("embed_failed", "no conformer")
    assert outcomes[3].reason == "engine_error" and "SIGSEGV" in outcomes[3].message
    assert outcomes[4].reason == "timeout"


def test_run_isolated_survives_a_segfault_alone():
    results = list(run_isolated(lambda _: _segfault(), [0], timeout_s=10))
    assert results[0][1] == Failure("engine_error", "worker died: signal SIGSEGV")


# --- ETKDG + MMFF94 -----------------------------------------------------------------------------


def test_etkdg_is_deterministic_for_a_seed():
    mols = molecules("CCO", "CCCCO")
    first, _ = generate_shard(mols, settings(seed=7))
    second, _ = generate_shard(mols, settings(seed=7))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.coords_angstrom, b.coords_angstrom)
        assert {**a.provenance, "wall_s": 0} == {**b.provenance, "wall_s": 0}
    other, _ = generate_shard(mols[1:], settings(seed=8))
    assert not np.array_equal(other[0].coords_angstrom, first[1].coords_angstrom)


def test_k_lowest_is_honoured_and_sorted():
    rdmol = molecules("CCCCO")[0].to_rdkit()
    found = search_conformers(rdmol, n_conformers=30, seed=42, k_lowest=3)
    energies = [c.forcefield_energy_kcal_per_mol for c in found.conformers]
    assert found.forcefield == "MMFF94"
    assert len(energies) == 3 and energies == sorted(energies)
    assert found.n_after_prune >= 3 and found.n_embedded >= found.n_after_prune
    out, rows = generate_shard(molecules("CCCCO"), settings(n_conformers=30, k_lowest=2))
    assert not rows and out[0].provenance["k"] == 2
    assert out[0].provenance["forcefield_energy_kcal_per_mol"] == pytest.approx(energies[0])
    assert out[0].coords_angstrom.shape == (out[0].n_atoms, 3)


def test_unembeddable_molecule_gets_a_row_and_the_shard_completes():
    # bicyclo[1.1.0]butane with trans bridgehead hydrogens: valid for RDKit, impossible in 3D
    mols = molecules("O", "[C@H]12C[C@@H]1C2", "CO")
    out, rows = generate_shard(mols, settings(n_conformers=5))
    assert [m.id for m in out] == ["test:0", "test:2"]
    assert [(r.id, r.stage, r.reason) for r in rows] == [("test:1", "conformers", "embed_failed")]


def test_molecules_mmff94_cannot_type_fall_back_to_uff():
    # MMFF94 has no atom types for H-F, H-Cl or trimethylborane; UFF does
    out, rows = generate_shard(molecules("F", "Cl", "B(C)(C)C"), settings(reoptimize="none"))
    assert not rows
    assert [m.provenance["forcefield"] for m in out] == ["UFF", "UFF", "UFF"]
    bond = np.linalg.norm(out[0].coords_angstrom[0] - out[0].coords_angstrom[1])
    assert 0.85 < bond < 1.05  # H-F, Å


def test_timeout_gives_a_timeout_row():
    # trans-1,3-dimethylbicyclobutane: ETKDG spends >10 s failing to embed 50 conformers
    mols = molecules("O", "C[C@]12C[C@@]1(C)C2")
    start = time.perf_counter()
    out, rows = generate_shard(mols, settings(n_conformers=50, timeout_s=2))
    assert time.perf_counter() - start < 8
    assert [m.id for m in out] == ["test:0"]
    assert [(r.id, r.reason) for r in rows] == [("test:1", "timeout")]


def test_source_keeps_coordinates_and_ledgers_missing_ones():
    with_coords, without = molecules("O", "CO")
    with_coords.coords_angstrom = WATER.copy()
    out, rows = generate_shard([with_coords, without], settings(method="source"))
    np.testing.assert_array_equal(out[0].coords_angstrom, WATER)
    assert out[0].provenance["method"] == "source"
    assert [(r.id, r.reason) for r in rows] == [("test:1", "missing_coordinates")]


def test_reoptimize_auto_keeps_source_geometries_and_reoptimises_etkdg_ones():
    assert resolve_reoptimize({"method": "source", "reoptimize": "auto"}) == "none"
    assert resolve_reoptimize({"method": "etkdg", "reoptimize": "auto"}) == "mindo3"
    assert resolve_reoptimize({"method": "source", "reoptimize": "xtb"}) == "xtb"
    water = molecules("O")[0]
    water.coords_angstrom = WATER.copy()
    out, rows = generate_shard([water], settings(method="source", reoptimize="auto"))
    assert not rows
    np.testing.assert_array_equal(out[0].coords_angstrom, WATER)  # stretched, as given
    assert out[0].provenance["reoptimize"] == "none" and "wall_s" not in out[0].provenance
    out, rows = generate_shard(molecules("O"), settings(reoptimize="auto", k_lowest=1))
    assert not rows and out[0].provenance["reoptimizer"] == "mindo3"
    with pytest.raises(ConfigError, match="'conformers.reoptimize'"):  # by the command
        section_settings("conformers", settings(reoptimize="mopac"))


def unassignable() -> list[Molecule]:
    """ClF3 and a nitrofuran whose bond orders RDKit cannot determine (connectivity only)."""
    source = FORMATS["xyz"]
    records = [source.parse(e, {}) for e in source.read_raw(UNASSIGNABLE, {})]
    return [from_rdkit(f"x:{r.native_id}", r.mol) for r in records]


def test_unknown_bond_orders_are_kept_by_source_and_ledgered_by_etkdg():
    mols = unassignable()
    assert not any(m.bond_orders_known for m in mols)
    out, rows = generate_shard(mols, settings(method="source", reoptimize="auto"))
    assert not rows
    for before, after in zip(mols, out, strict=True):
        np.testing.assert_array_equal(after.coords_angstrom, before.coords_angstrom)
        assert after.provenance["bond_orders"] == "unknown"
    out, rows = generate_shard(mols, settings(method="etkdg"))
    assert not out and {r.reason for r in rows} == {"unknown_bond_orders"}
    # re-optimisation needs atoms, charge and multiplicity only
    out, rows = generate_shard(mols[:1], settings(method="source", reoptimize="xtb"))
    assert not rows and out[0].provenance["bond_orders"] == "unknown"
    assert out[0].provenance["max_force_hartree_per_bohr"] < 4.5e-4


# --- MINDO/3 ------------------------------------------------------------------------------------


def test_mindo3_scf_converges_at_a_fixed_geometry():
    engine = mindo3.Mindo3Engine(WATER_Z, charge=0, multiplicity=1)
    mf = engine.scf(WATER / 0.529177210903)
    assert mf.converged and np.isfinite(mf.e_tot) and isinstance(mf, mindo3.RMINDO3)


def test_mindo3_gradient_matches_finite_differences():
    engine = mindo3.Mindo3Engine(WATER_Z, charge=0, multiplicity=1)
    x0 = WATER / 0.529177210903
    _, gradient = engine(x0)
    step = 1e-4
    for atom, axis in [(0, 2), (1, 1), (2, 2)]:
        plus, minus = x0.copy(), x0.copy()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        numeric = (engine(plus)[0] - engine(minus)[0]) / (2 * step)
        assert gradient[atom, axis] == pytest.approx(numeric, abs=1e-6)


def test_mindo3_vectorised_jk_equals_the_package():
    from pyscf.semiempirical import mindo3 as package
    from pyscf.semiempirical import rmindo3_grad

    mol = package._make_mindo_mol(mindo3.build_mole(WATER_Z, WATER / 0.529177210903, 0, 1))
    dm = np.random.default_rng(0).random((2, mol.nao, mol.nao))
    dm = dm + dm.transpose(0, 2, 1)
    pairs = [(mindo3.get_jk, package.get_jk), (mindo3.get_jk_grad, rmindo3_grad.get_jk)]
    for ours, theirs in pairs:
        for a, b in zip(ours(mol, dm), theirs(mol, dm), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-12)


def test_mindo3_optimises_water_to_a_sensible_geometry():
    result = mindo3.optimize(WATER_Z, WATER)
    r1, r2, angle = bond_and_angle(result.coords_bohr * 0.529177210903)
    assert 0.9 < r1 < 1.0 and 0.9 < r2 < 1.0
    assert 100 < angle < 110
    assert np.isfinite(result.energy_hartree)


def test_mindo3_open_shell_methyl_radical_is_planar():
    out, rows = generate_shard(molecules("[CH3]"), settings(reoptimize="mindo3"))
    assert not rows
    coords, prov = out[0].coords_angstrom, out[0].provenance
    assert prov["reoptimize"] == "mindo3" and np.isfinite(prov["energy_hartree"])
    vectors = coords[1:] - coords[0]
    normal = np.cross(vectors[0], vectors[1])
    assert abs(vectors[2] @ normal) / np.linalg.norm(normal) < 0.02  # Å out of plane


def test_elements_mindo3_lacks_are_reoptimised_with_xtb():
    out, rows = generate_shard(
        molecules("Brc1ccccc1", "O"), settings(reoptimize="auto", n_conformers=4, k_lowest=1)
    )
    assert not rows
    bromobenzene, water = (m.provenance for m in out)
    assert bromobenzene["reoptimize"] == "mindo3" and bromobenzene["reoptimizer"] == "xtb"
    assert "MINDO/3 has no parameters for Br" in bromobenzene["reoptimize_fallback"]
    assert bromobenzene["xtb_python_version"]
    assert bromobenzene["max_force_hartree_per_bohr"] < 4.5e-4
    assert bromobenzene["energy_hartree"] == pytest.approx(-19.461, abs=1e-3)  # GFN2-xTB
    coords = out[0].coords_angstrom
    assert 1.85 < np.linalg.norm(coords[0] - coords[1]) < 1.95  # C-Br, Å
    assert water["reoptimizer"] == "mindo3" and "reoptimize_fallback" not in water
    assert 0.9 < bond_and_angle(out[1].coords_angstrom)[0] < 1.0


# --- GFN2-xTB -----------------------------------------------------------------------------------


def test_xtb_optimises_water():
    result = xtb.optimize(WATER_Z, WATER)
    r1, r2, angle = bond_and_angle(result.coords_bohr * 0.529177210903)
    assert r1 == pytest.approx(0.96, abs=0.01) and r2 == pytest.approx(0.96, abs=0.01)
    assert 100 < angle < 112


def test_source_geometry_is_reoptimised_when_asked():
    water = molecules("O")[0]
    water.coords_angstrom = WATER.copy()
    out, rows = generate_shard([water], settings(method="source", reoptimize="xtb"))
    assert not rows and out[0].provenance["method"] == "source"
    assert bond_and_angle(out[0].coords_angstrom)[0] == pytest.approx(0.96, abs=0.01)


def test_xtb_shard_records_energy_and_versions():
    out, rows = generate_shard(molecules("C=O", "[CH3]"), settings(reoptimize="xtb"))
    assert not rows
    for mol in out:
        prov = mol.provenance
        assert prov["energy_hartree"] < 0 and prov["xtb_python_version"]
        assert prov["max_force_hartree_per_bohr"] < 4.5e-4
