"""Basis sets as the engines actually use them: per-element records with a content hash, and
psi4's basis library read by PySCF (``density.basis_source: psi4``).

A basis *name* does not say which functions were used: two programs' libraries may hold
different contractions under one name, a density-fitting (auxiliary) set is chosen silently,
and Cartesian vs spherical d/f functions is each program's own default. So each engine writes,
per element, a record (:func:`element_record`)::

    {"basis": "6-31G*", "source": "/usr/share/psi4/basis/6-31gs.gbs", "functions": "5s4p3d",
     "nbf": 37, "cartesian": true, "sha256": "…"}

``functions`` counts contracted functions per angular momentum, ``nbf`` the basis functions of
one atom. ``sha256`` hashes the **normalised shells** (:func:`normalise`): one entry per
contracted function (angular momentum l; primitives as (exponent in bohr⁻², coefficient as
written in the basis file, before the program normalises it)); general contractions (PySCF's
several coefficient columns) and psi4's SP shells split into one entry per l and column,
primitives with a zero coefficient dropped, entries sorted; numbers with
:data:`HASH_DIGITS` significant digits; plus ``cartesian``/``spherical``. Equal hashes: the
same functions, whichever program read them.

psi4's library: the ``basis/`` folder of psi4's data directory — ``$PSIDATADIR``, else
``<prefix>/share/psi4`` of the ``psi4`` on ``PATH`` (Debian: ``/usr/share/psi4``; conda:
``$CONDA_PREFIX/share/psi4``), file names as psi4 makes them (:func:`psi4_filename`).
Its first keyword (``cartesian``/``spherical``) is the file's convention, which psi4 uses
unless ``puream`` is set; PySCF's ``cartesian: null`` follows it too when it reads the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rhoflow.parallel import StageFailure

HASH_DIGITS = 10
"""Significant digits of exponents and coefficients in the hashed text (basis files give 7–10)."""
ANGULAR = "spdfghik"

Entry = tuple[int, Sequence[float], Sequence[float]]
"""One contracted function: (am, exponents, coefficients)."""


def _number(x: float) -> str:
    return f"{float(x):.{HASH_DIGITS - 1}e}"


def normalise(entries: Iterable[Entry]) -> list[list[Any]]:
    """Sorted ``[am, [[exponent, coefficient], …]]`` per contracted function (text numbers)."""
    out = []
    for am, exponents, coefficients in entries:
        primitives = [[_number(e), _number(c)] for e, c in zip(exponents, coefficients,
                                                                strict=True) if c != 0.0]
        if primitives:
            out.append([int(am), primitives])
    return sorted(out, key=lambda item: (item[0], json.dumps(item[1])))


def basis_hash(entries: Iterable[Entry], cartesian: bool) -> str:
    """SHA-256 of the normalised shells and the Cartesian/spherical convention (which only
    matters, and so only enters, from d functions on)."""
    shells = normalise(entries)
    cartesian = bool(cartesian) and any(am >= 2 for am, _ in shells)
    text = json.dumps({"cartesian": cartesian, "shells": shells}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def element_record(name: str, source: str, entries: Sequence[Entry], cartesian: bool) -> dict:
    """What one element's basis is (module docstring)."""
    counts: dict[int, int] = {}
    for am, _, coefficients in entries:
        if any(c != 0.0 for c in coefficients):
            counts[int(am)] = counts.get(int(am), 0) + 1
    nbf = sum(n * ((am + 1) * (am + 2) // 2 if cartesian else 2 * am + 1)
              for am, n in counts.items())
    return {
        "basis": name,
        "source": source,
        "functions": "".join(f"{counts[am]}{ANGULAR[am]}" for am in sorted(counts)),
        "nbf": nbf,
        "cartesian": bool(cartesian),
        "sha256": basis_hash(entries, cartesian),
    }


def pyscf_entries(shells: Sequence[Sequence[Any]]) -> list[Entry]:
    """Entries of one element in PySCF's internal format (``mol._basis[symbol]``):
    ``[am, (kappa,) [exp, c1, c2, …], …]``; each coefficient column is one function."""
    out: list[Entry] = []
    for shell in shells:
        am, rows = int(shell[0]), list(shell[1:])
        if rows and not isinstance(rows[0], Sequence):  # spinor bases carry kappa
            rows = rows[1:]
        exponents = [float(row[0]) for row in rows]
        for column in range(1, len(rows[0])):
            out.append((am, exponents, [float(row[column]) for row in rows]))
    return out


def pyscf_records(mol: Any, name: str, source: str) -> dict[str, dict]:
    """Per-element records of a built PySCF ``Mole`` (``mol._basis``: coefficients unnormalised)."""
    return {symbol: element_record(name, source, pyscf_entries(shells), bool(mol.cart))
            for symbol, shells in sorted(mol._basis.items())}


def pyscf_library_file(name: str) -> str:
    """``pyscf <version> gto/basis/<file>``: the file of PySCF's own library that defines
    ``name`` (or the name, when PySCF resolves it another way)."""
    import pyscf
    from pyscf.gto import basis

    found = basis.ALIAS.get(basis._format_basis_name(name))
    where = f"gto/basis/{found}" if isinstance(found, str) else f"basis {name!r}"
    return f"pyscf {pyscf.__version__} {where}"


# --- psi4's library ---------------------------------------------------------------------------


def psi4_filename(name: str) -> str:
    """psi4's file name for a basis (``6-31G*`` → ``6-31gs.gbs``, ``6-311+G(2d,p)`` →
    ``6-311pg_2d_p_.gbs``), as ``qcdb.BasisSet.make_filename``."""
    text = name.lower()
    for old, new in (("(", "_"), (")", "_"), (",", "_"), ("*", "s"), ("+", "p")):
        text = text.replace(old, new)
    return text + ".gbs"


def psi4_data_dir() -> Path:
    """psi4's data directory: ``$PSIDATADIR``, else ``<prefix>/share/psi4`` of the ``psi4`` on
    ``PATH``. ``FileNotFoundError`` saying what to set otherwise."""
    if os.environ.get("PSIDATADIR"):
        return Path(os.environ["PSIDATADIR"])
    exe = shutil.which("psi4")
    if exe is not None:
        candidate = Path(exe).resolve().parent.parent / "share" / "psi4"
        if (candidate / "basis").is_dir():
            return candidate
    raise FileNotFoundError(
        "psi4's basis library not found: put psi4 on PATH or set PSIDATADIR to its data "
        "directory (the folder holding basis/)"
    )


def psi4_basis_file(name: str, data_dir: Path | None = None) -> Path:
    """The ``.gbs`` file psi4 reads for ``name`` from its library (``PSIPATH`` folders first,
    as psi4 searches; ``data_dir``: psi4's data directory, found when None)."""
    folders = [Path(p) for p in os.environ.get("PSIPATH", "").split(os.pathsep) if p]
    folders.append((data_dir or psi4_data_dir()) / "basis")
    filename = psi4_filename(name)
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
    raise FileNotFoundError(f"psi4 has no basis file {filename} (for {name!r}) in "
                            + ", ".join(map(str, folders)))


def gbs_convention(text: str) -> bool:
    """True when a ``.gbs`` file declares itself ``cartesian`` (its first keyword)."""
    for line in text.splitlines():
        word = line.split("!", 1)[0].strip().lower()
        if word:
            return word == "cartesian"
    return False


def has_element(text: str, symbol: str) -> bool:
    """Does a ``.gbs`` text hold a block for ``symbol`` (``****`` then ``Br 0``)?"""
    return re.search(rf"^\s*\*{{4}}\s*\n\s*{re.escape(symbol)}\s+0\s*$", text,
                     re.MULTILINE | re.IGNORECASE) is not None


def load_psi4_basis(name: str, symbols: Iterable[str]) -> tuple[dict[str, list], bool, Path]:
    """(PySCF basis per element, the file's Cartesian convention, the file) for ``name`` from
    psi4's library, read by PySCF's Gaussian-format parser with the file's contractions kept.

    An element the file lacks is a ``basis_missing`` :class:`StageFailure` naming it."""
    from pyscf.gto.basis import parse_gaussian

    try:
        path = psi4_basis_file(name)
    except FileNotFoundError as exc:
        raise StageFailure("basis_missing", str(exc)) from exc
    text = path.read_text()
    basis = {}
    for symbol in sorted(set(symbols)):
        if not has_element(text, symbol):
            raise StageFailure("basis_missing",
                               f"basis {name} has no functions for element {symbol} ({path})")
        basis[symbol] = parse_gaussian.load(str(path), symbol, optimize=False)
    return basis, gbs_convention(text), path


def psi4_records(shells: Sequence[Sequence[Any]], symbols: Sequence[str], name: str,
                 source: str) -> dict[str, dict]:
    """Per-element records from psi4's shells as dumped by the psi4 input:
    ``[center, am, pure, exponents, original coefficients]`` (the first atom of each element)."""
    by_atom: dict[int, list[Entry]] = {}
    pure: dict[int, bool] = {}
    for center, am, is_pure, exponents, coefficients in shells:
        by_atom.setdefault(int(center), []).append((int(am), exponents, coefficients))
        pure[int(center)] = bool(is_pure)
    out: dict[str, dict] = {}
    for center, entries in sorted(by_atom.items()):
        symbol = symbols[center]
        if symbol not in out:
            out[symbol] = element_record(name, source, entries, not pure[center])
    return dict(sorted(out.items()))

