"""Loaders on their fixtures, the chemistry filter, and the real data samples when present."""

from __future__ import annotations

import csv
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from rhoflow.molecule import from_rdkit, has_unknown_bond_orders
from rhoflow.sources import FORMATS, RawEntry, SourceRecord, check, generic
from rhoflow.sources.filters import DEFAULT_ALLOWED_ELEMENTS

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(fmt: str, path: Path, options: dict | None = None) -> list[SourceRecord]:
    source = FORMATS[fmt]
    return [source.parse(e, options or {}) for e in source.read_raw(path, options or {})]


def by_id(records: list[SourceRecord]) -> dict[str, SourceRecord]:
    return {r.native_id: r for r in records}


def failures(records: list[SourceRecord]) -> dict[str, str]:
    return {r.native_id: r.failure[0] for r in records if r.failure}


def first_cx_triple(cxsmiles: str) -> list[float]:
    return [float(v) for v in cxsmiles.split("|(")[1].split(";")[0].split(",")]


def test_registry() -> None:
    assert set(FORMATS) == {
        "pcqm4mv2_csv",
        "pcqm4mv2_sdf",
        "pcqm4mv2_cxsmiles",
        "pubchem_tsv",
        "pubchem_sdf",
        "qm9_csv",
        "qm9_xyz",
        "smiles",
        "sdf",
        "xyz",
    }
    assert all(fmt.name == name for name, fmt in FORMATS.items())


def test_entries_records_and_formats_pickle() -> None:
    source = FORMATS["pcqm4mv2_cxsmiles"]
    entry = next(iter(source.read_raw(FIXTURES / "pcqm4mv2/cxsmiles.csv", {})))
    record = pickle.loads(pickle.dumps(source.parse(pickle.loads(pickle.dumps(entry)), {})))
    assert record.mol.GetNumConformers() == 1
    assert pickle.loads(pickle.dumps(source)).parse(entry, {}).native_id == "0"


# --- pcqm4mv2 -----------------------------------------------------------------------------


def test_pcqm4mv2_csv() -> None:
    records = load("pcqm4mv2_csv", FIXTURES / "pcqm4mv2/data.csv.gz")
    assert [r.native_id for r in records] == ["0", "1", "2", "3", "4"]
    assert failures(records) == {"3": "invalid_smiles"}
    rec = by_id(records)
    assert rec["0"].labels == {"homo_lumo_gap_ev": pytest.approx(5.3287640312)}
    assert rec["4"].labels == {"homo_lumo_gap_ev": None}  # test split: no gap
    assert rec["1"].mol.GetNumConformers() == 0
    assert Chem.MolToSmiles(rec["2"].mol) == "c1ccncc1"


def test_pcqm4mv2_sdf() -> None:
    records = load("pcqm4mv2_sdf", FIXTURES / "pcqm4mv2/pcqm4m-v2-train.sdf")
    assert [r.native_id for r in records] == ["0", "1", "2", "3", "4"]  # record index = idx
    assert failures(records) == {"3": "invalid_structure"}
    mol = records[0].mol
    assert mol.GetNumAtoms() == 9  # heavy atoms only, as in OGB's file
    assert mol.GetConformer().Is3D()
    np.testing.assert_allclose(mol.GetConformer().GetPositions()[0], [2.7022, 1.2971, 0.0468])
    molecule = from_rdkit("pcqm4mv2:0", mol)  # the core adds H with coordinates
    assert molecule.n_atoms == 15 and molecule.coords_angstrom.shape == (15, 3)
    np.testing.assert_allclose(molecule.coords_angstrom[0], [2.7022, 1.2971, 0.0468])


def test_pcqm4mv2_cxsmiles() -> None:
    path = FIXTURES / "pcqm4mv2/cxsmiles.csv"
    records = load("pcqm4mv2_cxsmiles", path)
    assert [r.native_id for r in records] == ["0", "1", "2", "3", "4"]
    assert failures(records) == {"3": "invalid_smiles"}
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    for row, record in zip(rows, records, strict=True):
        if record.failure:
            continue
        n_triples = row["smiles"].count(";") + 1
        assert record.mol.GetNumAtoms() == n_triples
        pos = record.mol.GetConformer().GetPositions()
        np.testing.assert_allclose(pos[0], first_cx_triple(row["smiles"]))
        assert record.labels == {"homo_lumo_gap_ev": float(row["homo"])}
        assert from_rdkit("p:x", record.mol).n_atoms == n_triples  # no hydrogens added


def test_pcqm4mv2_cxsmiles_radical_keeps_its_atoms() -> None:
    # "[H]C([H])[H]" with 4 coordinates is the methyl radical, not methane with a lost H
    record = by_id(load("pcqm4mv2_cxsmiles", FIXTURES / "pcqm4mv2/cxsmiles.csv"))["2"]
    assert record.mol.GetAtomWithIdx(1).GetNumRadicalElectrons() == 1
    molecule = from_rdkit("p:2", record.mol)
    assert (molecule.n_atoms, molecule.multiplicity, molecule.smiles) == (4, 2, "[CH3]")


# --- pubchem ------------------------------------------------------------------------------


def test_pubchem_tsv() -> None:
    records = load("pubchem_tsv", FIXTURES / "pubchem/cid_smiles.tsv")
    ids = ["702", "241", "2244", "5234", "999999", "line7", "23931"]  # blank line 5 skipped
    assert [r.native_id for r in records] == ids
    assert failures(records) == {"999999": "invalid_smiles", "line7": "invalid_structure"}
    rec = by_id(records)
    assert Chem.MolToSmiles(rec["2244"].mol) == "CC(=O)Oc1ccccc1C(=O)O"
    assert rec["702"].mol.GetNumConformers() == 0 and rec["702"].labels == {}
    assert "parentheses" in rec["999999"].failure[1]


def test_pubchem_sdf() -> None:
    records = load("pubchem_sdf", FIXTURES / "pubchem/compounds.sdf")
    assert [r.native_id for r in records] == ["702", "241", "962", "297"]  # 962: title line
    assert failures(records) == {"297": "invalid_structure"}
    rec = by_id(records)
    ethanol = rec["702"].mol
    assert ethanol.GetNumAtoms() == 9 and ethanol.GetConformer().Is3D()  # explicit H kept
    np.testing.assert_allclose(ethanol.GetConformer().GetPositions()[0], [-0.8544, 0.2235, 0.2418])
    assert rec["241"].mol.GetNumConformers() == 0  # 2D depiction is not a geometry
    assert Chem.MolToSmiles(Chem.RemoveHs(rec["241"].mol)) == "c1ccccc1"
    assert "Qq" in rec["297"].failure[1]


# --- qm9 ----------------------------------------------------------------------------------

GDB_1 = {
    "a_ghz": 157.7118,
    "b_ghz": 157.70997,
    "c_ghz": 157.70699,
    "mu_debye": 0.0,
    "alpha_bohr3": 13.21,
    "homo_hartree": -0.3877,
    "lumo_hartree": 0.1171,
    "gap_hartree": 0.5048,
    "r2_bohr2": 35.3641,
    "zpve_hartree": 0.044749,
    "u0_hartree": -40.47893,
    "u298_hartree": -40.476062,
    "h298_hartree": -40.475117,
    "g298_hartree": -40.498597,
    "cv_cal_per_mol_k": 6.469,
}


def test_qm9_csv() -> None:
    records = load("qm9_csv", FIXTURES / "qm9/gdb9.csv")
    assert [r.native_id for r in records] == ["gdb_1", "gdb_2", "gdb_3", "gdb_6", "gdb_7", "gdb_8"]
    assert failures(records) == {"gdb_7": "invalid_smiles", "gdb_8": "invalid_structure"}
    labels = by_id(records)["gdb_1"].labels
    assert labels == {
        **GDB_1,
        "u0_atom_kcal_per_mol": -395.9995946,
        "u298_atom_kcal_per_mol": -398.6432900,
        "h298_atom_kcal_per_mol": -401.0146465,
        "g298_atom_kcal_per_mol": -372.4717721,
    }
    assert Chem.MolToSmiles(by_id(records)["gdb_6"].mol) == "C=O"


def check_qm9_xyz(records: list[SourceRecord]) -> None:
    assert [r.native_id for r in records] == ["gdb_1", "gdb_2", "gdb_3", "gdb_4", "gdb_6"]
    assert failures(records) == {"gdb_4": "invalid_structure"}  # an atom line is missing
    rec = by_id(records)
    methane = rec["gdb_1"].mol
    assert [a.GetSymbol() for a in methane.GetAtoms()] == ["C", "H", "H", "H", "H"]
    np.testing.assert_allclose(
        methane.GetConformer().GetPositions()[0], [-0.0126981359, 1.0858041578, 0.0080009958]
    )
    assert rec["gdb_1"].labels == GDB_1
    formaldehyde = rec["gdb_6"].mol
    assert formaldehyde.GetConformer().GetAtomPosition(0).z == pytest.approx(4.30543e-5)  # *^-5
    assert formaldehyde.GetBondBetweenAtoms(0, 1).GetBondType() == Chem.BondType.DOUBLE
    molecule = from_rdkit("qm9:gdb_6", formaldehyde, rec["gdb_6"].labels)
    assert molecule.smiles == "C=O" and molecule.n_atoms == 4  # all H already explicit
    assert molecule.labels["u0_hartree"] == -114.483613


def test_qm9_xyz_directory_file_and_archive(tmp_path: Path) -> None:
    directory = FIXTURES / "qm9"
    check_qm9_xyz(load("qm9_xyz", directory))
    single = load("qm9_xyz", directory / "dsgdb9nsd_000002.xyz")
    assert [r.native_id for r in single] == ["gdb_2"] and single[0].mol.GetNumAtoms() == 4
    archive = tmp_path / "dsgdb9nsd.xyz.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        for file in sorted(directory.glob("*.xyz")):
            tar.add(file, arcname=file.name)
    check_qm9_xyz(load("qm9_xyz", archive))


def raw_qm9_file(smiles: str, relaxed: str) -> tuple[str, Chem.Mol]:
    """A raw QM9 file for an MMFF geometry with hydrogens listed first (scrambled order)."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=11)
    AllChem.MMFFOptimizeMolecule(mol)
    order = sorted(range(mol.GetNumAtoms()), key=lambda i: mol.GetAtomWithIdx(i).GetAtomicNum() > 1)
    mol = Chem.RenumberAtoms(mol, order)
    Chem.AssignStereochemistryFrom3D(mol)
    lines = [str(mol.GetNumAtoms()), "gdb 99\t" + "\t".join(["1.5"] * 15)]
    for atom, (x, y, z) in zip(mol.GetAtoms(), mol.GetConformer().GetPositions(), strict=True):
        lines.append(f"{atom.GetSymbol()}\t{x:.8f}\t{y:.8f}\t{z:.8f}\t0.0")
    lines += ["1000.0", f"{smiles}\t{relaxed}", "InChI=1S/x\tInChI=1S/x"]
    return "\n".join(lines) + "\n", mol


@pytest.mark.parametrize(
    ("smiles", "relaxed"),
    [
        ("c1c[nH]cn1", "c1c[nH]cn1"),  # the NH hydrogen must stay on its own nitrogen
        ("[NH3+]CC([O-])=O", "[NH3+]CC([O-])=O"),  # charges from the relaxed SMILES
        ("CC1(C)CC2CC1O2", "CC1(C)CC2CC1O2"),  # strained: short non-bonded C...O distance
        ("CC=O", "CCO"),  # SMILES disagrees with the geometry: bonds from the geometry
    ],
)
def test_qm9_xyz_bonds_follow_the_geometry(smiles: str, relaxed: str) -> None:
    text, reference = raw_qm9_file(smiles, relaxed)
    record = FORMATS["qm9_xyz"].parse(RawEntry("gdb_99", text), {})
    assert record.failure is None
    mol = record.mol
    assert Chem.MolToSmiles(mol) == Chem.MolToSmiles(reference)
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 1:
            ref = reference.GetAtomWithIdx(atom.GetIdx())
            assert atom.GetNeighbors()[0].GetIdx() == ref.GetNeighbors()[0].GetIdx()
    np.testing.assert_allclose(
        mol.GetConformer().GetPositions(), reference.GetConformer().GetPositions(), atol=1e-7
    )


# --- generic ------------------------------------------------------------------------------


def test_smiles() -> None:
    records = load("smiles", FIXTURES / "generic/molecules.smi")
    assert [r.native_id for r in records] == ["ethanol", "3", "acetic", "broken", "water"]
    assert failures(records) == {"broken": "invalid_smiles"}
    assert by_id(records)["water"].mol.GetNumAtoms() == 3  # explicit [H] kept as written


def test_sdf() -> None:
    records = load("sdf", FIXTURES / "generic/molecules.sdf")
    # "my pyridine" is not a valid id: record index 1 instead
    assert [r.native_id for r in records] == ["glycolic_acid", "1", "broken", "hydrogen_cyanide"]
    assert failures(records) == {"broken": "invalid_structure"}
    rec = by_id(records)
    assert rec["glycolic_acid"].mol.GetConformer().Is3D()
    assert rec["1"].mol.GetNumConformers() == 0


def test_xyz() -> None:
    path = FIXTURES / "generic/frames.xyz"
    records = load("xyz", path, {"energy_unit": "kcal_per_mol"})
    assert [r.native_id for r in records] == [f"frames-{i}" for i in range(5)]
    assert failures(records) == {"frames-2": "invalid_structure"}  # element Xx
    rec = by_id(records)
    assert rec["frames-0"].labels == {"energy_kcal_per_mol": -47931.6012}
    assert rec["frames-4"].labels == {"energy_kcal_per_mol": None}  # plain XYZ comment
    water = rec["frames-1"].mol
    assert Chem.MolToSmiles(Chem.RemoveHs(water)) == "O"
    first_atom = water.GetConformer().GetPositions()[0]
    np.testing.assert_allclose(first_atom, [0.0272948, 0.39774806, -0.02])  # Å, as in the file
    assert Chem.MolToSmiles(Chem.RemoveHs(rec["frames-4"].mol)) == "C"
    assert load("xyz", path)[0].labels == {}  # energy unit unknown: no label


def test_xyz_charge_option_and_bad_options(tmp_path: Path) -> None:
    path = tmp_path / "ammonium ion.xyz"
    corners = ["0.59 0.59 0.59", "-0.59 -0.59 0.59", "-0.59 0.59 -0.59", "0.59 -0.59 -0.59"]
    path.write_text("5\n\nN 0 0 0\n" + "".join(f"H {c}\n" for c in corners))
    record = load("xyz", path, {"charge": 1})[0]
    assert record.native_id == "ammonium_ion-0"
    assert Chem.GetFormalCharge(record.mol) == 1
    # as a neutral NH4 no bond orders fit: kept with connectivity, 11 electrons, a doublet
    neutral = from_rdkit("x:nh4", load("xyz", path)[0].mol)
    assert (neutral.charge, neutral.multiplicity, neutral.smiles) == (0, 2, "")
    assert not neutral.bond_orders_known
    with pytest.raises(ValueError, match="energy_unit"):
        list(FORMATS["xyz"].read_raw(path, {"energy_unit": "kcal/mol"}))
    path.write_text("five\n\n")
    with pytest.raises(ValueError, match="atom count"):
        list(FORMATS["xyz"].read_raw(path, {}))


def test_xyz_without_bond_orders_keeps_connectivity_coordinates_and_charge() -> None:
    """ClF3 (trivalent Cl) and a nitrofuran (PCQM4Mv2 idx 768, DFT geometry) have no bond orders
    RDKit can assign; they are kept with single bonds from distances, marked unknown."""
    path = FIXTURES / "generic/unassignable.xyz"
    records = load("xyz", path)
    assert not failures(records)
    clf3, nitrofuran = (from_rdkit(f"x:{r.native_id}", r.mol) for r in records)
    text = path.read_text().splitlines()
    for molecule, first_line, n_bonds in [(clf3, 2, 3), (nitrofuran, 8, 22)]:
        rows = [line.split() for line in text[first_line : first_line + molecule.n_atoms]]
        assert [Chem.Atom(r[0]).GetAtomicNum() for r in rows] == molecule.atomic_numbers.tolist()
        np.testing.assert_array_equal(
            molecule.coords_angstrom, [[float(v) for v in r[1:4]] for r in rows]
        )
        assert (molecule.smiles, molecule.charge, molecule.multiplicity) == ("", 0, 1)
        assert molecule.provenance == {"bond_orders": "unknown"}
        rdmol = molecule.to_rdkit()  # from the stored molblock: connectivity, no implicit H
        assert rdmol.GetNumBonds() == n_bonds
        assert {b.GetBondType() for b in rdmol.GetBonds()} == {Chem.BondType.SINGLE}
        assert sum(a.GetTotalNumHs() for a in rdmol.GetAtoms()) == 0
        positions = rdmol.GetConformer().GetPositions()
        np.testing.assert_array_equal(positions, molecule.coords_angstrom)
    bonds = clf3.to_rdkit().GetBonds()
    assert sorted(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in bonds) == [
        [0, 1],
        [0, 2],
        [0, 3],
    ]
    # without bond orders the formal charges are unknown: the filter cannot clear them
    reason = "bond orders unknown: formal charges cannot be checked"
    unknown = ("filtered_charge_separation", reason)
    assert [check(r.mol, {}) for r in records] == [unknown, unknown]
    assert [check(r.mol, {"reject_formal_charges": False}) for r in records] == [None, None]
    assert check(records[0].mol, {"allowed_elements": ["F"]})[0] == "filtered_element"
    # the mark survives pickling of the record
    again = pickle.loads(pickle.dumps(records[0]))
    assert has_unknown_bond_orders(again.mol)
    # a given net charge is kept: ClF3 anion, 45 electrons, a doublet
    anion = from_rdkit("x:clf3-", load("xyz", path, {"charge": -1})[0].mol)
    assert (anion.charge, anion.multiplicity, anion.bond_orders_known) == (-1, 2, False)


def test_qm9_xyz_without_usable_smiles_keeps_connectivity() -> None:
    frame = (FIXTURES / "generic/unassignable.xyz").read_text().splitlines()[:6]
    lines = [frame[0], "gdb 7\t" + "\t".join(["1.5"] * 15)]
    lines += [f"{line}\t0.0" for line in frame[2:]] + ["1.0", "x\tx", "InChI=1S/x\tInChI=1S/x"]
    record = FORMATS["qm9_xyz"].parse(RawEntry("gdb_7", "\n".join(lines) + "\n"), {})
    molecule = from_rdkit("qm9:gdb_7", record.mol, record.labels)
    assert molecule.provenance == {"bond_orders": "unknown"} and molecule.n_atoms == 4
    assert molecule.labels["u0_hartree"] == 1.5


TEXT = ["", "garbage", "3\n\nC 0 0 x\n", "  1  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n"]
BAD_PAYLOADS = {
    "pcqm4mv2_csv": [(["idx", "smiles", "homolumogap"], r) for r in (["0"], ["0", "C(", "1"])],
    "pcqm4mv2_cxsmiles": [(["smiles", "homo"], r) for r in (["C"], ["C |(0,0)|", "x"])],
    "pcqm4mv2_sdf": TEXT,
    "pubchem_tsv": [None, "C1CC(", "[Qq]", ""],
    "pubchem_sdf": TEXT,
    "qm9_csv": [{"mol_id": "gdb_1", "smiles": "garbage", "A": "1"}, {"smiles": "C", "mu": "x"}],
    "qm9_xyz": [*TEXT, "1\ngdb 1\nC 0 0 0\n\n\n\n", "1\ngdb 1" + " 1" * 15 + "\nC 0 0\n\n\n\n"],
    "smiles": ["", "C1CC(", "c1cccc1", "[Qq]", "C(C)(C)(C)(C)C"],
    "sdf": TEXT,
    "xyz": ["0\n\n", "2\n\nC 0 0 0\n", "1\n\nC 0 0 x\n", "2\n\nC 0 0 0\nC 0 0 0\n", "x\n"],
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_parse_never_raises_on_bad_data(name: str, capfd: pytest.CaptureFixture[str]) -> None:
    for payload in BAD_PAYLOADS[name]:
        record = FORMATS[name].parse(RawEntry("bad", payload), {})
        assert record.native_id == "bad" and record.mol is None
        assert record.failure[0] in {"invalid_smiles", "invalid_structure"}, payload
        assert record.failure[1]
    assert capfd.readouterr().err == ""  # RDKit's messages go into the failure, not to stderr


def test_quiet_without_error_capture(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(generic, "_CaptureErrorLog", None)  # RDKit older than 2026.03
    record = FORMATS["smiles"].parse(RawEntry("bad", "C1CC("), {})
    assert record.failure == ("invalid_smiles", "'C1CC(': rejected by RDKit")
    assert capfd.readouterr().err == ""


# --- filter -------------------------------------------------------------------------------

SETTINGS = {
    "allowed_elements": list(DEFAULT_ALLOWED_ELEMENTS),
    "max_heavy_atoms": 30,
    "require_neutral": True,
    "reject_formal_charges": True,
}


@pytest.mark.parametrize(
    ("smiles", "expected"),
    [
        ("CC(=O)Oc1ccccc1C(=O)O", None),
        ("C[Se]C.[Ba]", None),
        ("[Hg](Cl)Cl", ("filtered_element", "element Hg not allowed")),
        ("C[Pt]C[Fe]", ("filtered_element", "elements Fe, Pt not allowed")),
        ("C" * 34, ("filtered_heavy_atoms", "34 heavy atoms > 30")),
        ("[Hg]" + "C" * 34, ("filtered_element", "element Hg not allowed")),  # first reason
        ("C[NH3+]", ("filtered_charge", "net charge +1")),
        ("[O-]C(=O)C", ("filtered_charge", "net charge -1")),
        ("C[N+](=O)[O-]", ("filtered_charge_separation", "formal charges on N2+1, O4-1 (net 0)")),
        ("[Na+].[Cl-]", ("filtered_charge_separation", "formal charges on Na1+1, Cl2-1 (net 0)")),
    ],
)
def test_filter_reasons(smiles: str, expected: tuple[str, str] | None) -> None:
    assert check(Chem.MolFromSmiles(smiles), SETTINGS) == expected


def test_filter_settings() -> None:
    ammonium = Chem.MolFromSmiles("C[NH3+]")
    relaxed = {**SETTINGS, "require_neutral": False}
    assert check(ammonium, relaxed)[0] == "filtered_charge_separation"
    assert check(ammonium, {**relaxed, "reject_formal_charges": False}) is None
    assert check(Chem.MolFromSmiles("CCO"), {**SETTINGS, "max_heavy_atoms": 2}) == (
        "filtered_heavy_atoms",
        "3 heavy atoms > 2",
    )
    assert check(Chem.MolFromSmiles("CCO"), {**SETTINGS, "allowed_elements": ["C", "O"]}) == (
        "filtered_element",
        "element H not allowed",  # implicit hydrogens count
    )


# --- real data samples (skipped when ../shared/data is absent) ----------------------------


def shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def test_real_pcqm4mv2_cxsmiles_all_parse_with_coordinates() -> None:
    path = shared("pcqm4mv2/pcqm4mv2_first1000.csv")
    records = load("pcqm4mv2_cxsmiles", path)
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert len(records) == 1000 and not failures(records)
    for row, record in zip(rows, records, strict=True):
        assert record.mol.GetNumAtoms() == row["smiles"].count(";") + 1
        assert record.mol.GetConformer().Is3D()
        assert record.mol.GetNumAtoms() == Chem.AddHs(record.mol).GetNumAtoms()
    np.testing.assert_allclose(
        records[0].mol.GetConformer().GetPositions()[0], first_cx_triple(rows[0]["smiles"])
    )
    # OGB's SMILES for idx 0 is O=C1[N]c2ccncc2[CH][C@@H]1c1ccc(cc1)C: a diradical, which
    # PubChemQC computed as a closed-shell singlet (rhoflow's lowest-spin convention)
    first = from_rdkit("p:0", records[0].mol)
    assert first.smiles == "Cc1ccc([C@H]2[CH]c3cnccc3[N]C2=O)cc1"
    assert first.multiplicity == 1
    assert 3.0 < records[0].labels["homo_lumo_gap_ev"] < 3.1


def test_real_micro_qm9_parses() -> None:
    records = load("qm9_csv", shared("qm9/micro_qm9.csv"))
    assert len(records) == 1006 and not failures(records)
    assert all(r.native_id.startswith("gdb_") for r in records)
    assert records[0].labels["u0_hartree"] == pytest.approx(-40.47893)


def test_real_pcqm4mv2_geometries_as_xyz_all_kept() -> None:
    """PCQM4Mv2's 1,000 DFT geometries read back as plain XYZ (charge 0): every one is kept,
    in source atom order and coordinates; those RDKit cannot assign bond orders to (nitro
    groups: 17 of 1,000 with RDKit 2026.09, all ledgered before) with connectivity only."""
    records = load("pcqm4mv2_cxsmiles", shared("pcqm4mv2/pcqm4mv2_first1000.csv"))
    frames = []
    for record in records:
        atoms = record.mol.GetAtoms()
        positions = record.mol.GetConformer().GetPositions()
        lines = [str(len(positions)), ""]
        for atom, (x, y, z) in zip(atoms, positions, strict=True):
            lines.append(f"{atom.GetSymbol()} {float(x)!r} {float(y)!r} {float(z)!r}")
        frames.append(RawEntry(record.native_id, "\n".join(lines) + "\n"))
    parsed = [FORMATS["xyz"].parse(frame, {}) for frame in frames]
    assert not failures(parsed)
    unknown = 0
    for source, record in zip(records, parsed, strict=True):
        molecule = from_rdkit("x:1", record.mol)
        unknown += not molecule.bond_orders_known
        np.testing.assert_array_equal(
            molecule.coords_angstrom, source.mol.GetConformer().GetPositions()
        )
    assert 0 < unknown <= 30


def test_real_md17_extxyz_frames() -> None:
    path = shared("md17/ethanol_md17_2000frames.extxyz")
    records = load("xyz", path, {"energy_unit": "kcal_per_mol"})[:200]
    assert not failures(records)
    assert {Chem.MolToSmiles(Chem.RemoveHs(r.mol)) for r in records} == {"CCO"}
    assert all(r.labels["energy_kcal_per_mol"] < -9e4 for r in records)
