"""Density store: bit-exact round trips, ragged grids, index lookups, atomicity, cube interop."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import FIXTURES

from rhoflow.cube import read_cube
from rhoflow.ledger import LedgerRow, write_ledger
from rhoflow.result import DensityResult, Grid
from rhoflow.store import (
    IncompleteStoreError,
    StoreWriter,
    export_cube,
    find_cube_pairs,
    import_cubes,
    info,
    open_dataset,
    open_store,
    write_index,
    write_store,
)

CUBES = FIXTURES / "cube"
SMALL = {"shard_points": 512, "chunk_points": 128}  # many shard files from tiny grids


def decimal6(values: np.ndarray) -> np.ndarray:
    """float32 of six-significant-digit text, as parsing a cube gives."""
    text = np.array([float(f"{v:.5E}") for v in values.ravel()])
    return text.reshape(values.shape).astype(np.float32)


def smooth(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    axes = np.meshgrid(*(np.linspace(-3, 3, n) for n in shape), indexing="ij")
    r = np.sqrt(sum((a - rng.uniform(-1, 1)) ** 2 for a in axes))
    return np.exp(-1.5 * r) + 1e-4 * rng.random(shape)


def molecule(
    i: int, rng: np.random.Generator, esp: bool = True, text: bool = False
) -> DensityResult:
    shape = tuple(int(n) for n in rng.integers(2, 11, size=3))
    rho = smooth(shape, rng)
    rho = decimal6(rho) if text else rho.astype(np.float32)
    origin, spacing = rng.uniform(-9, 0, 3), rng.uniform(0.2, 0.5, 3)
    pot = None
    if esp:
        values = decimal6(smooth(shape, rng) - 0.2) if text else rng.standard_normal(shape)
        pot = Grid(origin.copy(), spacing.copy(), np.asarray(values, np.float32))
    n_atoms = int(rng.integers(1, 6))
    return DensityResult(
        id=f"mol-{i:04d}",
        atomic_numbers=rng.integers(1, 10, n_atoms),
        coords_bohr=rng.normal(size=(n_atoms, 3)),
        density=Grid(origin, spacing, rho),
        esp=pot,
        labels={"gap_hartree": float(rng.random()), "lumo_hartree": None},
        checks={"n_electrons_grid": float(rng.random() * 10)},
        provenance={
            "engine": "pyscf" if i % 2 else "psi4",
            "engine_version": "2.6.2",
            "method": "b3lyp",
            "scf_converged": True,
            "scf_iterations": np.int64(11),
            "grid": {"kind": "cubeprop", "spacing_bohr": np.float64(0.4)},
        },
    )


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a32, b32 = np.asarray(a), np.asarray(b)
    return a32.dtype == b32.dtype == np.float32 and np.array_equal(
        a32.view(np.uint32), b32.view(np.uint32)
    )


def assert_same(store, result: DensityResult) -> None:
    da = store.get(result.id)
    assert isinstance(da, xr.DataArray) and da.dims == ("x", "y", "z")
    assert same_bits(da.values, result.density.values)
    for dim, axis in zip("xyz", result.density.axes_bohr(), strict=True):
        np.testing.assert_array_equal(da[dim].values, axis)
    assert da.attrs["units"] == "e/bohr^3" and da.attrs["labels"] == result.labels
    assert da.attrs["provenance"]["scf_iterations"] == 11
    if result.esp is not None:
        esp = store.esp(result.id)
        assert same_bits(esp.values, result.esp.values) and esp.attrs["units"] == "hartree/e"
        np.testing.assert_array_equal(esp.attrs["origin_bohr"], result.esp.origin_bohr)
    else:
        with pytest.raises(KeyError):
            store.esp(result.id)


# -------------------------------------------------------------------------- write / read


def test_round_trip_ragged_grids_bit_exact(tmp_path):
    rng = np.random.default_rng(1)
    results = [molecule(i, rng, esp=i != 2, text=i % 3 == 0) for i in range(8)]
    results[1].density.values.flat[:4] = [np.nan, -0.0, 1e-44, np.inf]
    path = write_store(tmp_path / "s.zarr", iter(results), **SMALL)
    store = open_store(path)
    assert store.ids == [r.id for r in results] and len(store) == 8
    assert len({r.density.shape for r in results}) > 1
    for r in results:
        assert_same(store, r)
        numbers, coords = store.atoms(r.id)
        np.testing.assert_array_equal(numbers, r.atomic_numbers)
        np.testing.assert_array_equal(coords, r.coords_bohr)
    back = store.result(results[4].id)
    assert same_bits(back.esp.values, results[4].esp.values)
    np.testing.assert_array_equal(back.density.spacing_bohr, results[4].density.spacing_bohr)
    assert store.result(results[2].id).esp is None
    group = zarr.open_group(path, mode="r")
    assert (
        group["density"].attrs["units"] == "e/bohr^3" and group["coords"].attrs["units"] == "bohr"
    )
    assert group["esp"].attrs["units"] == "hartree/e" and group.attrs["complete"] is True


def test_writer_streams_whole_shards_before_close(tmp_path):
    rng = np.random.default_rng(2)
    with StoreWriter(tmp_path / "s.zarr", **SMALL) as writer:
        for i in range(30):
            writer.add(molecule(i, rng))
        (tmp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".s.zarr.tmp-")]
        assert len(list((tmp / "density" / "c").iterdir())) >= 2  # flushed mid-stream
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert len(open_store(tmp_path / "s.zarr")) == 30


def test_duplicate_id_fails_and_leaves_no_store(tmp_path):
    rng = np.random.default_rng(3)
    first = molecule(0, rng)
    with pytest.raises(ValueError, match="duplicate"):
        write_store(tmp_path / "s.zarr", [first, first])
    assert list(tmp_path.iterdir()) == []


def test_exception_in_writer_leaves_nothing_and_keeps_old_store(tmp_path):
    rng = np.random.default_rng(4)
    target = tmp_path / "s.zarr"
    write_store(target, [molecule(0, rng)])
    with pytest.raises(RuntimeError, match="engine died"):
        with StoreWriter(target) as writer:
            writer.add(molecule(1, rng))
            raise RuntimeError("engine died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
    assert open_store(target).ids == ["mol-0000"]
    with pytest.raises(RuntimeError):
        with StoreWriter(tmp_path / "new.zarr") as writer:
            raise RuntimeError("before any molecule")
    assert not (tmp_path / "new.zarr").exists()


def test_killed_or_unmarked_store_is_refused(tmp_path):
    rng = np.random.default_rng(5)
    writer = StoreWriter(tmp_path / "s.zarr").__enter__()  # a job killed mid-shard
    writer.add(molecule(0, rng))
    (tmp,) = list(tmp_path.iterdir())
    assert tmp.name.startswith(".") and not (tmp_path / "s.zarr").exists()
    with pytest.raises(IncompleteStoreError):
        open_store(tmp)
    done = write_store(tmp_path / "done.zarr", [molecule(1, rng)])
    meta = done / "zarr.json"
    meta.write_text(meta.read_text().replace('"complete": true', '"complete": false'))
    with pytest.raises(IncompleteStoreError, match="incomplete"):
        open_store(done)
    with pytest.raises(IncompleteStoreError):
        open_store(tmp_path / "missing.zarr")
    with pytest.raises(IncompleteStoreError):
        write_index([done], tmp_path / "index.parquet")


def test_empty_store(tmp_path):
    store = open_store(write_store(tmp_path / "e.zarr", []))
    assert len(store) == 0 and store.ids == []
    assert info(store.path)["molecules"] == 0


# ------------------------------------------------------------------------ index / dataset


def make_shards(root: Path, n_shards: int = 3, per_shard: int = 4) -> list[DensityResult]:
    rng = np.random.default_rng(6)
    results = [molecule(i, rng, esp=i % 4 != 1) for i in range(n_shards * per_shard)]
    for k in range(n_shards):
        write_store(root / f"shard-{k}.zarr", results[k * per_shard : (k + 1) * per_shard])
    return results


def test_index_gives_o1_get_across_shards(tmp_path):
    results = make_shards(tmp_path / "data")
    shards = sorted((tmp_path / "data").glob("*.zarr"))
    index = write_index(shards, tmp_path / "data" / "index.parquet")
    shutil.move(tmp_path / "data", tmp_path / "moved")  # shard paths are stored relative
    ds = open_dataset(tmp_path / "moved" / "index.parquet")
    assert len(ds) == 12 and ds.ids == [r.id for r in results] and index.name == "index.parquet"
    target = results[9]
    assert_same(ds, target)
    assert len(ds._open) == 1  # only the shard holding the molecule was opened
    shard, pos = ds.locate(target.id)
    assert shard.name == "shard-2.zarr" and pos == 1
    for r in results:
        assert_same(ds, r)
    with pytest.raises(KeyError):
        ds.get("nope")
    listed = open_dataset(sorted((tmp_path / "moved").glob("*.zarr")))
    assert listed.ids == ds.ids and same_bits(listed.get(target.id).values, ds.values(target.id))
    write_store(tmp_path / "moved" / "shard-0.zarr", results[:4][::-1])  # rewritten shard
    with pytest.raises(ValueError, match="stale index"):
        open_dataset(tmp_path / "moved" / "index.parquet").get(results[0].id)


def test_index_rejects_duplicate_ids(tmp_path):
    rng = np.random.default_rng(7)
    a = write_store(tmp_path / "a.zarr", [molecule(0, rng)])
    b = write_store(tmp_path / "b.zarr", [molecule(0, rng)])
    with pytest.raises(ValueError, match="duplicate"):
        write_index([a, b], tmp_path / "index.parquet")
    assert not (tmp_path / "index.parquet").exists()


def test_dask_pass_over_all_molecules(tmp_path):
    results = make_shards(tmp_path)
    ds = open_dataset(write_index(sorted(tmp_path.glob("*.zarr")), tmp_path / "i.parquet"))
    bag = ds.map(
        lambda da: (da.attrs["id"], float(da.values.astype(np.float64).sum())), "density", 3
    )
    sums = dict(bag.compute(scheduler="sync"))
    assert sums == {r.id: float(r.density.values.astype(np.float64).sum()) for r in results}
    with_esp = ds.map(lambda da: da.attrs["id"], "esp").compute(scheduler="sync")
    assert sorted(with_esp) == sorted(r.id for r in results if r.esp is not None)
    arrays = ds.to_delayed()
    assert same_bits(arrays[5].compute(scheduler="sync"), results[5].density.values)


# ------------------------------------------------------------------------------ info


def test_info_counts_molecules_engines_failures_and_files(tmp_path):
    rng = np.random.default_rng(8)
    path = write_store(tmp_path / "shard-7.zarr", [molecule(i, rng, esp=i != 0) for i in range(5)])
    write_ledger(
        tmp_path / "shard-7.ledger.tsv",
        [
            LedgerRow("x1", "density", "scf_not_converged", "50 iterations"),
            LedgerRow("x2", "density", "scf_not_converged"),
            LedgerRow("x3", "density", "timeout"),
        ],
    )
    summary = info(path)
    assert summary["molecules"] == 5 and summary["with_esp"] == 4
    assert summary["engines"] == {"psi4 2.6.2": 3, "pyscf 2.6.2": 2}
    assert summary["failures"] == {"scf_not_converged": 2, "timeout": 1}
    files = [p for p in path.rglob("*") if p.is_file()]
    assert summary["file_count"] == len(files) <= 25
    assert summary["total_bytes"] == sum(p.stat().st_size for p in files)
    assert summary["points"]["esp"] < summary["points"]["density"]


# ------------------------------------------------------------------------------- cubes


def test_cube_import_export_round_trip(tmp_path):
    pairs = find_cube_pairs(CUBES)
    assert pairs == [(CUBES / "Mol1_Dt.cube", CUBES / "Mol1_ESP.cube")]
    assert import_cubes(pairs, tmp_path / "imported.zarr") == []
    store = open_store(tmp_path / "imported.zarr")
    numbers, coords, dens = read_cube(CUBES / "Mol1_Dt.cube")
    _, _, esp = read_cube(CUBES / "Mol1_ESP.cube")
    assert store.ids == ["Mol1"]
    assert same_bits(store.get("Mol1").values, dens.values.astype(np.float32))
    assert same_bits(store.esp("Mol1").values, esp.values.astype(np.float32))
    prov = store.metadata("Mol1")["provenance"]
    assert prov["engine"] == "cube-import"
    assert prov["source_files"] == {"density": "Mol1_Dt.cube", "esp": "Mol1_ESP.cube"}
    np.testing.assert_array_equal(store.atoms("Mol1")[0], numbers)

    out = tmp_path / "out"
    export_cube(store, "Mol1", out / "Mol1_Dt.cube")
    export_cube(tmp_path / "imported.zarr", "Mol1", out / "Mol1_ESP.cube", field="esp")
    for name in ("Mol1_Dt.cube", "Mol1_ESP.cube"):  # the same numbers as the source text
        source = (CUBES / name).read_text().split("\n", 9)[-1].split()
        assert (out / name).read_text().split("\n", 9)[-1].split() == source
    import_cubes(find_cube_pairs(out), tmp_path / "again.zarr")
    again = open_store(tmp_path / "again.zarr")
    for field in ("density", "esp"):
        assert same_bits(again.get("Mol1", field).values, store.get("Mol1", field).values)
        np.testing.assert_allclose(again.get("Mol1", field).attrs["origin_bohr"], dens.origin_bohr)


def test_cube_import_skips_invalid_files(tmp_path):
    bad = tmp_path / "Mol2_Dt.cube"
    bad.write_text("not\na cube\n")
    pairs = [(CUBES / "Mol1_Dt.cube", None), (bad, None)]
    with pytest.raises(ValueError):
        import_cubes(pairs, tmp_path / "strict.zarr")
    assert not (tmp_path / "strict.zarr").exists()
    failures = import_cubes(pairs, tmp_path / "lenient.zarr", skip_invalid=True)
    assert [(f.id, f.reason) for f in failures] == [("Mol2", "engine_error")]
    assert open_store(tmp_path / "lenient.zarr").ids == ["Mol1"]


# ------------------------------------------------------------------ readers without rhoflow


def test_plain_zarr_and_xarray_read_the_store_without_warnings(tmp_path):
    rng = np.random.default_rng(9)
    results = [molecule(i, rng, esp=i != 1) for i in range(5)]
    path = write_store(tmp_path / "s.zarr", results, **SMALL)
    (path / ".snakemake_timestamp").touch()  # what Snakemake's directory() outputs leave
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = zarr.open_group(path, mode="r")
        for i, r in enumerate(results):
            lo, hi = g["point_offset"][i : i + 2]
            rho = g["density"][lo:hi].reshape(g["grid_shape"][i])
            assert same_bits(rho, r.density.values)
            esp = g["esp"][lo:hi].reshape(g["grid_shape"][i])
            if r.esp is None:
                assert not g["has_esp"][i] and np.isnan(esp).all()
            else:
                assert same_bits(esp, r.esp.values)
        ds = xr.open_zarr(path)
        assert ds["density"].dims == ("point",) and ds["coords"].attrs["units"] == "bohr"
        assert ds["density"].attrs["units"] == "e/bohr^3" and ds.sizes["molecule"] == 5
        assert list(ds["ids"].values) == [r.id for r in results]
        open_store(path)


def test_esp_on_another_grid_is_refused(tmp_path):
    rng = np.random.default_rng(11)
    result = molecule(0, rng)
    result.esp.origin_bohr = result.esp.origin_bohr + 0.1
    with StoreWriter(tmp_path / "s.zarr") as writer:
        with pytest.raises(ValueError, match="density's grid"):
            writer.add(result)
        assert writer.n_molecules == 0
