"""PySCF engine: HF or Kohn–Sham SCF, then density and ESP on a regular grid, in-process.

Method: ``method: hf`` → RHF/UHF; any other value is a PySCF ``xc`` string (``b3lyp``,
``pbe0``, ``".2*HF + .08*LDA + .72*B88, .81*LYP + .19*VWN"``) → RKS/UKS. Restricted for
singlets and unrestricted otherwise (``reference: auto``), as psi4's rks/uks choice.
PySCF 2.x ``b3lyp`` is libxc ``HYB_GGA_XC_B3LYP`` (VWN_RPA local correlation) — the same
definition as psi4 1.3.2's ``b3lyp``; ``b3lyp5`` uses VWN5.

Basis functions (``basis_source``): from PySCF's own library (``engine``) or from psi4's
``.gbs`` file of the same name read by PySCF's parser (``psi4``), so both engines use one
definition; the provenance records, per element, the functions used and their hash
(:mod:`rhoflow.density.basis`). Cartesian or spherical as psi4 does by default
(``cartesian: null``): cartesian for the 3-21G/6-31G families (Pople's 6d convention, also
Gaussian's and GAMESS's), spherical otherwise; with ``basis_source: psi4`` the file's own
``cartesian``/``spherical`` keyword (the same families).

Density: ρ(r) = Σ_k n_k ψ_k(r)² over the occupied orbitals of both spins (e/bohr³), the same as
Σ_ij D_ij φ_i(r) φ_j(r) with D the total (α+β) density matrix, evaluated separably on the grid
(:mod:`rhoflow.density.gto_grid`).

ESP (Hartree/e), ``esp``:
``exact``  V(r) = Σ_A Z_A/|r − R_A| − Σ_ij D_ij (i|1/|r'−r||j), the electronic integrals
           from ``int1e_grids`` per block of points; cost ∝ points × nbf².
``df``     the same with D fitted to an auxiliary basis (Coulomb metric, ``auxbasis`` or
           def2-universal-jkfit) and V_el(r) = −Σ_P d_P (P|1/|r'−r|) (``int1e_grids``, see
           :func:`unit_function`), cost ∝ points × naux; psi4's cubeprop ESP is made this way.
``none``   no ESP.

Device (``device``): ``cuda`` runs the SCF on the GPU through gpu4pyscf (``mf.to_gpu()``) and
brings its orbitals back to numpy; labels, density and ESP on the grid are then evaluated on the
CPU as always. ``auto`` is ``cuda`` when gpu4pyscf imports and CUDA sees a device, else ``cpu``,
decided in each molecule's own (forked) process, so the parent never initialises CUDA.

Settings: the ``density.pyscf`` section of ``rhoflow/schemas/config.schema.yaml``, complete (filled
and checked once where the command enters the library); :func:`check_settings` adds the one check
the schema cannot make.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from rhoflow.density.basis import (
    load_psi4_basis,
    psi4_basis_file,
    pyscf_library_file,
    pyscf_records,
)
from rhoflow.density.checks import check_electron_count, density_checks
from rhoflow.density.common import (
    annotate_functional,
    coords_angstrom,
    dipole_labels,
    element_symbols,
    frontier_from_spins,
    frontier_labels,
    provenance,
    spin_multiplicity,
    timed,
    total_electrons,
)
from rhoflow.density.grid import GridSpec, grid_for
from rhoflow.density.gto_grid import density_on_grid
from rhoflow.molecule import Molecule
from rhoflow.parallel import StageFailure
from rhoflow.result import DensityResult

NAME = "pyscf"

DEFAULT_ESP_AUXBASIS = "def2-universal-jkfit"
FIT_CONDITION = 1e-10
BLOCK_BYTES = 64 * 1024**2
"""Memory budget of one block of basis-function values or ESP integrals (bytes)."""

_POPLE_CARTESIAN = re.compile(r"^(3-21|6-31)(\+{0,2})g", re.IGNORECASE)


def check_settings(settings: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the key unless an xc ``method`` of the completed settings
    parses with PySCF's libxc (the schema cannot know PySCF's functionals), when ``device``
    is ``cuda`` and gpu4pyscf is not installed (checked without starting CUDA), or when
    ``basis_source: psi4`` finds no psi4 file for the basis."""
    if settings["device"] == "cuda" and importlib.util.find_spec("gpu4pyscf") is None:
        raise ValueError(f"config key 'density.{NAME}.device': 'cuda' needs {GPU4PYSCF_HINT}")
    if settings["basis_source"] == "psi4":
        try:
            psi4_basis_file(settings["basis"])
        except FileNotFoundError as exc:
            raise ValueError(f"config key 'density.{NAME}.basis_source': {exc}") from exc
    if _is_hf(settings["method"]):
        return
    from pyscf.dft import libxc

    try:
        libxc.parse_xc(settings["method"])
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"config key 'density.{NAME}.method': {settings['method']!r} is not a PySCF xc "
            f"functional: {exc}"
        ) from exc


GPU4PYSCF_HINT = "gpu4pyscf, which is not installed (pip install gpu4pyscf-cuda12x)"


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda`` for the ``device`` setting: ``auto`` is ``cuda`` when gpu4pyscf
    imports and CUDA sees a device, else ``cpu``. ``cuda`` where that fails raises
    ``RuntimeError`` saying why. Starts CUDA (call it in the process that computes)."""
    if device == "cpu":
        return "cpu"
    problem = _cuda_problem()
    if problem is None:
        return "cuda"
    if device == "cuda":
        raise RuntimeError(f"density.{NAME}.device is 'cuda' but {problem}")
    return "cpu"


def _cuda_problem() -> str | None:
    """Why gpu4pyscf cannot run here, or None when it can."""
    try:
        import cupy
        import gpu4pyscf  # noqa: F401
    except ImportError:
        return f"it needs {GPU4PYSCF_HINT}"
    except Exception as exc:  # a broken CUDA install fails gpu4pyscf's import in many ways
        return f"gpu4pyscf does not import: {type(exc).__name__}: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy's CUDARuntimeError: no driver, no device
        return f"CUDA finds no device: {exc}"
    return None if count > 0 else "CUDA finds no device"


def _is_hf(method: str) -> bool:
    return method.strip().lower() in ("hf", "scf")


def use_cartesian(basis: str, cartesian: bool | None) -> bool:
    """Cartesian d/f functions? ``None`` → yes for 3-21G/6-31G families, as psi4/Gaussian."""
    if cartesian is not None:
        return bool(cartesian)
    return bool(_POPLE_CARTESIAN.match(basis.strip()))


def build_mole(molecule: Molecule, settings: dict[str, Any]):  # -> pyscf.gto.Mole
    """PySCF molecule (coordinates from Å with PySCF's bohr constant), its basis from PySCF's
    library or, with ``basis_source: psi4``, from psi4's ``.gbs`` file (:mod:`.basis`).

    An element the basis lacks is a ``basis_missing`` :class:`StageFailure` naming it."""
    from pyscf import gto
    from pyscf.lib.exceptions import BasisNotFoundError

    mult = spin_multiplicity(molecule, settings["multiplicity"])
    symbols = element_symbols(molecule)
    atoms = [(symbol, tuple(float(c) for c in xyz))
             for symbol, xyz in zip(symbols, coords_angstrom(molecule), strict=True)]
    if settings["basis_source"] == "psi4":
        basis, file_cartesian, _ = load_psi4_basis(settings["basis"], symbols)
        cart = file_cartesian if settings["cartesian"] is None else bool(settings["cartesian"])
    else:
        basis, cart = settings["basis"], use_cartesian(settings["basis"], settings["cartesian"])
    try:
        return gto.M(atom=atoms, unit="Angstrom", basis=basis, cart=cart,
                     charge=int(molecule.charge), spin=mult - 1, verbose=0)
    except BasisNotFoundError as exc:  # "Basis set not found for I in 6-31g*"
        raise StageFailure("basis_missing", f"pyscf: {exc}") from exc


def basis_provenance(mf, settings: dict[str, Any]) -> dict[str, Any]:
    """Where the functions came from and, per element (:mod:`.basis`), the orbital basis and
    any fitting basis: of the SCF (``density_fitting``) and of the ESP (``esp: df``)."""
    name = settings["basis"]
    if settings["basis_source"] == "psi4":
        source = str(psi4_basis_file(name))
    else:
        source = pyscf_library_file(name)
    out: dict[str, Any] = {
        "basis_source": settings["basis_source"],
        "basis_functions": pyscf_records(mf.mol, name, source),
    }
    from pyscf import df

    if settings["density_fitting"]:
        auxmol = df.addons.make_auxmol(mf.mol, mf.with_df.auxbasis or df.make_auxbasis(mf.mol))
        aux = settings["auxbasis"] or "pyscf default for " + name
        out["fit_basis_functions"] = pyscf_records(auxmol, aux, _aux_source(settings["auxbasis"]))
    if settings["esp"] == "df":
        aux = settings["auxbasis"] or DEFAULT_ESP_AUXBASIS
        out["esp_fit_basis_functions"] = pyscf_records(df.addons.make_auxmol(mf.mol, aux), aux,
                                                       _aux_source(aux))
    return out


def _aux_source(auxbasis: str | None) -> str:
    import pyscf

    if auxbasis is None:
        return f"pyscf {pyscf.__version__} pyscf.df.make_auxbasis"
    return pyscf_library_file(auxbasis)


def _scf_object(mol, settings: dict[str, Any]):  # -> pyscf SCF object
    from pyscf import dft, scf

    restricted = settings["reference"] == "restricted" or (
        settings["reference"] == "auto" and mol.spin == 0
    )
    if restricted and mol.spin != 0:
        raise ValueError("reference 'restricted' needs a singlet; use auto or unrestricted")
    if _is_hf(settings["method"]):
        mf = scf.RHF(mol) if restricted else scf.UHF(mol)
    else:
        mf = dft.RKS(mol) if restricted else dft.UKS(mol)
        mf.xc = settings["method"]
        mf.grids.level = settings["xc_grid_level"]
    mf.conv_tol = settings["conv_tol_hartree"]
    mf.max_cycle = settings["max_cycle"]
    if settings["density_fitting"]:
        mf = mf.density_fit(auxbasis=settings["auxbasis"])
    return mf


def _kernel_on_gpu(mf) -> None:
    """Run ``mf``'s SCF on the GPU (gpu4pyscf) and keep its results in ``mf`` as numpy, so the
    CPU object goes on to the labels, density and ESP as after a CPU SCF."""
    gpu = mf.to_gpu()
    gpu.kernel()
    for key in ("mo_energy", "mo_coeff", "mo_occ"):
        value = getattr(gpu, key)
        setattr(mf, key, np.asarray(value.get() if hasattr(value, "get") else value))
    mf.e_tot, mf.converged = float(gpu.e_tot), bool(gpu.converged)
    mf.cycles = int(getattr(gpu, "cycles", 0))


def run_scf(
    molecule: Molecule, settings: dict[str, Any], device: str = "cpu"
):  # -> converged SCF object
    """Converged SCF for validated ``settings`` on ``device`` (``cpu`` or ``cuda``, see
    :func:`resolve_device`); ``scf_not_converged`` failure otherwise. Its arrays are numpy."""
    mol = build_mole(molecule, settings)
    mf = _scf_object(mol, settings)
    if device == "cuda":
        _kernel_on_gpu(mf)
    else:
        mf.kernel()
    if not mf.converged:
        raise StageFailure(
            "scf_not_converged",
            f"{type(mf).__name__} not converged after {mf.cycles} cycles "
            f"(E = {mf.e_tot:.8f} Eh, conv_tol {settings['conv_tol_hartree']:g})",
        )
    return mf


def total_dm(mf) -> np.ndarray:
    """Total (α + β) AO density matrix."""
    dm = np.asarray(mf.make_rdm1())
    return dm[0] + dm[1] if dm.ndim == 3 else dm


def _xc_energy(mf, dm) -> float:
    """Semi-local XC energy only (no exact-exchange part), as psi4's "DFT XC ENERGY"."""
    if not hasattr(mf, "xc"):
        return 0.0
    ni, mol = mf._numint, mf.mol
    if np.asarray(dm).ndim == 3:
        return float(ni.nr_uks(mol, mf.grids, mf.xc, dm)[1])
    return float(ni.nr_rks(mol, mf.grids, mf.xc, dm)[1])


def scf_labels(mf) -> dict[str, float | None]:
    """Energies (Hartree), frontier orbitals and dipole (Debye) of a converged SCF.

    two-electron energy = E_total − E_nuc − E_one-electron − E_xc(semi-local), i.e. Coulomb
    plus exact exchange, as psi4 splits it.
    """
    mol, dm_spin = mf.mol, mf.make_rdm1()
    dm = total_dm(mf)
    e_nuc = float(mol.energy_nuc())
    e_one = float(np.einsum("ij,ji->", mf.get_hcore(), dm))
    e_xc = _xc_energy(mf, dm_spin)
    e_tot = float(mf.e_tot)
    labels: dict[str, float | None] = {
        "final_energy_hartree": e_tot,
        "total_energy_hartree": e_tot,
        "nuclear_repulsion_energy_hartree": e_nuc,
        "one_electron_energy_hartree": e_one,
        "two_electron_energy_hartree": e_tot - e_nuc - e_one - e_xc,
        "xc_energy_hartree": e_xc,
    }
    labels.update(frontier_labels(*_frontier(mf)))
    labels.update(dipole_labels(mf.dip_moment(unit="Debye", verbose=0)))
    return labels


def _frontier(mf) -> tuple[float | None, float | None]:
    energies, occ = np.asarray(mf.mo_energy), np.asarray(mf.mo_occ)
    if energies.ndim == 1:
        return frontier_from_spins([energies], [int(np.count_nonzero(occ > 0))])
    return frontier_from_spins(list(energies), [int(np.count_nonzero(o > 0)) for o in occ])


def block_size(per_point: int) -> int:
    """Points per block so that ``per_point`` floats per point stay within the budget."""
    return int(max(64, min(100_000, BLOCK_BYTES // (8 * max(1, per_point)))))


def occupied_orbitals(mf) -> tuple[np.ndarray, np.ndarray]:
    """MO coefficients ``[nao, k]`` and occupations ``[k]`` of a converged SCF, both spin
    channels side by side, so that C diag(n) Cᵀ is the total density matrix."""
    coeff, occ = np.asarray(mf.mo_coeff), np.asarray(mf.mo_occ)
    if occ.ndim == 1:
        return coeff, occ
    return np.hstack(list(coeff)), np.concatenate(list(occ))


def nuclear_potential(mol, coords: np.ndarray) -> np.ndarray:
    """Σ_A Z_A / |r − R_A| (Hartree/e) at ``coords`` [n, 3] (bohr); 0 on a nucleus."""
    charges, centres = mol.atom_charges(), mol.atom_coords()
    out = np.zeros(len(coords))
    for z, centre in zip(charges, centres, strict=True):
        r = np.linalg.norm(coords - centre, axis=1)
        out += np.divide(z, r, out=np.zeros_like(r), where=r > 1e-15)
    return out


def esp_exact(mol, dm: np.ndarray, spec: GridSpec) -> np.ndarray:
    """Exact ESP (Hartree/e) on ``spec`` from ``int1e_grids`` integrals, flat in cube order."""
    out = np.empty(spec.n_points)
    size = block_size(mol.nao * mol.nao)
    for start, stop, coords in spec.blocks(size):
        ints = mol.intor("int1e_grids", grids=coords)  # [n, nao, nao]
        electronic = np.einsum("pij,ij->p", ints, dm)
        out[start:stop] = nuclear_potential(mol, coords) - electronic
    return out


def fit_density(mol, dm: np.ndarray, auxbasis: str):  # -> (auxmol, coefficients)
    """Coulomb-metric fit of ρ to ``auxbasis``: d = (P|Q)⁻¹ Σ_ij (Q|ij) D_ij.

    The inverse drops metric eigenvalues below :data:`FIT_CONDITION` × the largest (psi4's
    ``DF_FITTING_CONDITION`` default), which large auxiliary sets need.
    """
    import scipy.linalg
    from pyscf import df, lib

    auxmol = df.addons.make_auxmol(mol, auxbasis)
    packed = lib.pack_tril(dm + dm.T - np.diag(np.diag(dm)))  # i >= j, off-diagonal doubled
    projected = np.empty(auxmol.nao)
    offsets = auxmol.ao_loc_nr()
    step = max(1, BLOCK_BYTES // (8 * len(packed) * max(1, auxmol.nao // auxmol.nbas)))
    for first in range(0, auxmol.nbas, step):
        last = min(first + step, auxmol.nbas)
        shls = (0, mol.nbas, 0, mol.nbas, first, last)
        ints = df.incore.aux_e2(mol, auxmol, "int3c2e", aosym="s2ij", shls_slice=shls)
        projected[offsets[first] : offsets[last]] = packed @ ints
    values, vectors = scipy.linalg.eigh(auxmol.intor("int2c2e"))
    keep = values > FIT_CONDITION * values.max()  # drop near-dependent combinations, as psi4
    coefficients = vectors[:, keep] @ ((vectors[:, keep].T @ projected) / values[keep])
    return auxmol, coefficients


def unit_function(cart: bool):  # -> pyscf.gto.Mole
    """A PySCF molecule holding one s function equal to 1 everywhere (exponent 0).

    ``int1e_grids`` of (P| and this function gives ∫ χ_P(r') / |r' − g| dr', the potential of
    basis function P at each grid point g, in one vectorised libcint call per block of points
    (3× faster than ``int2c2e`` against a point-charge "molecule" of one shell per point).
    """
    from pyscf import gto

    unit = gto.fakemol_for_charges(np.zeros((1, 3)))
    unit._env[unit._bas[0, gto.PTR_EXP]] = 0.0
    unit._env[unit._bas[0, gto.PTR_COEFF]] = 2.0 * np.sqrt(np.pi)  # cancels libcint's 1/(2√π)
    unit.cart = cart  # as the other molecule: no cartesian-to-spherical step
    return unit


def esp_density_fitted(mol, dm: np.ndarray, spec: GridSpec, auxbasis: str) -> np.ndarray:
    """ESP (Hartree/e) with the electronic part from a fitted density, flat in cube order."""
    from pyscf import gto

    auxmol, coefficients = fit_density(mol, dm, auxbasis)
    unit = unit_function(auxmol.cart)
    out = np.empty(spec.n_points)
    for start, stop, coords in spec.blocks(block_size(auxmol.nao)):
        ints = gto.intor_cross("int1e_grids", auxmol, unit, grids=coords)  # [n, naux, 1]
        out[start:stop] = nuclear_potential(mol, coords) - ints[:, :, 0] @ coefficients
    return out


def esp_on_grid(mol, dm: np.ndarray, spec: GridSpec, settings: dict[str, Any]) -> np.ndarray | None:
    """The ESP ``settings['esp']`` asks for, or None."""
    if settings["esp"] == "exact":
        return esp_exact(mol, dm, spec)
    if settings["esp"] == "df":
        return esp_density_fitted(mol, dm, spec, settings["auxbasis"] or DEFAULT_ESP_AUXBASIS)
    return None


def _libxc_names() -> dict[int, str]:
    """libxc id → canonical libxc name (``HYB_GGA_XC_B3LYP``), skipping PySCF aliases."""
    from pyscf.dft import libxc

    prefixes = ("LDA_", "GGA_", "MGGA_", "HYB_")
    return {int(code): name for name, code in libxc.XC_CODES.items()
            if isinstance(code, int | np.integer) and name.startswith(prefixes)}


def functional_definition(method: str) -> str:
    """Explicit description of the method: libxc components, weights and exact exchange."""
    import pyscf
    from pyscf.dft import libxc

    if _is_hf(method):
        return f"Hartree-Fock (pyscf {pyscf.__version__})"
    hyb, fn_facs = libxc.parse_xc(method)
    names = _libxc_names()
    components = [names.get(int(code), f"libxc#{int(code)}") for code, _ in fn_facs]
    parts = [f"{w:g}*{name}" for name, (_, w) in zip(components, fn_facs, strict=True)]
    definition = f"{method} = " + " + ".join(parts)
    if hyb[0] and not any(name.startswith("HYB_") for name in components):
        definition += f" + {hyb[0]:g}*HF exchange"
    if hyb[2]:
        definition += f" (range separation omega {hyb[2]:g}, alpha {hyb[1]:g})"
    notes = annotate_functional(components)
    definition += f" [{notes}]" if notes else ""
    return definition + f" (pyscf {pyscf.__version__}, libxc {libxc.libxc_version()})"


def run(molecule: Molecule, settings: dict[str, Any], threads: int = 1) -> DensityResult:
    """Density (and ESP) of one molecule with validated ``settings``."""
    import pyscf
    from pyscf import lib

    if molecule.coords_angstrom is not None:  # a fixed box that cannot hold it: before the SCF
        grid_for(np.asarray(molecule.coords_angstrom) / lib.param.BOHR, settings)
    lib.num_threads(threads)
    start = time.perf_counter()
    timings_s: dict[str, float] = {}
    device = resolve_device(settings["device"])
    with timed(timings_s, "scf"):
        mf = run_scf(molecule, settings, device)
    mol, dm = mf.mol, total_dm(mf)
    n_dm = float(np.einsum("ij,ji->", dm, mol.intor_symmetric("int1e_ovlp")))
    check_electron_count(n_dm, total_electrons(molecule))
    coords = mol.atom_coords()
    spec = grid_for(coords, settings)
    with timed(timings_s, "density_grid"):
        density = spec.to_grid(density_on_grid(mol, *occupied_orbitals(mf), spec))
    with timed(timings_s, "esp_grid"):
        esp_values = esp_on_grid(mol, dm, spec, settings)
    esp = None if esp_values is None else spec.to_grid(esp_values)
    labels = scf_labels(mf)
    restricted = np.asarray(mf.mo_occ).ndim == 1
    prov = provenance(
        NAME,
        pyscf.__version__,
        method=settings["method"],
        reference=("R" if restricted else "U") + ("HF" if _is_hf(settings["method"]) else "KS"),
        basis=settings["basis"],
        cartesian=bool(mol.cart),
        **basis_provenance(mf, settings),
        functional_definition=functional_definition(settings["method"]),
        density_fitting=bool(settings["density_fitting"]),
        multiplicity=mol.spin + 1,
        grid={"kind": settings["grid"], **spec.describe()},
        esp=settings["esp"],
        scf_converged=bool(mf.converged),
        scf_iterations=int(mf.cycles),
        threads=threads,
        device=device,
        timings_s=timings_s,
        wall_s=time.perf_counter() - start,
    )
    return DensityResult(
        id=molecule.id,
        atomic_numbers=np.asarray(molecule.atomic_numbers, dtype=np.int64),
        coords_bohr=coords,
        density=density,
        esp=esp,
        labels=labels,
        checks=density_checks(density, total_electrons(molecule), n_dm),
        provenance=prov,
    )
