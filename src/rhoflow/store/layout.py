"""On-disk layout of one density-store shard (a Zarr v3 group, ``<shard>.zarr``).

One job writes one shard, streaming molecules in, and renames it into place only when it is
complete (:class:`rhoflow.store.writer.StoreWriter`). ``n`` is the number of molecules, ``A``
the total number of atoms, ``P_f`` the total number of grid points of field ``f``; molecule
``i`` is the ``i``-th molecule written (its *position*).

Root group attributes
    ``format: "rhoflow-density-store"``, ``format_version: 1``, ``n_molecules``, ``n_atoms``,
    ``fields: ["density", "esp"]`` (the order of the field axis below), ``units`` (a copy of
    the units of every array), ``encodings`` (code → name, see :mod:`rhoflow.store.codec`),
    ``created`` (UTC, ISO 8601), ``rhoflow_version`` and, written last, ``complete: true``.
    Readers refuse a group without ``complete: true``.

Per-molecule arrays (one chunk each; numbers Blosc/zstd, strings vlen-utf8 + zstd; every
numeric array has a ``units`` attribute, "1" for dimensionless ones)
    ``ids``            string  [n]        molecule ids, unique within the shard
    ``meta``           string  [n]        JSON object per molecule:
                                          ``{"provenance": {...}, "labels": {...},
                                          "checks": {...}}`` exactly as the engine gave them
                                          (provenance: engine, version, method, basis,
                                          functional definition, grid, SCF convergence,
                                          iterations, wall time, host; labels: energies in
                                          Hartree, keys carry their units)
    ``atom_offset``    int64   [n + 1]    molecule ``i`` owns atom rows
                                          ``atom_offset[i]:atom_offset[i + 1]``
    ``atomic_numbers`` uint8   [A]        nuclear charges
    ``coords``         float64 [A, 3]     nuclear positions, bohr
    ``grid_shape``     int32   [n, 2, 3]  points per axis (x, y, z) of field 0 = density and
                                          1 = esp; ``(0, 0, 0)`` when the molecule has no ESP
    ``grid_origin``    float64 [n, 2, 3]  position of point (0, 0, 0), bohr (NaN when absent)
    ``grid_spacing``   float64 [n, 2, 3]  step along x, y, z, bohr (NaN when absent)
    ``encoding``       uint8   [n, 2]     value encoding code per molecule and field
    ``word_offset``    int64   [n + 1, 2] molecule ``i``'s words of field ``f`` are
                                          ``word_offset[i, f]:word_offset[i + 1, f]``

Value arrays (sharded)
    ``density``        uint32  [P_density]  encoded electron density, decodes to float32 e/bohr^3
    ``esp``            uint32  [P_esp]      encoded electrostatic potential, float32 hartree/e

    Molecules are concatenated in position order; molecule ``i``'s words of field ``f`` are
    ``[word_offset[i, f], word_offset[i + 1, f])`` (one word per grid point, except for the
    decimal split encodings, which add sign and digit words).
    Within a molecule the words follow the grid's C order (x slowest, z fastest, as in cube
    files). ``rhoflow.store.codec.decode(words, encoding[i, f], grid_shape[i, f])`` gives the
    exact float32 grid the engine produced. The arrays use the Zarr v3 sharding codec: inner
    chunks of ``chunk_values`` words (default 2**16 = 256 KiB) compressed with Blosc(zstd
    level 5, byte shuffle), packed into shard files of ``shard_values`` words (default
    2**26 = 256 MiB before compression); reading one molecule touches only the inner chunks it
    overlaps, located through the shard file's index.

Files
    A store holds 23 files (root + 12 arrays' ``zarr.json`` + 10 single-chunk tables) plus, per
    field, ``ceil(P_f / shard_values)`` shard files. 1,000 PCQM4Mv2 molecules on the psi4
    0.4 bohr / 4 bohr-overage grid (~155 k points each) give 23 + 3 + 3 = 29 files; 1,000
    128**3 box grids give 23 + 32 + 32 = 87 at the default, 39 with ``shard_values=2**28``
    (the writer then buffers 1 GiB per field).

Beside the store, the density rule writes the stage ledger ``<shard>.ledger.tsv`` (see
:mod:`rhoflow.ledger`) listing the molecules that could not be computed.
"""

from __future__ import annotations

from pathlib import Path

from zarr.codecs import BloscCodec

FORMAT = "rhoflow-density-store"
FORMAT_VERSION = 2

FIELDS: tuple[str, ...] = ("density", "esp")
"""Value fields, in the order of the field axis of ``grid_*`` and ``encoding``."""

UNITS: dict[str, str] = {
    "density": "e/bohr^3",
    "esp": "hartree/e",
    "coords": "bohr",
    "grid_origin": "bohr",
    "grid_spacing": "bohr",
    "grid_shape": "1",
    "atomic_numbers": "1",
    "atom_offset": "1",
    "encoding": "1",
    "word_offset": "1",
}
"""``units`` attribute of every numeric array ("1": dimensionless counts, indices, codes)."""

LONG_NAMES: dict[str, str] = {
    "density": "electron density",
    "esp": "electrostatic potential",
}

CHUNK_VALUES = 1 << 16
"""Words per inner (compression) chunk of the value arrays: 256 KiB of uint32."""

SHARD_VALUES = 1 << 26
"""Words per shard file of the value arrays: 256 MiB before compression. The writer buffers
up to one shard per field in memory."""

BLOSC_CNAME = "zstd"
BLOSC_CLEVEL = 5


def compressor(clevel: int = BLOSC_CLEVEL) -> BloscCodec:
    """The lossless codec of every array: Blosc(zstd, byte shuffle)."""
    return BloscCodec(cname=BLOSC_CNAME, clevel=clevel, shuffle="shuffle")


def ledger_path(store: str | Path) -> Path:
    """The ledger the density rule writes beside a shard store: ``x.zarr`` → ``x.ledger.tsv``."""
    p = Path(store)
    stem = p.name[: -len(".zarr")] if p.name.endswith(".zarr") else p.name
    return p.with_name(f"{stem}.ledger.tsv")
