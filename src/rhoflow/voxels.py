"""Voxel representation of a molecule and its density ("Beyond Atoms" style).

A fixed cubic box of edge ``edge_angstrom`` (Å) sampled at ``resolution_angstrom`` (Å) gives
``D = round(edge / resolution)`` points per axis (default 24 Å at 0.5 Å → 48). Voxel
``(i, j, k)`` is centred at ``centre + ((i, j, k) + 0.5 - D / 2) * resolution`` (Å), where
``centre`` is the centroid (unweighted mean) of the atom positions, so the box is symmetric
about the molecule. One molecule is an array ``[C, D, D, D]`` (channel, x, y, z; x slowest);
a shard is ``[N, C, D, D, D]`` float16. Channels (:data:`CHANNELS`), in order:

``H C N O F S Cl other``
    Smoothed atom occupancy, in atoms per voxel (divide by the voxel volume for atoms/Å³):
    each atom is an isotropic Gaussian of standard deviation ``sigma_angstrom`` (Å; default
    0.5), evaluated at the voxel centres as the product of three 1-D factors over the
    ``K = 2 ⌈2 σ / h⌉ + 1`` lattice points nearest the atom per axis (5: ± 2 σ by default),
    each factor normalised to sum to 1. A channel therefore sums to its atom count (to float32
    rounding) when every atom's K³ window lies in the box; windows are clipped at the faces and
    atoms more than ~1 voxel outside the box are dropped. ``other`` is every element not
    listed. :class:`AtomGridder` computes these for batches of molecules into a reused buffer.
``density``
    The electron density resampled trilinearly from the store's native grid, one of two ways
    (``density_sampling``):

    - ``deposit``: every native point's charge ``ρ·ΔV`` is shared among the 8 voxel centres
      around it with trilinear (cloud-in-cell) weights, and each voxel's charge is divided by
      its volume: the voxel holds its mean density, and ``sum × voxel volume`` equals the
      native grid's integral exactly (for the part of the grid inside the box), core cusps
      included. The right choice when the native grid is finer than the voxels (psi4's
      0.4 bohr = 0.21 Å grid, pyscf boxes).
    - ``interpolate``: trilinear interpolation (``scipy.ndimage.map_coordinates``, order 1) at
      the voxel centres; zero outside the native grid. Point samples: the integral is right
      only for densities smooth on the voxel scale (at 0.5 Å voxels a real density's cusps are
      missed: water on a 0.4-bohr grid keeps ~8.4 of its 9.3 grid electrons). The right choice
      when the native grid is coarser than the voxels.
    - ``auto`` (default): ``deposit`` when the native spacing is at most the voxel size, else
      ``interpolate``.

    Units ``density_units``: ``"e/bohr^3"`` (default, as stored) or ``"e/angstrom^3"``; the
    integral is ``sum × voxel volume`` in the matching length unit.
``density_gradient_norm``
    |∇ρ| from central differences (``numpy.gradient``; one-sided at the faces) on the NATIVE
    grid, then resampled like ``density`` (a voxel mean with ``deposit``). Units e/bohr⁴ or
    e/Å⁴ following ``density_units``.
``vdw_shape``
    Van der Waals occupancy: 1 where the voxel centre lies inside any atom's sphere of radius
    ``vdw_scale ×`` Bondi radius (A. Bondi, J. Phys. Chem. 68, 441 (1964); H 1.20 Å as Bondi;
    elements outside :data:`VDW_RADII_ANGSTROM` take RDKit's ``GetRvdw``), else 0.

Random rotation (training-time augmentation): :func:`augment` draws a uniformly random
rotation from a seed or ``numpy.random.Generator`` and calls :func:`voxelize` with it. The
atoms are rotated about the centroid and the density is resampled at the back-rotated voxel
centres (|∇ρ| is rotation-invariant, so it is resampled the same way); integrals of all
channels are preserved up to sampling error.

:func:`build_shard` turns one density shard store into one per-molecule group
(:class:`rhoflow.zarrgroup.MoleculeGroupWriter`: ``ids``, sharded arrays, ``complete``
marker) with ``voxels`` float16 ``[molecule, channel, x, y, z]`` (one molecule per inner chunk)
and attributes ``channels``, ``units``, ``edge_angstrom``, ``resolution_angstrom``,
``box_points``, ``settings`` and ``source``. No rotation is applied when building shards.
:func:`open_voxels` reads them back: ``open_voxels(path)[id]["voxels"]``.

Every function takes the completed ``voxels`` settings of ``rhoflow/schemas/config.schema.yaml``
(less ``engine``), filled and checked once where the command enters the library
(``rhoflow voxels``); nothing here checks them again.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from rhoflow.ledger import LedgerRow, each_molecule
from rhoflow.result import Grid
from rhoflow.units import ANGSTROM_PER_BOHR
from rhoflow.zarrgroup import (
    MoleculeGroup,
    MoleculeGroups,
    MoleculeGroupWriter,
    open_representation,
)

ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O", "F", "S", "Cl", "other")
"""Atom channels, in order; ``other`` collects every other element."""

ELEMENT_Z: tuple[int, ...] = (1, 6, 7, 8, 9, 16, 17)
"""Atomic numbers of the named element channels (``other`` is the last channel)."""

FORMAT = "rhoflow-voxels"

CHANNELS: tuple[str, ...] = (*ELEMENTS, "density", "density_gradient_norm", "vdw_shape")
"""All channels of :func:`voxelize`, in order."""

VDW_RADII_ANGSTROM: dict[int, float] = {
    1: 1.20, 2: 1.40, 5: 1.92, 6: 1.70, 7: 1.55, 8: 1.52, 9: 1.47, 10: 1.54, 11: 2.27,
    12: 1.73, 14: 2.10, 15: 1.80, 16: 1.80, 17: 1.75, 18: 1.88, 19: 2.75, 33: 1.85,
    34: 1.90, 35: 1.85, 36: 2.02, 53: 1.98, 54: 2.16,
}  # fmt: skip
"""Bondi (1964) van der Waals radii (Å) by atomic number (B, Si: Mantina et al. 2009)."""


def box_points(settings: Mapping[str, Any]) -> int:
    """Points per box axis, ``round(edge / resolution)``."""
    return max(1, round(float(settings["edge_angstrom"]) / float(settings["resolution_angstrom"])))


def box_offsets_angstrom(settings: Mapping[str, Any]) -> np.ndarray:
    """Voxel-centre offsets from the box centre along one axis (Å), ``[D]``."""
    d = box_points(settings)
    return (np.arange(d) + 0.5 - d / 2) * float(settings["resolution_angstrom"])


def element_channel(atomic_numbers: np.ndarray) -> np.ndarray:
    """Atom-channel index (0..7, see :data:`ELEMENTS`) of each atomic number."""
    z = np.asarray(atomic_numbers, dtype=np.int64)
    lookup = np.full(max(int(z.max(initial=0)) + 1, 18), len(ELEMENT_Z), dtype=np.int64)
    lookup[list(ELEMENT_Z)] = np.arange(len(ELEMENT_Z))
    return lookup[z]


def random_rotation(rng: np.random.Generator | int | None) -> np.ndarray:
    """A uniformly random 3×3 rotation matrix from a seed or Generator."""
    return Rotation.random(random_state=np.random.default_rng(rng)).as_matrix()


def window_points(settings: Mapping[str, Any]) -> int:
    """Lattice points per axis of each atom's Gaussian window, ``2 ⌈2 σ / h⌉ + 1`` (5 by
    default: the nearest point ± 2, i.e. ± 2 σ at σ = h = 0.5 Å)."""
    sigma, h = float(settings["sigma_angstrom"]), float(settings["resolution_angstrom"])
    return 2 * math.ceil(2 * sigma / h) + 1


class AtomGridder:
    """Element channels of batches of molecules, written into one reused buffer.

    The buffer is ``[batch_size, 8, D + 2 h, D + 2 h, D + 2 h]`` float32 with a halo of
    ``h = K // 2`` points per face (K = :func:`window_points`); :meth:`__call__` returns the
    interior view ``[B, 8, D, D, D]``, valid until the next call (copy it to keep it; do not
    write to it: only the elements written by the gridder are reset). Each
    atom adds its separable K×K×K Gaussian block (1-D factors normalised to sum to 1 over the
    window, so an atom whose window lies in the box integrates to exactly 1; blocks in the
    halo are discarded, atoms whose window leaves the halo are dropped) by fancy indexing,
    in rounds so that no two atoms of one round write the same element (round r holds the
    r-th atom of every (molecule, element) group). A call zeroes only the elements the
    previous call wrote, never the whole buffer: the cost scales with the number of atoms.
    """

    def __init__(self, settings: Mapping[str, Any], batch_size: int = 1) -> None:
        self.settings = dict(settings)
        self.d = box_points(self.settings)
        self.k = window_points(self.settings)
        self.halo = self.k // 2
        self.p = self.d + 2 * self.halo
        self.batch_size = int(batch_size)
        self.buffer = np.empty(
            (self.batch_size, len(ELEMENTS), self.p, self.p, self.p), dtype=np.float32
        )
        self.buffer.fill(0.0)  # touch every page now, not on the first scattered writes
        self._flat = self.buffer.reshape(-1)
        steps = np.arange(self.k)
        self._offsets = (
            steps[:, None, None] * self.p**2 + steps[None, :, None] * self.p + steps[None, None, :]
        ).reshape(-1)
        self._written: np.ndarray | None = None

    def __call__(
        self,
        molecules: Sequence[tuple[np.ndarray, np.ndarray]],
        centres_angstrom: np.ndarray | None = None,
    ) -> np.ndarray:
        """Element channels ``[B, 8, D, D, D]`` (atoms per voxel) of ``molecules``, a sequence
        of ``(atomic_numbers [n], coords_angstrom [n, 3])`` (Å), each in a box centred on its
        row of ``centres_angstrom`` [B, 3] (Å; default each molecule's centroid)."""
        b = len(molecules)
        if b > self.batch_size:
            raise ValueError(f"{b} molecules for a gridder of batch size {self.batch_size}")
        if self._written is not None:
            self._flat[self._written] = 0.0
            self._written = None
        h, d, p, k = self.halo, self.d, self.p, self.k
        view = self.buffer[:b, :, h : h + d, h : h + d, h : h + d]
        counts = np.array([len(z) for z, _ in molecules], dtype=np.int64)
        if counts.sum() == 0:
            return view
        numbers = np.concatenate([np.asarray(z).reshape(-1) for z, _ in molecules])
        coords = np.concatenate(
            [np.asarray(x, dtype=np.float64).reshape(-1, 3) for _, x in molecules]
        )
        mol = np.repeat(np.arange(b), counts)
        if centres_angstrom is None:
            starts = np.cumsum(counts) - counts
            sums = np.add.reduceat(coords, np.minimum(starts, len(coords) - 1), axis=0)
            centres = sums / np.maximum(counts, 1)[:, None]
        else:
            centres = np.asarray(centres_angstrom, dtype=np.float64).reshape(b, 3)
        res = float(self.settings["resolution_angstrom"])
        sigma = float(self.settings["sigma_angstrom"])
        # rank of each atom within its (molecule, element) group -> collision-free rounds
        group = mol * len(ELEMENTS) + element_channel(numbers)
        order = np.lexsort((np.arange(len(group)), group))
        sorted_group = group[order]
        first = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1]
        rank_sorted = np.arange(len(group)) - np.repeat(first, np.diff(np.r_[first, len(group)]))
        by_round = order[np.argsort(rank_sorted, kind="stable")]
        rounds = np.searchsorted(np.sort(rank_sorted), np.arange(rank_sorted.max() + 2))
        group, idx = group[by_round], (coords - centres[mol])[by_round] / res + d / 2 - 0.5
        start = np.rint(idx).astype(np.int64) - h  # [A, 3] first window point (box index)
        keep = np.all((start >= -h) & (start + k <= d + h), axis=1)
        g = np.exp(
            -0.5 * ((start[:, :, None] + np.arange(k) - idx[:, :, None]) * (res / sigma)) ** 2
        )
        g /= g.sum(axis=2, keepdims=True)  # [A, 3, K]
        g[~keep] = 0.0  # dropped atoms add zeros at the corner of their own slab
        g = g.astype(np.float32)
        values = (
            (g[:, 0, :, None] * g[:, 1, None, :])[:, :, :, None] * g[:, 2, None, None, :]
        ).reshape(len(group), -1)
        corner = np.where(keep[:, None], start + h, 0) @ np.array([p * p, p, 1])
        flat = (group * p**3 + corner)[:, None] + self._offsets  # [A, K³]
        target = self._flat
        for r0, r1 in zip(rounds[:-1], rounds[1:], strict=True):
            if r1 > r0:
                target[flat[r0:r1]] += values[r0:r1]
        self._written = flat.reshape(-1)
        return view


def atom_channels(
    atomic_numbers: np.ndarray,
    coords_bohr: np.ndarray,
    settings: Mapping[str, Any],
    centre_bohr: np.ndarray | None = None,
) -> np.ndarray:
    """The 8 element channels ``[8, D, D, D]`` float32 (atoms per voxel) of one molecule, a
    new array. ``coords_bohr`` [n, 3] in bohr; the box is centred on ``centre_bohr`` (bohr;
    default the centroid). Each channel sums to its atom count for atoms whose Gaussian window
    lies in the box. For many molecules use :class:`AtomGridder` (batches, reused buffer)."""
    coords = np.asarray(coords_bohr, dtype=np.float64).reshape(-1, 3) * ANGSTROM_PER_BOHR
    centre = None if centre_bohr is None else np.asarray(centre_bohr) * ANGSTROM_PER_BOHR
    gridder = _cached_gridder(settings)
    out = gridder([(np.asarray(atomic_numbers), coords)], None if centre is None else centre[None])
    return np.array(out[0])  # a contiguous copy


_LOCAL = threading.local()


def _cached_gridder(settings: Mapping[str, Any]) -> AtomGridder:
    """One batch-size-1 :class:`AtomGridder` per settings and thread, reused across calls."""
    cache: dict[tuple, AtomGridder] = _LOCAL.__dict__.setdefault("gridders", {})
    key = tuple(sorted(settings.items()))
    if key not in cache:
        cache[key] = AtomGridder(settings, batch_size=1)
    return cache[key]


def vdw_radius_angstrom(z: int) -> float:
    """Bondi van der Waals radius (Å) of element ``z``; RDKit's ``GetRvdw`` for the rest."""
    if z in VDW_RADII_ANGSTROM:
        return VDW_RADII_ANGSTROM[z]
    from rdkit import Chem

    return float(Chem.GetPeriodicTable().GetRvdw(int(z)))


def vdw_shape(
    atomic_numbers: np.ndarray,
    coords_angstrom_rel: np.ndarray,
    settings: Mapping[str, Any],
) -> np.ndarray:
    """Van der Waals occupancy ``[D, D, D]`` float32 (1 inside any sphere, else 0); atom
    positions relative to the box centre in Å. Each atom touches only its own sub-box."""
    res = float(settings["resolution_angstrom"])
    d = box_points(settings)
    axis = box_offsets_angstrom(settings)
    inside = np.zeros((d, d, d), dtype=bool)
    for z, pos in zip(np.asarray(atomic_numbers).tolist(), coords_angstrom_rel, strict=True):
        r = vdw_radius_angstrom(int(z)) * float(settings["vdw_scale"])
        lo = np.clip(np.floor((pos - r) / res + d / 2 - 0.5).astype(int), 0, d)
        hi = np.clip(np.ceil((pos + r) / res + d / 2 - 0.5).astype(int) + 1, 0, d)
        if np.any(hi <= lo):
            continue
        dx, dy, dz = ((axis[lo[a] : hi[a]] - pos[a]) ** 2 for a in range(3))
        inside[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] |= (
            dx[:, None, None] + dy[None, :, None] + dz[None, None, :] <= r * r
        )
    return inside.astype(np.float32)


def _resample(values: np.ndarray, frac: np.ndarray, d: int) -> np.ndarray:
    """Trilinear samples of ``values`` at fractional indices ``frac`` [3, D³]; 0 outside."""
    out = map_coordinates(values, frac, order=1, mode="constant", cval=0.0, prefilter=False)
    return out.reshape(d, d, d).astype(np.float32)


def _separable_deposit(values: np.ndarray, mats: Sequence[np.ndarray], weight: float) -> np.ndarray:
    """Cloud-in-cell deposit without rotation: ``weight · Wx ⊗ Wy ⊗ Wz`` applied to the native
    grid, with ``W[i, a]`` the 1-D tent weight of native point ``a`` on voxel ``i``."""
    out = np.asarray(values, dtype=np.float64)
    for m in mats:  # contract the leading native axis; the voxel axis goes last
        out = np.tensordot(out, m, axes=([0], [1]))
    return (out * weight).astype(np.float32)


def _deposit(
    fields: Sequence[np.ndarray], frac: np.ndarray, d: int, weight: float
) -> list[np.ndarray]:
    """Cloud-in-cell deposit: each native point's value × ``weight`` shared among the 8 voxels
    around its fractional voxel index ``frac`` [P, 3] with trilinear weights; ``[D, D, D]``
    float32 per field (points beyond the outer voxel centres keep only their inner share)."""
    base = np.floor(frac).astype(np.int64)
    f = frac - base
    totals = [np.zeros(d**3, dtype=np.float64) for _ in fields]
    flat = [np.asarray(v, dtype=np.float64).reshape(-1) * weight for v in fields]
    for corner in range(8):
        offset = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        idx = base + offset
        w = np.prod(np.where(offset == 1, f, 1.0 - f), axis=1)
        ok = np.all((idx >= 0) & (idx < d), axis=1) & (w > 0)
        linear = (idx[ok, 0] * d + idx[ok, 1]) * d + idx[ok, 2]
        for total, values in zip(totals, flat, strict=True):
            total += np.bincount(linear, weights=values[ok] * w[ok], minlength=d**3)
    return [t.reshape(d, d, d).astype(np.float32) for t in totals]


def voxelize(
    atomic_numbers: np.ndarray,
    coords_bohr: np.ndarray,
    density: Grid | None,
    settings: Mapping[str, Any],
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    """All :data:`CHANNELS` of one molecule, ``[C, D, D, D]`` float32 (see module docstring).

    ``coords_bohr`` [n, 3] in bohr; ``density`` the native density grid (e/bohr³, bohr
    geometry), or None for zero density channels. ``rotation`` (3×3) rotates the molecule and
    its density about the centroid before voxelisation (see :func:`augment`).
    """
    d = box_points(settings)
    numbers = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
    coords = np.asarray(coords_bohr, dtype=np.float64).reshape(-1, 3)
    centre = coords.mean(axis=0) if len(coords) else np.zeros(3)
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6):
        raise ValueError("rotation must be a 3×3 orthogonal matrix")
    rotated = (coords - centre) @ rot.T + centre  # x' = c + R (x - c), bohr
    out = np.zeros((len(CHANNELS), d, d, d), dtype=np.float32)
    out[: len(ELEMENTS)] = atom_channels(numbers, rotated, settings, centre)
    rel_angstrom = (rotated - centre) * ANGSTROM_PER_BOHR
    out[len(ELEMENTS) + 2] = vdw_shape(numbers, rel_angstrom, settings)
    if density is not None:
        spacing = np.asarray(density.spacing_bohr, dtype=np.float64)
        values = np.asarray(density.values, dtype=np.float32)
        gradient = np.gradient(values, *spacing)
        grad_norm = np.sqrt(sum(g.astype(np.float32) ** 2 for g in gradient))
        h_bohr = float(settings["resolution_angstrom"]) / ANGSTROM_PER_BOHR
        mode = settings["density_sampling"]
        if mode == "auto":
            mode = "deposit" if float(spacing.max()) <= h_bohr else "interpolate"
        if mode == "deposit" and rotation is None:
            # separable: the 8-corner weights are products of 1-D tent weights per axis
            mats = []
            for axis, c in zip(density.axes_bohr(), centre, strict=True):
                u = (axis - c) / h_bohr + (d / 2 - 0.5)
                mats.append(np.maximum(0.0, 1.0 - np.abs(u[None, :] - np.arange(d)[:, None])))
            weight = float(np.prod(spacing)) / h_bohr**3  # native cell / voxel volume
            rho, grad = (_separable_deposit(v, mats, weight) for v in (values, grad_norm))
        elif mode == "deposit":
            # native point x sits at c + R (x - c) in the box frame; voxel i's centre is at
            # c + (i + 0.5 - D/2) h, so its fractional voxel index is R (x - c) / h + D/2 - 0.5
            axes = density.axes_bohr()
            native = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
            frac = (native - centre) @ rot.T / h_bohr + (d / 2 - 0.5)
            weight = float(np.prod(spacing)) / h_bohr**3  # native cell / voxel volume
            rho, grad = _deposit([values, grad_norm], frac, d, weight)
        else:
            axis_bohr = box_offsets_angstrom(settings) / ANGSTROM_PER_BOHR
            mesh = np.stack(np.meshgrid(axis_bohr, axis_bohr, axis_bohr, indexing="ij"), axis=-1)
            # box point p' (rotated frame) samples the native grid at c + Rᵀ (p' - c)
            native = mesh.reshape(-1, 3) @ rot + centre  # [D³, 3] bohr
            frac = ((native - np.asarray(density.origin_bohr)) / spacing).T
            rho = _resample(values, frac, d)
            grad = _resample(grad_norm, frac, d)
        if settings["density_units"] == "e/angstrom^3":
            rho /= ANGSTROM_PER_BOHR**3
            grad /= ANGSTROM_PER_BOHR**4
        out[len(ELEMENTS)] = rho
        out[len(ELEMENTS) + 1] = grad
    return out


def augment(
    atomic_numbers: np.ndarray,
    coords_bohr: np.ndarray,
    density: Grid | None,
    rng: np.random.Generator | int | None,
    settings: Mapping[str, Any],
) -> np.ndarray:
    """:func:`voxelize` after a uniformly random rotation about the centroid drawn from ``rng``
    (seed or Generator; the same seed gives the same rotation). For training-time use."""
    return voxelize(atomic_numbers, coords_bohr, density, settings, random_rotation(rng))


def units(settings: Mapping[str, Any]) -> dict[str, str]:
    """Units of each channel under ``settings``."""
    length = "bohr" if settings["density_units"] == "e/bohr^3" else "angstrom"
    return {
        **{name: "atoms per voxel" for name in ELEMENTS},
        "density": f"e/{length}^3",
        "density_gradient_norm": f"e/{length}^4",
        "vdw_shape": "1",
    }


def build_shard(
    store_path: str | Path, out_path: str | Path, settings: Mapping[str, Any]
) -> list[LedgerRow]:
    """Voxelise every molecule of the density shard store ``store_path`` into one Zarr v3 group
    at ``out_path`` (written atomically): ``voxels`` float16 [N, C, D, D, D], ``ids`` [N].

    A molecule that cannot be voxelised is left out and returned as a ledger row."""
    from rhoflow.store.reader import open_store

    store = open_store(store_path)
    d = box_points(settings)
    f16_max = float(np.finfo(np.float16).max)
    failures: list[LedgerRow] = []

    def compute(pos: int) -> np.ndarray:
        numbers, coords = store.atoms(pos)
        cube = voxelize(numbers, coords, store.grid(pos, "density"), settings)
        if not np.all(np.isfinite(cube)):
            raise ValueError("voxel grid has non-finite values")
        return np.clip(cube, -f16_max, f16_max).astype(np.float16)

    attributes = {
        "channels": list(CHANNELS),
        "units": units(settings),
        "edge_angstrom": float(settings["edge_angstrom"]),
        "resolution_angstrom": float(settings["resolution_angstrom"]),
        "box_points": d,
        "box_centre": "centroid of the atom positions",
        "settings": dict(settings),
        "source": str(store_path),
    }
    with MoleculeGroupWriter(out_path, FORMAT, attributes) as out:
        out.array(
            "voxels",
            (len(CHANNELS), d, d, d),
            "float16",
            ("molecule", "channel", "x", "y", "z"),
            "per channel, see channel_units",
            channels=list(CHANNELS),
            channel_units=[units(settings)[c] for c in CHANNELS],
        )
        for _, mol_id, cube in each_molecule(store.ids, "voxels", compute, failures):
            out.add(mol_id, voxels=cube)
    return failures


def open_voxels(path: str | Path | list[str | Path]) -> MoleculeGroup | MoleculeGroups:
    """Voxel groups written by :func:`build_shard` (one path or a list of shards):
    ``open_voxels(path)[id]["voxels"]`` is the float16 ``[C, D, D, D]`` grid of one molecule."""
    return open_representation(path, FORMAT)
