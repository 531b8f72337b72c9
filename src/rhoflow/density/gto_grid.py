"""Gaussian basis functions and densities on regular grids, evaluated separably.

On an axis-aligned grid every cartesian Gaussian basis function factorises per axis: with
``d = r − R`` (bohr) from its centre ``R``,

    φ(x, y, z) = f_l · dx^a dy^b dz^c · Σ_p c_p exp(−α_p dx²) exp(−α_p dy²) exp(−α_p dz²)

(``f_l`` libcint's common factor of s and p functions, ``c_p`` the contraction coefficients with
the primitive normalisation, PySCF's convention). Its values on a block of ``nx × ny × nz``
points are therefore one matrix product ``[(nx·ny) × P] @ [P × nz]`` of one-dimensional factors
(``P`` primitives): no exponential per point and no per-point screening. The density
ρ(r) = Σ_k n_k ψ_k(r)² (e/bohr³) then needs the orbitals ψ = φ C of the occupied orbitals
only: cost ∝ points × nao × n_occ instead of points × nao² for Σ_ij D_ij φ_i φ_j.

Spherical bases are evaluated through their cartesian functions: ``φ_sph = φ_cart · T`` with
PySCF's ``cart2sph_coeff`` ``T``, applied to the orbital coefficients (``C_cart = T C``).
Values agree with ``pyscf.dft.numint.eval_ao`` / ``eval_rho`` to round-off (tested).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rhoflow.density.grid import GridSpec

BLOCK_BYTES = 64 * 1024**2
"""Memory budget of one block of basis-function values (bytes)."""

COMMON_FACTOR = {0: 1.0 / (2.0 * math.sqrt(math.pi)), 1: math.sqrt(3.0 / (4.0 * math.pi))}
"""libcint's angular prefactor of s and p functions (d and higher: 1)."""


@dataclass(frozen=True)
class Shell:
    """One shell of a PySCF basis: centre (bohr), angular momentum, exponents (bohr⁻²) and
    contraction coefficients ``[P, n_contractions]`` including the primitive normalisation."""

    centre: np.ndarray
    angular: int
    exponents: np.ndarray
    coefficients: np.ndarray


def cartesian_powers(angular: int) -> list[tuple[int, int, int]]:
    """Cartesian components ``(a, b, c)`` of angular momentum ``angular`` in PySCF's order
    (xx, xy, xz, yy, yz, zz for d)."""
    return [
        (a, b, angular - a - b) for a in range(angular, -1, -1) for b in range(angular - a, -1, -1)
    ]


def shells(mol) -> list[Shell]:  # mol: pyscf.gto.Mole
    """The shells of ``mol`` in its basis-function order."""
    from pyscf import gto

    out = []
    for ib in range(mol.nbas):
        angular, exponents = mol.bas_angular(ib), mol.bas_exp(ib)
        coefficients = mol.bas_ctr_coeff(ib) * gto.gto_norm(angular, exponents)[:, None]
        out.append(Shell(mol.bas_coord(ib), angular, exponents, coefficients))
    return out


def cartesian_orbitals(mol, orbitals: np.ndarray) -> np.ndarray:
    """Orbital coefficients ``[nao, k]`` of ``mol`` on its cartesian functions."""
    return orbitals if mol.cart else mol.cart2sph_coeff() @ orbitals


def blocks(spec: GridSpec, floats_per_point: int) -> Iterator[tuple[int, int, int, int]]:
    """``(x0, x1, y0, y1)``: index ranges of blocks of whole z-lines (cube order) that cover the
    grid, each within :data:`BLOCK_BYTES` for ``floats_per_point`` float64 per point."""
    nx, ny, nz = spec.shape
    lines = max(1, BLOCK_BYTES // (8 * max(1, floats_per_point) * nz))
    if lines >= ny:
        step = max(1, lines // ny)
        for x0 in range(0, nx, step):
            yield x0, min(nx, x0 + step), 0, ny
    else:
        for x0 in range(nx):
            for y0 in range(0, ny, lines):
                yield x0, x0 + 1, y0, min(ny, y0 + lines)


def cartesian_values(basis: list[Shell], axes_bohr: list[np.ndarray], nao_cart: int) -> np.ndarray:
    """Values ``[nao_cart, nx, ny, nz]`` of all cartesian functions on the grid spanned by
    ``axes_bohr`` (the x, y and z coordinates of a block, bohr)."""
    x, y, z = axes_bohr
    out = np.empty((nao_cart, len(x), len(y), len(z)))
    flat = out.reshape(nao_cart, len(x) * len(y), len(z))
    mu = 0
    for shell in basis:
        dx, dy, dz = x - shell.centre[0], y - shell.centre[1], z - shell.centre[2]
        alpha = shell.exponents[:, None]
        gx, gy, gz = np.exp(-alpha * dx**2), np.exp(-alpha * dy**2), np.exp(-alpha * dz**2)
        factor = COMMON_FACTOR.get(shell.angular, 1.0)
        powers = cartesian_powers(shell.angular)
        for coefficients in shell.coefficients.T:  # one contraction: all its components
            weight = factor * coefficients[:, None]
            for lx, ly, lz in powers:
                left = np.einsum("pi,pj->pij", weight * gx * dx**lx, gy * dy**ly)
                np.matmul(left.reshape(len(alpha), -1).T, gz * dz**lz, out=flat[mu])
                mu += 1
    return out


def density_on_grid(
    mol, orbitals: np.ndarray, occupations: np.ndarray, spec: GridSpec
) -> np.ndarray:
    """ρ(r) = Σ_k n_k ψ_k(r)² (e/bohr³) at every point of ``spec``, flat in cube order.

    ``orbitals`` ``[nao, k]`` are coefficients on ``mol``'s basis functions (spherical or
    cartesian, as ``mol``), ``occupations`` ``[k]`` their occupation numbers (both spin channels
    side by side for open shells), so that D = C diag(n) Cᵀ is the total density matrix.
    """
    keep = np.asarray(occupations) != 0
    coefficients = cartesian_orbitals(mol, np.asarray(orbitals)[:, keep])  # [nao_cart, k]
    occupied = np.asarray(occupations, dtype=np.float64)[keep]
    basis = shells(mol)
    nao_cart = sum(len(cartesian_powers(s.angular)) * s.coefficients.shape[1] for s in basis)
    axes = spec.axes_bohr()
    out = np.empty(spec.shape)
    for x0, x1, y0, y1 in blocks(spec, nao_cart + len(occupied)):
        values = cartesian_values(basis, [axes[0][x0:x1], axes[1][y0:y1], axes[2]], nao_cart)
        psi = coefficients.T @ values.reshape(nao_cart, -1)  # [k, points]
        psi *= psi
        out[x0:x1, y0:y1, :] = (occupied @ psi).reshape(x1 - x0, y1 - y0, -1)
    return out.reshape(-1)
