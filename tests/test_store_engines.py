"""The store keeps what a real engine produced: psi4's cube values bit-exact as float32, and
export → import of those values is the identity."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rhoflow.config import section_settings
from rhoflow.density import iter_shard
from rhoflow.molecule import Molecule
from rhoflow.store import export_cube, import_cubes, open_store, write_store

pytestmark = pytest.mark.skipif(shutil.which("psi4") is None, reason="psi4 not installed")

WATER = Molecule(
    "t:h2o",
    "O",
    0,
    1,
    np.array([8, 1, 1]),
    "",
    np.array([[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]]),
)
SETTINGS = {
    "method": "hf",
    "basis": "sto-3g",
    "spacing_bohr": 0.5,
    "overage_bohr": 3.0,
    "timeout_s": 120,
}


@pytest.fixture(scope="module")
def psi4_water():
    settings = section_settings("density.psi4", SETTINGS)
    (result,) = list(iter_shard("psi4", [WATER], settings, workers=1, threads=1))
    assert not hasattr(result, "reason"), result
    return result


def test_psi4_cube_values_are_stored_bit_exact(tmp_path, psi4_water):
    write_store(tmp_path / "s.zarr", [psi4_water])
    store = open_store(tmp_path / "s.zarr")
    for field, grid in (("density", psi4_water.density), ("esp", psi4_water.esp)):
        stored = store.get("t:h2o", field)
        assert stored.dtype == np.float32
        assert np.array_equal(stored.values, grid.values.astype(np.float32))
        assert np.allclose(stored.coords["x"].values, grid.axes_bohr()[0])
    assert store.get("t:h2o").attrs["provenance"]["engine"] == "psi4"


def test_export_import_round_trip_of_psi4_output_is_identical(tmp_path, psi4_water):
    write_store(tmp_path / "s.zarr", [psi4_water])
    export_cube(tmp_path / "s.zarr", "t:h2o", tmp_path / "h2o_Dt.cube")
    export_cube(tmp_path / "s.zarr", "t:h2o", tmp_path / "h2o_ESP.cube", field="esp")
    failed = import_cubes(
        [(tmp_path / "h2o_Dt.cube", tmp_path / "h2o_ESP.cube")], tmp_path / "back.zarr"
    )
    assert failed == []
    original, back = open_store(tmp_path / "s.zarr"), open_store(tmp_path / "back.zarr")
    for field in ("density", "esp"):
        assert np.array_equal(original.get("t:h2o", field).values, back.get("h2o", field).values)
