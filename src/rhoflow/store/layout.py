"""On-disk layout of one density-store shard (a Zarr v3 group, ``<shard>.zarr``).

Plain float32 values with a codec of the Zarr v3 specification (Blosc zstd, byte shuffle), so
``zarr``, ``xarray`` and other Zarr v3 implementations read them without rhoflow::

    g = zarr.open_group("results/density/psi4/demo-00000.zarr", mode="r")
    lo, hi = g["point_offset"][i : i + 2]                        # molecule i's values
    rho = g["density"][lo:hi].reshape(g["grid_shape"][i])       # float32 e/bohr^3, [nx, ny, nz]

``xarray.open_zarr(path)`` opens every shard (each array has ``dimension_names``; the metadata
is consolidated). One job writes one shard, streaming molecules in, and renames it into place
only when complete (:class:`rhoflow.store.writer.StoreWriter`). ``n`` molecules, ``A`` atoms
and ``P`` grid points in all; molecule ``i`` is the ``i``-th written (its *position*).

Root group attributes
    ``format: "rhoflow-density-store"``, ``format_version: 3``, ``n_molecules``, ``n_atoms``,
    ``n_points``, ``units`` (a copy of every array's units), ``created`` (UTC, ISO 8601),
    ``rhoflow_version`` and, written last, ``complete: true`` (readers refuse a group without it).

Arrays (``name  dtype  [dimension_names]  units``)
    ``ids``            str      [molecule]         molecule ids, unique within the shard
    ``meta``           str      [molecule]         JSON per molecule: ``{"provenance", "labels",
                                                   "checks"}`` as the engine gave them
                                                   (provenance: engine, version, method, basis,
                                                   functional definition, grid, SCF convergence,
                                                   iterations, wall time, host; labels in
                                                   Hartree, keys carry units). Typed labels for
                                                   training: :mod:`rhoflow.labels`.
    ``atom_offset``    int64    [molecule_bound]   ``n + 1`` bounds: molecule ``i`` owns atoms
                                                   ``atom_offset[i]:atom_offset[i + 1]``
    ``atomic_numbers`` uint8    [atom]             nuclear charges
    ``coords``         float64  [atom, xyz]        nuclear positions, bohr
    ``grid_shape``     int32    [molecule, xyz]    points per axis (x slowest, z fastest)
    ``grid_origin``    float64  [molecule, xyz]    position of point (0, 0, 0), bohr
    ``grid_spacing``   float64  [molecule, xyz]    step along x, y, z, bohr
    ``point_offset``   int64    [molecule_bound]   molecule ``i``'s values are
                                                   ``[point_offset[i], point_offset[i + 1])``
    ``has_esp``        bool     [molecule]         whether the molecule has an ESP
    ``density``        float32  [point]            electron density, e/bohr^3
    ``esp``            float32  [point]            electrostatic potential, hartree/e, on the
                                                   density's grid; NaN where ``has_esp`` is false

Within a molecule the values follow the grid's C order (x slowest, z fastest, as in cube
files), exactly the float32 values the engine produced (psi4 and xtb: the float32 images of
their cube text). ``density`` and ``esp`` use the sharding codec: inner chunks of
:data:`CHUNK_POINTS` values (256 KiB) packed into shard files of :data:`SHARD_POINTS` values
(256 MiB before compression); reading one molecule touches only the inner chunks it overlaps.
A shard whose molecules have no ESP (xtb) writes no ESP chunks at all (they equal the fill
value, NaN).

Files: a store holds 23 metadata/table files plus, per field, ``ceil(P / SHARD_POINTS)`` shard
files: 1,000 PCQM4Mv2 molecules on the psi4 grid (~160 k points each) give 23 + 3 + 3 = 29.

Beside the store, the density rule writes the stage ledger ``<shard>.ledger.tsv`` (see
:mod:`rhoflow.ledger`) listing the molecules that could not be computed.
"""

from __future__ import annotations

from pathlib import Path

FORMAT = "rhoflow-density-store"
FORMAT_VERSION = 3

FIELDS: tuple[str, ...] = ("density", "esp")
"""Value fields (arrays of the same length, on the same grid)."""

UNITS: dict[str, str] = {
    "density": "e/bohr^3",
    "esp": "hartree/e",
    "coords": "bohr",
    "grid_origin": "bohr",
    "grid_spacing": "bohr",
    "grid_shape": "1",
    "atomic_numbers": "1",
    "atom_offset": "1",
    "point_offset": "1",
    "has_esp": "1",
}
"""``units`` attribute of every numeric array ("1": counts, indices, flags)."""

LONG_NAMES: dict[str, str] = {
    "density": "electron density",
    "esp": "electrostatic potential",
}

CHUNK_POINTS = 1 << 16
"""Values per inner (compression) chunk of ``density`` and ``esp``: 256 KiB of float32."""

SHARD_POINTS = 1 << 26
"""Values per shard file of ``density`` and ``esp``: 256 MiB before compression. The writer
buffers one shard per field."""


def ledger_path(store: str | Path) -> Path:
    """The ledger the density rule writes beside a shard store: ``x.zarr`` → ``x.ledger.tsv``."""
    p = Path(store)
    stem = p.name[: -len(".zarr")] if p.name.endswith(".zarr") else p.name
    return p.with_name(f"{stem}.ledger.tsv")
