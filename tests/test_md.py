"""Trajectory stores, the MD17 / rMD17 readers and GFN2-xTB molecular dynamics (rhoflow.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rhoflow.ledger import read_ledger
from rhoflow.md import (
    Trajectory,
    energy_drift,
    read_extxyz,
    read_npz,
    read_trajectory,
    run_md,
    simulate_shard,
    trajectory_names,
    write_extxyz,
    write_store,
)
from rhoflow.md.frames import FORCE_UNITS, KCAL_PER_MOL_PER_HARTREE
from rhoflow.molecule import Molecule, read_molecules, write_molecules
from rhoflow.zarrgroup import IncompleteStoreError
from tests.conftest import shared_file

WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


def _trajectory(n_frames: int = 5, seed: int = 0) -> Trajectory:
    rng = np.random.default_rng(seed)
    return Trajectory(
        "toy:0",
        np.array([8, 1, 1]),
        WATER + rng.normal(scale=0.05, size=(n_frames, 3, 3)),
        rng.normal(-76.0, 0.01, size=n_frames),
        rng.normal(scale=0.02, size=(n_frames, 3, 3)),
    )


def test_extxyz_and_rmd17_readers_give_identical_arrays(tmp_path):
    """The same frames written as MD17 extended XYZ and as an rMD17 npz read back equal."""
    t = _trajectory()
    write_extxyz(tmp_path / "t.extxyz", t)
    kcal_force = FORCE_UNITS["kcal_per_mol_per_angstrom"]
    np.savez(
        tmp_path / "t.npz",
        nuclear_charges=t.atomic_numbers,
        coords=t.positions,
        energies=t.energy * KCAL_PER_MOL_PER_HARTREE,
        forces=t.forces * kcal_force,
    )
    a = read_extxyz(tmp_path / "t.extxyz", "toy:0")
    b = read_npz(tmp_path / "t.npz", "toy:0")
    np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
    for name in ("positions", "energy", "forces"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-14, atol=0)
        np.testing.assert_allclose(getattr(a, name), getattr(t, name), rtol=1e-14, atol=0)


def test_md17_ethanol_units(tmp_path):
    """MD17's ethanol: kcal/mol energies become Hartree, forces Hartree/bohr; a store keeps them."""
    t = read_extxyz(shared_file("md17/ethanol_md17_2000frames.extxyz"), "md17_ethanol")
    assert len(t) == 2000 and list(t.atomic_numbers) == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    assert -155.0 < t.energy.mean() < -154.8  # -97,200 kcal/mol
    assert 0.01 < t.forces.std() < 0.05  # ~26 kcal/mol/Å
    write_store(tmp_path / "s.zarr", [t])
    back = read_trajectory(tmp_path / "s.zarr", "md17_ethanol")
    np.testing.assert_array_equal(back.positions, t.positions)
    np.testing.assert_array_equal(back.forces, t.forces)


def test_store_refuses_bad_shapes_and_unfinished(tmp_path):
    t = _trajectory()
    with pytest.raises(ValueError, match="forces has shape"):
        Trajectory("x:1", t.atomic_numbers, t.positions, t.energy, t.forces[:, :2])
    with pytest.raises(IncompleteStoreError):
        trajectory_names(tmp_path / "missing.zarr")


def _harmonic_engine(x0_bohr: np.ndarray, k: float = 0.05):
    def engine(x: np.ndarray) -> tuple[float, np.ndarray]:
        d = x - x0_bohr
        return float(0.5 * k * (d * d).sum()), k * d

    return engine


SETTINGS = dict(temperature_k=300.0, timestep_fs=0.5, frames=200, stride=2,
                equilibration_steps=0, friction_per_fs=0.01, seed=3)  # fmt: skip


def test_nve_conserves_energy_and_nvt_holds_temperature():
    """Velocity Verlet on a stiff harmonic well conserves E + K; Langevin holds T on average."""
    x0 = WATER / 0.529177210903
    nve = run_md(_harmonic_engine(x0), np.array([8, 1, 1]), WATER, {**SETTINGS, "ensemble": "nve"},
                 "w:0")  # fmt: skip
    total = nve.energy + nve.md["kinetic_energy"]
    assert np.ptp(total) < 1e-2 * nve.md["kinetic_energy"].mean()  # O((ω Δt)²)
    assert abs(energy_drift(nve)) < 1e-5  # Hartree/ps
    langevin = {**SETTINGS, "ensemble": "nvt", "frames": 2000, "friction_per_fs": 0.05}
    nvt = run_md(_harmonic_engine(x0), np.array([8, 1, 1]), WATER, langevin, "w:0")
    assert 240 < nvt.md["temperature_k"][200:].mean() < 360
    expected = -0.05 * (nvt.positions / 0.529177210903 - x0)  # Hartree/bohr
    np.testing.assert_allclose(nvt.forces, expected, atol=1e-12)


def test_md_xtb_shard_with_a_failing_molecule(tmp_path):
    """GFN2-xTB MD of a shard: water gets its frames (Hartree, Hartree/bohr, Å), a molecule
    without coordinates is a ledger row and the shard completes."""
    water = Molecule("t:water", "O", 0, 1, np.array([8, 1, 1]), "", WATER)
    bad = Molecule("t:nocoords", "O", 0, 1, np.array([8, 1, 1]), "", None)
    write_molecules(tmp_path / "shard.parquet", [water, bad])
    settings = {**SETTINGS, "ensemble": "nvt", "frames": 10, "equilibration_steps": 5}
    out = simulate_shard(tmp_path / "shard.parquet", tmp_path / "md.zarr",
                         tmp_path / "md.ledger.tsv", settings)  # fmt: skip
    assert out == {"trajectories": 1, "failed": 1, "frames": 10}
    (row,) = read_ledger(tmp_path / "md.ledger.tsv")
    assert (row.id, row.stage, row.reason) == ("t:nocoords", "md_xtb", "missing_coordinates")
    t = read_trajectory(tmp_path / "md.zarr", "t:water")
    assert t.positions.shape == (10, 3, 3) and t.provenance["method"] == "GFN2-xTB"
    assert -5.1 < t.energy.mean() < -5.0  # GFN2-xTB water, Hartree
    assert np.abs(t.forces.sum(axis=1)).max() < 1e-6  # no net force


def test_import_and_split_commands(tmp_path):
    """`rhoflow md import` and `rhoflow md split` (rules md_import, md_split): the entry's units
    are applied and the counts hold; counts beyond the frames fail naming the key."""
    from rhoflow.cli import main
    from rhoflow.splits import read_splits

    t = _trajectory(n_frames=30)
    write_extxyz(tmp_path / "t.extxyz", t)
    entry = {"name": "toy", "format": "extxyz", "path": str(tmp_path / "t.extxyz")}
    assert (
        main(["md", "import", "--entry", json.dumps(entry), "--out", str(tmp_path / "s.zarr")]) == 0
    )
    np.testing.assert_allclose(read_trajectory(tmp_path / "s.zarr", "toy").energy, t.energy)
    split = tmp_path / "split.parquet"
    settings = json.dumps({"counts": [20, 5, None], "seed": 1})
    assert main(["md", "split", "--settings", settings, "--trajectory", "toy", "--out", str(split),
                 str(tmp_path / "s.zarr")]) == 0  # fmt: skip
    counts = read_splits(split)["split"].value_counts().to_dict()
    assert counts == {"train": 20, "val": 5, "test": 5}
    frames = tmp_path / "frames.parquet"
    assert main(["md", "frames", "--trajectory", "toy", "--out", str(frames),
                 str(tmp_path / "s.zarr")]) == 0  # fmt: skip
    molecules = read_molecules(frames)
    assert [m.id for m in molecules[:2]] == ["toy:0", "toy:1"] and len(molecules) == 30
    np.testing.assert_array_equal(molecules[7].coords_angstrom, t.positions[7])
    with pytest.raises(ValueError, match=r"md.split.counts \[40, 5, None\]"):
        main(["md", "split", "--settings", json.dumps({"counts": [40, 5, None]}), "--trajectory",
              "toy", "--out", str(split), str(tmp_path / "s.zarr")])  # fmt: skip
