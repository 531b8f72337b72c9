"""MINDO/3 (pyscf-semiempirical 0.1.1) on PySCF 2.x: energies, gradients, optimisation.

pyscf-semiempirical 0.1.1 predates PySCF 2.x, whose SCF kernel calls
``mf.get_init_guess(mol, key, s1e=...)``; the package's ``get_init_guess(mol, key)`` rejects the
keyword. :class:`RMINDO3` / :class:`UMINDO3` here subclass the package's classes with a
signature-compatible ``get_init_guess`` (same guess: MINDO/3 core charges spread evenly over
each atom's valence AOs). They also skip PySCF's per-SCF checkpoint file in the temporary
directory (a child killed on timeout would leave it behind) and a ``_finalize`` probe that made
every new process import all of PySCF, and build J/K (SCF and gradient) without the package's
Python loop over atom pairs (same numbers, ~10x faster for 20 atoms). The package's analytic
gradients are otherwise unchanged (they agree with central finite differences to ~1e-7
Hartree/bohr).

Closed shells use RHF-MINDO/3, multiplicity > 1 UHF-MINDO/3. Energies are MINDO/3 total energies
(valence electronic + core repulsion) in Hartree; coordinates in bohr inside, Å at the interface.
MINDO/3 has parameters for H, B, C, N, O, F, Si, P, S and Cl only.
"""

from __future__ import annotations

import numpy as np
from pyscf import gto, lib
from pyscf.data.elements import ELEMENTS
from pyscf.scf import hf as _hf
from pyscf.semiempirical import mindo3 as _mindo3
from pyscf.semiempirical import rmindo3_grad, umindo3_grad

from rhoflow.conformers.optimize import (
    OptimizationResult,
    geometric_version,
    optimize_geometry,
)
from rhoflow.parallel import StageFailure
from rhoflow.units import ANGSTROM_PER_BOHR

SUPPORTED_ELEMENTS: frozenset[int] = frozenset({1, 5, 6, 7, 8, 9, 14, 15, 16, 17})
"""Atomic numbers MINDO/3 has parameters for."""

CONV_TOL_HARTREE = 1e-9
"""SCF energy convergence; tight enough for gradients accurate to ~1e-6 Hartree/bohr."""


def get_jk(mol: gto.Mole, dm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MINDO/3 J and K matrices; the package's ``mindo3.get_jk`` with its atom-pair loop vectorised.

    ``mol`` is the MINDO/3 molecule (``mf._mindo_mol``); ``dm`` is [nao, nao] or [n, nao, nao].
    """
    dm = np.asarray(dm)
    shape = dm.shape
    dm = dm.reshape(-1, shape[-1], shape[-1])
    vj, vk = _one_centre_jk(mol, dm)
    ao_atom = _ao_atom(mol)
    gamma = _mindo3._get_gamma(mol)
    diag = np.arange(len(ao_atom))
    vj[:, diag, diag] += (_atom_populations(dm, ao_atom, mol.natm) @ gamma.T)[:, ao_atom]
    vk += gamma[np.ix_(ao_atom, ao_atom)] * dm
    return vj.reshape(shape), vk.reshape(shape)


def get_jk_grad(mol: gto.Mole, dm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Derivative J/K of the package's ``rmindo3_grad.get_jk``, atom-pair loop vectorised.

    Returns [3, nao, nao] arrays for one density matrix, [n, 3, nao, nao] for n of them.
    """
    dm = np.asarray(dm)
    nao = dm.shape[-1]
    dm = dm.reshape(-1, nao, nao)
    ao_atom = _ao_atom(mol)
    gamma1 = rmindo3_grad._get_gamma1_half(mol) * 0.5  # [3, natm, natm], bra derivatives only
    pop = _atom_populations(dm, ao_atom, mol.natm)  # [n, natm]
    vj = np.zeros((len(dm), 3, nao, nao))
    diag = np.arange(nao)
    vj[:, :, diag, diag] = np.einsum("xij,tj->txi", gamma1, pop)[:, :, ao_atom]
    vk = gamma1[:, ao_atom][:, :, ao_atom][None] * dm[:, None]
    if len(dm) == 1:
        return vj[0], vk[0]
    return vj, vk


def _one_centre_jk(mol: gto.Mole, dm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-centre J/K contributions for [n, nao, nao] densities (as in the package)."""
    vj = np.zeros_like(dm)
    vk = np.zeros_like(dm)
    charges = mol.atom_charges()
    ints = {z: _mindo3._get_jk_1c_ints(z) for z in set(charges)}
    for ia, (p0, p1) in enumerate(mol.aoslice_by_atom()[:, 2:]):
        j_ints, k_ints = ints[charges[ia]]
        block = dm[:, p0:p1, p0:p1]
        idx = np.arange(p0, p1)
        vj[:, idx, idx] = np.einsum("ij,xjj->xi", j_ints, block)
        vj[:, p0:p1, p0:p1] += 2 * k_ints * block
        vk[:, idx, idx] = np.einsum("ij,xjj->xi", k_ints, block)
        vk[:, p0:p1, p0:p1] += (j_ints + k_ints) * block
    return vj, vk


def _ao_atom(mol: gto.Mole) -> np.ndarray:
    """Atom index of every AO."""
    slices = mol.aoslice_by_atom()
    return np.repeat(np.arange(mol.natm), slices[:, 3] - slices[:, 2])


def _atom_populations(dm: np.ndarray, ao_atom: np.ndarray, natm: int) -> np.ndarray:
    """Per-atom trace of each density: [n, natm]."""
    diag = np.einsum("xii->xi", dm)
    return np.stack([np.bincount(ao_atom, weights=d, minlength=natm) for d in diag])


class _Compat:
    """Fixes shared by :class:`RMINDO3` and :class:`UMINDO3`."""

    _package_class: type  # the pyscf-semiempirical class being fixed

    def __init__(self, mol: gto.Mole) -> None:
        with lib.temporary_env(_hf, MUTE_CHKFILE=True):  # no checkpoint file per SCF
            super().__init__(mol)

    def _finalize(self):  # -> self
        # The package's _finalize probes getattr(self, "_scf") for a second-order solver; the
        # miss goes through SCF.__getattr__, which imports all of PySCF (~1 s per process).
        # Skip it: the heat of formation is already set by energy_tot.
        return super(self._package_class, self)._finalize()

    def get_jk(self, mol=None, dm=None, hermi=1, with_j=True, with_k=True, omega=None):
        if dm is None:
            dm = self.make_rdm1()
        return get_jk(self._mindo_mol, dm)


class _GradCompat:
    """Gradients using the vectorised :func:`get_jk_grad`."""

    def get_jk(self, mol=None, dm=None, hermi=0, omega=None):
        if dm is None:
            dm = self.base.make_rdm1()
        return get_jk_grad(self.base._mindo_mol, dm)


class RGradients(_GradCompat, rmindo3_grad.Gradients):
    """Analytic RHF-MINDO/3 gradients (Hartree/bohr)."""


class UGradients(_GradCompat, umindo3_grad.Gradients):
    """Analytic UHF-MINDO/3 gradients (Hartree/bohr)."""


class RMINDO3(_Compat, _mindo3.RMINDO3):
    """Closed-shell MINDO/3 that works with PySCF 2.x's SCF driver."""

    _package_class = _mindo3.RMINDO3

    def get_init_guess(self, mol=None, key="minao", **kwargs) -> np.ndarray:
        return _mindo3.get_init_guess(self._mindo_mol)

    def nuc_grad_method(self) -> RGradients:
        return RGradients(self)


class UMINDO3(_Compat, _mindo3.UMINDO3):
    """Open-shell MINDO/3 that works with PySCF 2.x's SCF driver."""

    _package_class = _mindo3.UMINDO3

    def get_init_guess(self, mol=None, key="minao", **kwargs) -> np.ndarray:
        dm = _mindo3.get_init_guess(self._mindo_mol) * 0.5
        return np.stack((dm, dm))

    def nuc_grad_method(self) -> UGradients:
        return UGradients(self)


def check_elements(atomic_numbers: np.ndarray) -> None:
    """Raise ``StageFailure("engine_error")`` if MINDO/3 lacks parameters for an element."""
    missing = sorted({int(z) for z in atomic_numbers} - SUPPORTED_ELEMENTS)
    if missing:
        names = ", ".join(f"{ELEMENTS[z]} (Z={z})" for z in missing)
        supported = " ".join(ELEMENTS[z] for z in sorted(SUPPORTED_ELEMENTS))
        raise StageFailure(
            "engine_error", f"MINDO/3 has no parameters for {names}; it covers {supported}"
        )


def build_mole(
    atomic_numbers: np.ndarray, coords_bohr: np.ndarray, charge: int, multiplicity: int
) -> gto.Mole:
    """A PySCF molecule (coordinates in bohr) for the MINDO/3 classes."""
    coords = np.asarray(coords_bohr, dtype=np.float64)
    atoms = [(int(z), tuple(xyz)) for z, xyz in zip(atomic_numbers, coords.tolist(), strict=True)]
    return gto.M(
        atom=atoms, unit="Bohr", charge=charge, spin=multiplicity - 1, basis="sto-3g", verbose=0
    )


class Mindo3Engine:
    """MINDO/3 energy (Hartree) and analytic gradient (Hartree/bohr) at coordinates in bohr.

    Each call starts the SCF from the previous density; if that fails to converge it retries
    from the standard guess with a level shift before raising ``scf_not_converged``.
    """

    def __init__(self, atomic_numbers: np.ndarray, charge: int, multiplicity: int) -> None:
        check_elements(atomic_numbers)
        self.atomic_numbers = np.asarray(atomic_numbers)
        self.charge = int(charge)
        self.multiplicity = int(multiplicity)
        self._dm: np.ndarray | None = None

    def __call__(self, coords_bohr: np.ndarray) -> tuple[float, np.ndarray]:
        mf = self.scf(coords_bohr)
        gradient = mf.nuc_grad_method().kernel()
        return float(mf.e_tot), np.asarray(gradient)

    def scf(self, coords_bohr: np.ndarray):  # -> RMINDO3 | UMINDO3
        """Converged MINDO/3 SCF object at ``coords_bohr``."""
        mol = build_mole(self.atomic_numbers, coords_bohr, self.charge, self.multiplicity)
        mf = self._run_scf(mol, self._dm, level_shift=0.0)
        if not mf.converged:
            mf = self._run_scf(mol, None, level_shift=0.5, max_cycle=300)
        if not mf.converged:
            raise StageFailure(
                "scf_not_converged", f"MINDO/3 SCF did not converge in {mf.max_cycle} cycles"
            )
        self._dm = mf.make_rdm1()
        return mf

    def _run_scf(
        self, mol: gto.Mole, dm0: np.ndarray | None, level_shift: float, max_cycle: int = 100
    ):  # -> RMINDO3 | UMINDO3
        cls = RMINDO3 if self.multiplicity == 1 else UMINDO3
        mf = cls(mol)
        mf.conv_tol = CONV_TOL_HARTREE
        mf.max_cycle = max_cycle
        mf.level_shift = level_shift
        mf.kernel(dm0=dm0)
        return mf


def energy(
    atomic_numbers: np.ndarray, coords_angstrom: np.ndarray, charge: int = 0, multiplicity: int = 1
) -> float:
    """MINDO/3 single-point energy (Hartree) at coordinates in Å."""
    engine = Mindo3Engine(atomic_numbers, charge, multiplicity)
    return float(engine.scf(np.asarray(coords_angstrom) / ANGSTROM_PER_BOHR).e_tot)


def optimize(
    atomic_numbers: np.ndarray, coords_angstrom: np.ndarray, charge: int = 0, multiplicity: int = 1
) -> OptimizationResult:
    """MINDO/3 minimum from a start geometry in Å (result coordinates in bohr, energy Hartree)."""
    engine = Mindo3Engine(atomic_numbers, charge, multiplicity)
    return optimize_geometry(
        engine, atomic_numbers, np.asarray(coords_angstrom) / ANGSTROM_PER_BOHR
    )


def versions() -> dict[str, str]:
    """Versions of the libraries behind MINDO/3 results."""
    import pyscf
    from pyscf import semiempirical

    return {
        "pyscf_version": pyscf.__version__,
        "pyscf_semiempirical_version": semiempirical.__version__,
        "geometric_version": geometric_version(),
    }
