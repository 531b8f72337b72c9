"""Density engines on tiny molecules, coarse grids, small bases, one thread."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from rhoflow import density
from rhoflow.cli import main
from rhoflow.config import section_schema, section_settings
from rhoflow.cube import read_cube, write_cube
from rhoflow.density import ENGINES, gto_grid, iter_shard, psi4_engine, pyscf_engine, xtb_engine
from rhoflow.density.grid import box_grid, cubeprop_grid
from rhoflow.ledger import LedgerRow
from rhoflow.molecule import Molecule, write_molecules
from rhoflow.result import DensityResult

needs_psi4 = pytest.mark.skipif(shutil.which("psi4") is None, reason="psi4 not installed")
needs_xtb = pytest.mark.skipif(shutil.which("xtb") is None, reason="xtb not installed")
COARSE = {"spacing_bohr": 0.5, "overage_bohr": 3.0, "timeout_s": 120}


def _mol(mol_id: str, numbers, coords, charge=0, multiplicity=1) -> Molecule:
    return Molecule(mol_id, "", charge, multiplicity, np.array(numbers), "",
                    None if coords is None else np.array(coords, dtype=float))


H2 = _mol("t:h2", [1, 1], [[0, 0, 0], [0, 0, 0.74]])
WATER = _mol("t:h2o", [8, 1, 1], [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])
CH4 = _mol("t:ch4", [6, 1, 1, 1, 1], [[0, 0, 0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629],
                                       [-0.629, 0.629, -0.629], [0.629, -0.629, -0.629]])
H2CO = _mol("t:h2co", [6, 8, 1, 1], [[0, 0, -0.53], [0, 0, 0.67], [0, 0.94, -1.11],
                                      [0, -0.94, -1.11]])
METHYL = _mol("t:ch3", [6, 1, 1, 1], [[0, 0, 0], [1.08, 0, 0], [-0.54, 0.935, 0],
                                       [-0.54, -0.935, 0]], multiplicity=2)


def _run(engine: str, molecules, given) -> list[DensityResult | LedgerRow]:
    """``iter_shard`` with ``given`` completed as ``rhoflow density`` completes it."""
    settings = section_settings(f"density.{engine}", given)
    return list(iter_shard(engine, molecules, settings, workers=1, threads=1))


def _far_from_nuclei(result: DensityResult, cutoff_bohr: float) -> np.ndarray:
    x, y, z = np.meshgrid(*result.density.axes_bohr(), indexing="ij")
    points = np.stack([x, y, z], axis=-1)
    distance = np.min(np.linalg.norm(points[..., None, :] - result.coords_bohr, axis=-1), axis=-1)
    return distance > cutoff_bohr


# --- grids --------------------------------------------------------------------------------


def test_cubeprop_grid_is_centred_and_reaches_the_overage():
    coords = WATER.coords_angstrom / 0.52917721067
    spec = cubeprop_grid(coords, 0.4, 4.0)
    low, high = coords.min(axis=0), coords.max(axis=0)
    first = np.array(spec.origin_bohr)
    last = first + (np.array(spec.shape) - 1) * 0.4
    assert np.all(low - first >= 4.0 - 1e-9) and np.all(last - high >= 4.0 - 1e-9)
    assert np.all(low - first < 4.0 + 0.2 + 1e-9)  # no more than half a step extra per side
    np.testing.assert_allclose((first + last) / 2, (low + high) / 2, atol=1e-12)
    assert spec.n_points == int(np.prod(spec.shape))
    np.testing.assert_allclose(spec.points(0, spec.n_points)[-1], last)


def test_box_grid_fixed_edge_and_margin():
    coords = CH4.coords_angstrom / 0.529177
    spec = box_grid(coords, 16, None, 4.0)
    edge = np.ptp(coords, axis=0).max() + 8.0
    assert spec.shape == (16, 16, 16)
    np.testing.assert_allclose(spec.spacing_bohr, [edge / 15] * 3)
    fixed = box_grid(coords, 16, 20.0, 4.0)
    np.testing.assert_allclose(fixed.spacing_bohr, [20.0 / 15] * 3)
    with pytest.raises(ValueError, match="does not fit"):
        box_grid(coords, 16, 2.0, 4.0)
    with pytest.raises(ValueError, match="4 bohr margin does not fit"):  # atoms inside, tails not
        box_grid(coords, 16, edge - 0.5, 4.0)


def test_a_molecule_larger_than_a_fixed_box_is_a_ledger_row_before_its_scf():
    """The VQ-GAN's fixed box (grid: box, box_edge_bohr): a molecule that does not fit is
    ledgered with the reason (checked before its SCF), not cropped; one that fits is computed."""
    chain = Molecule("t:long", "", 0, 1, np.array([6] * 8), "",
                     np.array([[1.5 * k, 0.0, 0.0] for k in range(8)]))  # fmt: skip
    settings = section_settings(
        "density.pyscf",
        {"grid": "box", "box_points": 8, "box_edge_bohr": 12.0, "box_margin_bohr": 1.0,
         "esp": "none"},
    )  # fmt: skip
    results = list(iter_shard("pyscf", [chain, CH4], settings, workers=1, threads=1))
    assert isinstance(results[0], LedgerRow) and results[0].id == "t:long"
    assert "1 bohr margin does not fit a 12.000 bohr box" in results[0].message
    assert isinstance(results[1], DensityResult) and results[1].density.values.shape == (8, 8, 8)


# --- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "settings", "message"),
    [("psi4", {"method": "b3lyp')\nimport os"}, "method"),
    ("psi4", {"basis": "6-31g* ; rm"}, "basis"),
    ("psi4", {"dft_spherical_points": 300}, "dft_spherical_points"),
    ("pyscf", {"method": "not-a-functional"}, "xc functional"),
    ("pyscf", {"esp": "maybe"}, "esp"),
    ("xtb", {"method": "gfn9"}, "method"),
    ("xtb", {"colour": "red"}, r"unknown config key 'density.xtb.colour' \(allowed: accuracy,"),
    ("pyscf", {"grid": "sphere"}, "'density.pyscf.grid'"),
    ("pyscf", {"box_points": "many"}, "'density.pyscf.box_points': 'many' is not of type"),
    ("psi4", {"timeout_s": 0}, "'density.psi4.timeout_s'")],
)
def test_bad_settings_are_rejected_before_running(tmp_path, engine, settings, message):
    """By the command (a ``ConfigError``, a ``ValueError``, naming the key), before any
    molecule runs and without leaving a store."""
    shard, store = tmp_path / "in.parquet", tmp_path / "out.zarr"
    write_molecules(shard, [WATER])
    argv = ["density", "--engine", engine, "--settings", json.dumps(settings)]
    with pytest.raises(ValueError, match=message):
        main([*argv, str(shard), str(store), str(tmp_path / "out.tsv")])
    assert not store.exists()


def test_an_unknown_engine_is_named():
    with pytest.raises(ValueError, match="unknown density engine 'nwchem'"):
        list(iter_shard("nwchem", [WATER], {}))


def test_every_engine_takes_its_defaults_from_the_schema():
    for name in ENGINES:
        section = section_schema(f"density.{name}")
        shared = section_schema("density.psi4")["$defs"]["density_engine"]["properties"]
        written = {k: p["default"] for k, p in {**shared, **section["properties"]}.items()}
        assert section_settings(f"density.{name}") == written, name
    # psi4 reads method names in any case; so does the engine: HF is a Hartree-Fock reference
    settings = section_settings("density.psi4", {"method": "HF"})
    assert "'reference': 'rhf'" in psi4_engine.build_input(WATER, settings, 1, None)


# --- pyscf --------------------------------------------------------------------------------


def test_pyscf_closed_shell_density_labels_and_checks():
    (result,) = _run("pyscf", [WATER], {**COARSE, "esp": "exact"})
    assert isinstance(result, DensityResult)
    checks = result.checks
    assert checks["n_electrons_expected"] == 10
    assert abs(checks["n_electrons_dm"] - 10) < 1e-8
    assert checks["rho_min"] >= -1e-12 and checks["rho_max"] > 1
    assert result.density.shape == result.esp.shape
    labels = result.labels
    parts = sum(labels[k] for k in ("nuclear_repulsion_energy_hartree",
                                    "one_electron_energy_hartree",
                                    "two_electron_energy_hartree", "xc_energy_hartree"))
    assert parts == pytest.approx(labels["total_energy_hartree"], abs=1e-8)
    assert labels["gap_hartree"] == pytest.approx(labels["lumo_hartree"] - labels["homo_hartree"])
    assert 1.0 < labels["dipole_debye"] < 2.5
    prov = result.provenance
    assert prov["reference"] == "RHF" and prov["scf_converged"] and prov["scf_iterations"] > 0
    assert prov["grid"]["shape"] == list(result.density.shape)


def test_pyscf_esp_matches_independent_integrals_and_density_fitting():
    settings = section_settings("density.pyscf", {**COARSE, "esp": "exact"})
    mf = pyscf_engine.run_scf(WATER, settings)
    mol, dm = mf.mol, pyscf_engine.total_dm(mf)
    spec = cubeprop_grid(mol.atom_coords(), 0.5, 3.0)
    exact = pyscf_engine.esp_exact(mol, dm, spec)
    from pyscf import df, gto

    points = spec.points(0, spec.n_points)[::97]
    fake = gto.fakemol_for_charges(points)
    ints = df.incore.aux_e2(mol, fake, intor="int3c2e", aosym="s1")  # [nao, nao, points]
    reference = pyscf_engine.nuclear_potential(mol, points) - np.einsum("ijp,ij->p", ints, dm)
    np.testing.assert_allclose(exact[::97], reference, atol=1e-8)
    fitted = pyscf_engine.esp_density_fitted(mol, dm, spec, "def2-universal-jkfit")
    assert np.abs(fitted - exact).max() < 5e-3


@pytest.mark.parametrize(("basis", "cart"), [("6-31g**", True), ("cc-pvtz", False)])
def test_separable_density_matches_pyscf_numint(monkeypatch, basis, cart):
    """Cartesian and spherical functions up to f, general contractions, both block shapes."""
    from pyscf import gto
    from pyscf.dft import numint

    mol = gto.M(atom="O 0 0 0.12; H 0 0.76 -0.47; C 1.1 -0.2 0.9", basis=basis, cart=cart,
                spin=1, verbose=0)
    spec = cubeprop_grid(mol.atom_coords(), 0.5, 2.0)
    coeff = np.random.default_rng(0).normal(size=(mol.nao, 6))
    occ = np.array([2.0, 2.0, 1.0, 1.0, 0.5, 0.0])
    ao = numint.eval_ao(mol, spec.points(0, spec.n_points))
    reference = numint.eval_rho(mol, ao, (coeff * occ) @ coeff.T)
    for budget in (gto_grid.BLOCK_BYTES, 8 * mol.nao * spec.shape[2] * 3):  # whole / split planes
        monkeypatch.setattr(gto_grid, "BLOCK_BYTES", budget)
        rho = gto_grid.density_on_grid(mol, coeff, occ, spec)
        np.testing.assert_allclose(rho, reference, rtol=0, atol=1e-12 * np.abs(reference).max())


@pytest.mark.parametrize("cart", [True, False])
def test_fitted_esp_grid_integrals_equal_point_charge_integrals(cart):
    from pyscf import df, gto

    mol = gto.M(atom="O 0 0 0.12; H 0 0.76 -0.47; H 0 -0.76 -0.47", basis="6-31g*", cart=cart,
                verbose=0)
    auxmol = df.addons.make_auxmol(mol, "def2-universal-jkfit")
    points = cubeprop_grid(mol.atom_coords(), 0.5, 3.0).points(0, 3000)
    fake = gto.fakemol_for_charges(points)
    fake.cart = auxmol.cart
    reference = gto.intor_cross("int2c2e", auxmol, fake).T
    unit = pyscf_engine.unit_function(auxmol.cart)
    ints = gto.intor_cross("int1e_grids", auxmol, unit, grids=points)[:, :, 0]
    np.testing.assert_allclose(ints, reference, rtol=0, atol=1e-12)


def test_engines_record_their_phase_times():
    (result,) = _run("pyscf", [WATER], COARSE)
    timings = result.provenance["timings_s"]
    assert set(timings) == {"scf", "density_grid", "esp_grid"}
    assert all(t > 0 for t in timings.values())
    assert sum(timings.values()) <= result.provenance["wall_s"]


def test_pyscf_open_shell_is_unrestricted():
    settings = {**COARSE, "method": "b3lyp", "esp": "none"}
    (result,) = _run("pyscf", [METHYL], settings)
    assert result.provenance["reference"] == "UKS" and result.esp is None
    assert abs(result.checks["n_electrons_dm"] - 9) < 1e-8
    assert "HYB_GGA_XC_B3LYP" in result.provenance["functional_definition"]


@pytest.mark.skipif(importlib.util.find_spec("gpu4pyscf") is not None, reason="has gpu4pyscf")
def test_pyscf_device_auto_is_cpu_here_and_cuda_needs_gpu4pyscf(tmp_path):
    assert pyscf_engine.resolve_device("auto") == pyscf_engine.resolve_device("cpu") == "cpu"
    with pytest.raises(RuntimeError, match=r"'cuda' but it needs gpu4pyscf.*pip install"):
        pyscf_engine.resolve_device("cuda")
    (result,) = _run("pyscf", [H2], {**COARSE, "esp": "none"})  # device auto
    assert result.provenance["device"] == "cpu"
    shard, store = tmp_path / "in.parquet", tmp_path / "out.zarr"
    write_molecules(shard, [H2])
    argv = ["density", "--engine", "pyscf", "--settings", '{"device": "cuda"}', str(shard)]
    with pytest.raises(ValueError, match="'density.pyscf.device': 'cuda' needs gpu4pyscf"):
        main([*argv, str(store), str(tmp_path / "out.tsv")])  # before any molecule runs
    assert not store.exists()


def test_failures_become_ledger_rows_in_order():
    no_coords = _mol("t:nocoords", [1, 1], None)
    rows = _run("pyscf", [no_coords, H2, WATER], {**COARSE, "max_cycle": 1, "esp": "none"})
    assert [r.id for r in rows] == ["t:nocoords", "t:h2", "t:h2o"]
    assert isinstance(rows[0], LedgerRow) and rows[0].reason == "missing_coordinates"
    assert isinstance(rows[2], LedgerRow) and rows[2].reason == "scf_not_converged"
    assert rows[2].stage == "density"


def test_result_grid_exports_as_cube(tmp_path):
    (result,) = _run("pyscf", [H2], {**COARSE, "esp": "none"})
    path = tmp_path / "h2.cube"
    write_cube(path, result.atomic_numbers, result.coords_bohr, result.density, "h2 density")
    numbers, coords, grid = read_cube(path)
    np.testing.assert_allclose(grid.values, result.density.values, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(coords, result.coords_bohr, atol=1e-6)


# --- psi4 ---------------------------------------------------------------------------------


@needs_psi4
def test_psi4_matches_pyscf_point_by_point():
    common = {**COARSE, "method": "b3lyp", "basis": "sto-3g"}
    (p4,) = _run("psi4", [H2CO], {**common, "scf_type": "pk"})
    (ps,) = _run("pyscf", [H2CO], {**common, "esp": "exact", "xc_grid_level": 4})
    assert isinstance(p4, DensityResult), p4
    assert p4.density.shape == ps.density.shape
    np.testing.assert_allclose(p4.density.origin_bohr, ps.density.origin_bohr, atol=1e-6)
    far = _far_from_nuclei(ps, 0.3)
    assert np.abs(p4.density.values - ps.density.values)[far].max() < 1e-3
    assert np.abs(p4.esp.values - ps.esp.values)[_far_from_nuclei(ps, 1.0)].max() < 1e-2
    for key in ("total_energy_hartree", "nuclear_repulsion_energy_hartree", "homo_hartree"):
        assert p4.labels[key] == pytest.approx(ps.labels[key], abs=1e-4), key
    assert p4.labels["dipole_debye"] == pytest.approx(ps.labels["dipole_debye"], abs=1e-3)
    assert abs(p4.checks["n_electrons_dm"] - 16) < 1e-6
    assert p4.provenance["reference"] == "RKS"
    assert set(p4.provenance["timings_s"]) == {"scf", "density_grid", "esp_grid"}


@needs_psi4
def test_psi4_box_grid_open_shell_and_failures():
    settings = {"method": "hf", "basis": "sto-3g", "grid": "box", "box_points": 12,
                "timeout_s": 120}
    (radical,) = _run("psi4", [METHYL], settings)
    assert radical.provenance["reference"] == "UHF"
    assert radical.density.shape == (12, 12, 12)
    assert radical.checks["n_electrons_dm"] == pytest.approx(9, abs=1e-6)
    (failed,) = _run("psi4", [WATER], {**settings, "maxiter": 2})
    assert isinstance(failed, LedgerRow) and failed.reason == "scf_not_converged"
    (broken,) = _run("psi4", [WATER], {**settings, "basis": "no-such-basis"})
    assert isinstance(broken, LedgerRow) and broken.reason == "basis_missing"
    assert "NO-SUCH-BASIS has no functions for element O" in broken.message


def _processes_in(folder) -> list[str]:
    """Command lines of processes whose working directory lies under ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if str(folder) in os.readlink(proc / "cwd"):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


@needs_psi4
@pytest.mark.parametrize("killed_by", ["engine", "worker"])
def test_psi4_timeout_leaves_no_process_behind(tmp_path, monkeypatch, killed_by):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    settings = {"basis": "sto-3g", "timeout_s": 0.5}
    if killed_by == "worker":  # the isolation layer kills the worker while psi4 still runs
        monkeypatch.setattr(density, "PARSE_GRACE_S", -29.0)
        settings["timeout_s"] = 30.0
    (row,) = _run("psi4", [WATER], settings)
    assert isinstance(row, LedgerRow) and row.reason == "timeout"
    time.sleep(0.5)
    assert _processes_in(tmp_path) == []


def test_psi4_input_is_built_from_formatted_values_only():
    settings = section_settings("density.psi4", {"basis": "6-31+G(d,p)"})
    text = psi4_engine.build_input(WATER, settings, 1, ([0.4] * 3, [4.0] * 3))
    assert "'basis': '6-31+G(d,p)'" in text and "no_com" in text and "symmetry c1" in text
    assert re.search(r"^O\s+0\.000000000000\s+0\.000000000000\s+0\.117300000000$", text, re.M)
    with pytest.raises(ValueError):
        psi4_engine._literal("x'); os.system('true')")


# --- xtb ----------------------------------------------------------------------------------


@needs_xtb
def test_xtb_valence_density_integrates_to_valence_electrons():
    rows = _run("xtb", [H2CO, CH4, METHYL], {"spacing_bohr": 0.3, "timeout_s": 60})
    for row, n_valence in zip(rows, (12, 8, 7), strict=True):
        assert isinstance(row, DensityResult), row
        assert row.checks["n_electrons_expected"] == n_valence
        assert row.checks["n_electrons_dm"] == pytest.approx(n_valence, abs=1e-6)
        assert row.checks["captured_fraction"] == pytest.approx(1.0, abs=2e-3)
        assert row.esp is None and row.provenance["density_kind"] == "valence"
        assert set(row.provenance["timings_s"]) == {"scf", "density_grid"}
        assert row.labels["gap_ev"] > 0 and row.labels["total_energy_hartree"] < 0


def test_xtb_valence_counts():
    counts = [xtb_engine.valence_electrons(z) for z in (1, 6, 8, 9, 16, 17, 35, 53)]
    assert counts == [1, 4, 6, 7, 6, 7, 7, 7]


@needs_xtb
def test_xtb_non_convergence_is_a_ledger_row():
    (row,) = _run("xtb", [H2CO], {"max_iterations": 1, "timeout_s": 60})
    assert isinstance(row, LedgerRow) and row.reason == "scf_not_converged"


# --- basis definitions --------------------------------------------------------------------

HBR = _mol("t:hbr", [1, 35], [[0, 0, 0], [0, 0, 1.41]])
HI = _mol("t:hi", [1, 53], [[0, 0, 0], [0, 0, 1.61]])


def _hashes(result: DensityResult, key: str = "basis_functions") -> dict[str, str]:
    return {symbol: record["sha256"] for symbol, record in result.provenance[key].items()}


@needs_psi4
def test_one_basis_definition_read_by_either_engine_gives_one_hash_and_one_energy():
    """psi4's 6-31G* and its fitting sets, hashed as psi4 used them, against PySCF reading the
    same files (``basis_source: psi4``) and its own library; HF/PK vs PySCF's exact integrals.
    """
    common = {**COARSE, "method": "hf", "basis": "6-31g*"}
    (pk,) = _run("psi4", [HBR], {**common, "scf_type": "pk", "esp": False})
    (df_def2,) = _run("psi4", [HBR], {**common, "esp": False})
    (df_psi4_choice,) = _run("psi4", [HBR], {**common, "esp": False, "df_basis_scf": None})
    (ps_psi4,) = _run("pyscf", [HBR], {**common, "basis_source": "psi4", "esp": "df"})
    (ps_own,) = _run("pyscf", [HBR], {**common, "esp": "none"})
    assert "fit_basis_functions" not in pk.provenance  # PK without ESP: no fitting basis
    br = pk.provenance["basis_functions"]["Br"]
    assert br["source"].endswith("6-31gs.gbs") and br["cartesian"]
    assert (br["functions"], br["nbf"]) == ("5s4p3d", 35)
    assert _hashes(ps_psi4) == _hashes(pk) == _hashes(df_def2)
    assert ps_psi4.provenance["basis_source"] == "psi4"
    assert ps_psi4.provenance["basis_functions"]["Br"]["source"] == br["source"]
    # PySCF 2.14's own 6-31G* holds the same functions for H-Kr (measured), so: equal hashes
    assert _hashes(ps_own) == _hashes(pk)
    assert re.fullmatch(r"pyscf 2\.\S+ gto/basis/pople-basis/6-31Gs\.dat",
                        ps_own.provenance["basis_functions"]["Br"]["source"])
    # psi4's def2-qzvpp-jkfit is PySCF's def2-universal-jkfit; cc-pvdz-jkfit's Br is not
    assert _hashes(df_def2, "fit_basis_functions") == _hashes(ps_psi4, "esp_fit_basis_functions")
    choice = df_psi4_choice.provenance["fit_basis_functions"]
    assert choice["Br"]["basis"] == "CC-PVDZ-JKFIT"
    assert choice["Br"]["sha256"] != _hashes(df_def2, "fit_basis_functions")["Br"]
    energy = {name: r.labels["total_energy_hartree"] for name, r in
              [("pk", pk), ("def2", df_def2), ("choice", df_psi4_choice), ("pyscf", ps_psi4)]}
    assert energy["pyscf"] == pytest.approx(energy["pk"], abs=1e-6)
    assert energy["def2"] == pytest.approx(energy["pk"], abs=1e-4)
    assert energy["choice"] - energy["pk"] > 0.05  # cc-pVDZ-JKFIT cannot fit Br's core


@needs_psi4
def test_basis_hash_tells_definitions_apart():
    """Same name, different functions: psi4's and PySCF's cc-pVDZ for Li (measured: also Be,
    Na, Mg; def2-SVP Kr); Cartesian vs spherical d; and not for s/p-only sets."""
    from pyscf import gto

    from rhoflow.density import basis

    def entries(shells):
        return basis.pyscf_entries(shells)

    psi4_li, _, _ = basis.load_psi4_basis("cc-pvdz", ["Li", "C"])
    for symbol, same in (("Li", False), ("C", True)):
        own = entries(gto.basis.load("cc-pvdz", symbol))
        theirs = entries(psi4_li[symbol])
        assert (basis.basis_hash(own, False) == basis.basis_hash(theirs, False)) is same
    carbon = entries(gto.basis.load("6-31g*", "C"))
    assert basis.basis_hash(carbon, True) != basis.basis_hash(carbon, False)
    hydrogen = entries(gto.basis.load("sto-3g", "H"))
    assert basis.basis_hash(hydrogen, True) == basis.basis_hash(hydrogen, False)
    assert basis.psi4_filename("6-311+G(2d,p)") == "6-311pg_2d_p_.gbs"


def test_store_records_basis_source_and_functions(tmp_path, monkeypatch):
    """A pyscf store written with ``basis_source: psi4`` says so, per molecule, with the
    psi4 file and the hashes (here psi4's library is a folder named by PSIDATADIR)."""
    from pyscf.gto import basis as pyscf_basis

    library = tmp_path / "psi4data" / "basis"
    library.mkdir(parents=True)
    own = Path(pyscf_basis.__file__).parent / "sto-3g.dat"  # NWChem format: rewrite as .gbs
    from pyscf.gto.basis import parse_nwchem

    blocks = ["spherical\n"]
    for symbol in ("H", "O"):
        lines = [f"{symbol}     0"]
        for shell in parse_nwchem.load(str(own), symbol):
            rows = shell[1:]
            lines.append(f"{'SPD'[shell[0]]}   {len(rows)}   1.00")
            lines += [f"  {e:.10f}  {c:.10f}" for e, c in rows]
        blocks.append("\n".join(lines) + "\n")
    (library / "sto-3g.gbs").write_text("****\n".join(blocks) + "****\n")
    monkeypatch.setenv("PSIDATADIR", str(library.parent))
    shard, store, ledger = tmp_path / "in.parquet", tmp_path / "out.zarr", tmp_path / "out.tsv"
    write_molecules(shard, [WATER, HBR])
    settings = {**COARSE, "basis": "sto-3g", "basis_source": "psi4", "esp": "none"}
    main(["density", "--engine", "pyscf", "--settings", json.dumps(settings), str(shard),
          str(store), str(ledger)])
    from rhoflow.store import open_store

    prov = open_store(store).metadata("t:h2o")["provenance"]
    assert prov["basis_source"] == "psi4"
    assert {r["source"] for r in prov["basis_functions"].values()} == {
        str(library / "sto-3g.gbs")}
    reference = section_settings("density.pyscf", {**settings, "basis_source": "engine"})
    (own_result,) = iter_shard("pyscf", [WATER], reference)
    assert _hashes(own_result) == {s: r["sha256"] for s, r in prov["basis_functions"].items()}
    from rhoflow.store import info

    (oxygen,) = info(store)["basis"]["O"].items()  # how `rhoflow store info` compares stores
    assert oxygen == (f"sto-3g 2s1p spherical {prov['basis_functions']['O']['sha256'][:12]}", 1)
    (row,) = [line.split("\t") for line in ledger.read_text().splitlines()[1:]]
    assert row[:3] == ["t:hbr", "density_pyscf", "basis_missing"]
    assert "sto-3g has no functions for element Br" in row[3]


def test_an_element_missing_from_the_basis_is_a_ledger_row_naming_it():
    (own,) = _run("pyscf", [HI], {**COARSE, "basis": "6-31g*"})
    assert isinstance(own, LedgerRow) and own.reason == "basis_missing"
    assert re.search(r"not found for I in 6-31g\*", own.message), own.message
    if shutil.which("psi4"):
        (theirs,) = _run("pyscf", [HI], {**COARSE, "basis": "6-31g*", "basis_source": "psi4"})
        (psi4,) = _run("psi4", [HI], {**COARSE, "basis": "6-31g*"})
        for row in (theirs, psi4):
            assert isinstance(row, LedgerRow) and row.reason == "basis_missing", row
            assert re.search(r"6-31g\* has no functions for element I\b", row.message,
                             re.IGNORECASE), row.message


def test_basis_source_psi4_without_psi4_fails_before_running(tmp_path, monkeypatch):
    monkeypatch.setenv("PSIDATADIR", str(tmp_path / "nowhere"))
    shard, store = tmp_path / "in.parquet", tmp_path / "out.zarr"
    write_molecules(shard, [WATER])
    with pytest.raises(ValueError, match="'density.pyscf.basis_source': psi4 has no basis file"):
        main(["density", "--engine", "pyscf", "--settings", json.dumps({"basis_source": "psi4"}),
              str(shard), str(store), str(tmp_path / "out.tsv")])
    assert not store.exists()


def test_pyscf_records_the_fitting_bases_of_its_scf_and_its_esp():
    given = {**COARSE, "density_fitting": True, "auxbasis": "def2-universal-jkfit", "esp": "df"}
    (fitted,) = _run("pyscf", [WATER], given)
    assert fitted.provenance["fit_basis_functions"]["O"]["basis"] == "def2-universal-jkfit"
    assert _hashes(fitted, "fit_basis_functions") == _hashes(fitted, "esp_fit_basis_functions")
    (chosen,) = _run("pyscf", [WATER], {**given, "auxbasis": None, "esp": "none"})
    assert "esp_fit_basis_functions" not in chosen.provenance
    record = chosen.provenance["fit_basis_functions"]["O"]
    assert record["basis"] == "pyscf default for sto-3g" and "make_auxbasis" in record["source"]
    # the name says "default"; the hash says which: def2-universal-jkfit for STO-3G
    assert record["sha256"] == _hashes(fitted, "fit_basis_functions")["O"]
