"""Lossless, reversible transforms of one molecule's float32 grid into compressible uint32 words.

The density store never rounds: :func:`decode` returns the exact float32 bit patterns that
:func:`encode` was given (NaN payloads and signed zeros included). What changes is how the bits
are laid out before the general-purpose compressor (Blosc/zstd) sees them, because raw float32
grids of smooth fields compress only ~1.3x: the low mantissa bits look random.

Each molecule and field gets one **encoding code** (stored per molecule in ``encoding``):

``0`` raw
    the float32 bit patterns as uint32, unchanged.
``1``/``2`` float32, Lorenzo order 1/2
    the bit patterns are mapped to *ordered keys* (``b ^ ((b >> 31) & 0x7fffffff)`` on the
    int32 view; monotone in the float value and, for positive values, a piecewise-linear
    log2 scale), then predicted with the 3-D Lorenzo predictor applied ``order`` times
    (each application is a first difference along x, y and z with zero padding), and the
    residuals are zigzag-mapped (``(r << 1) ^ (r >> 31)``) so that small negative and positive
    residuals both become small unsigned words. All arithmetic is modulo 2**32, hence exact.
``3``/``4`` decimal6, Lorenzo order 1/2
    used when every value equals ``float32(float64(d))`` for a decimal ``d`` with at most six
    significant digits — what parsing Gaussian/psi4 cube text (``E13.5``) gives. Such a value
    carries ~20 bits of information, not 32: storing the decimal instead of its float32 image
    drops the ~4 "noise" bits that binary rounding adds and that no compressor can predict.
    ``d = sign * s * 10**(e - 5)`` with significand ``s`` in [100000, 999999] is mapped to the
    integer key ``sign * (1 + (e - EXP_MIN) * DECADE + LOG_TABLE[s - 100000])``, where
    ``LOG_TABLE`` is a strictly increasing integer approximation of
    ``DECADE * log10(s / 100000)`` built with integer arithmetic only (see
    :func:`_log_table`); zero maps to 0. Keys then go through the same Lorenzo + zigzag step.
    Decoding uses only integer operations, exact powers of ten and one IEEE float64 division
    or multiplication before the float32 cast, so it is deterministic on every platform; the
    encoder checks that decoding reproduces every input bit and otherwise falls back to codes
    1/2.

The writer tries the applicable codes and keeps the one that compresses smallest (see
:func:`encode`). Word arrays are flat, in the grid's C order (x slowest, z fastest).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

RAW, FLOAT_L1, FLOAT_L2, DECIMAL_L1, DECIMAL_L2 = 0, 1, 2, 3, 4

ENCODINGS: dict[int, str] = {
    RAW: "raw-float32",
    FLOAT_L1: "float32-lorenzo1",
    FLOAT_L2: "float32-lorenzo2",
    DECIMAL_L1: "decimal6-lorenzo1",
    DECIMAL_L2: "decimal6-lorenzo2",
}
"""Encoding code → name (the store's ``encoding`` array holds the codes)."""

SIG_MIN, SIG_MAX = 100_000, 999_999
"""Range of the six-digit decimal significand."""

EXP_MIN, EXP_MAX = -45, 38
"""Decimal exponents of the float32 range (smallest subnormal ~1.4e-45, max ~3.4e38)."""

_LOG_SLOPE = 1_100_000
"""Key units per natural-log unit of the significand; > SIG_MAX keeps the table strictly
increasing (the step at the top of a decade is ~_LOG_SLOPE / SIG_MAX >= 1)."""

_FRACTION_BITS = 16


@lru_cache(maxsize=1)
def _log_table() -> tuple[np.ndarray, int]:
    """``(LOG_TABLE, DECADE)``: integer log-like offsets of each significand within a decade.

    ``LOG_TABLE[i] = floor(sum_{t < 100000 + i} floor(M / t) / 2**16)`` with
    ``M = _LOG_SLOPE * 2**16`` (a fixed-point harmonic sum ≈ ``_LOG_SLOPE * ln(s / 1e5)``);
    ``DECADE`` is the same sum over the whole decade, so keys are continuous across decades.
    Integer-only, hence identical on every machine.
    """
    sig = np.arange(SIG_MIN, SIG_MAX + 1, dtype=np.int64)
    steps = (_LOG_SLOPE << _FRACTION_BITS) // sig
    cumulative = np.concatenate([[0], np.cumsum(steps)]) >> _FRACTION_BITS
    table = cumulative[:-1]
    if not np.all(np.diff(table) > 0):  # pragma: no cover - guarded by the constants
        raise AssertionError("decimal log table is not strictly increasing")
    return table, int(cumulative[-1])


@lru_cache(maxsize=1)
def _inverse_log_table() -> np.ndarray:
    """Offset within a decade → significand index (valid at the table's own values)."""
    table, decade = _log_table()
    widths = np.diff(np.append(table, decade))
    return np.repeat(np.arange(table.size, dtype=np.int32), widths)


def _exact_powers_of_ten() -> np.ndarray:
    """10**0 … 10**22 as float64, each exact (built by exact multiplications)."""
    out = [1.0]
    for _ in range(22):
        out.append(out[-1] * 10.0)
    return np.array(out)


_POW10 = _exact_powers_of_ten()


# ---------------------------------------------------------------- ordered keys, Lorenzo, zigzag


def _float_keys(values: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.int32)
    return (bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))).view(np.uint32)


def _float_from_keys(keys: np.ndarray) -> np.ndarray:
    k = keys.view(np.int32)
    return (k ^ ((k >> 31) & np.int32(0x7FFFFFFF))).view(np.float32)


def _diff(a: np.ndarray, axis: int) -> np.ndarray:
    """First difference along ``axis`` with a zero before the first element (mod 2**32)."""
    out = a.copy()
    head = [slice(None)] * a.ndim
    tail = [slice(None)] * a.ndim
    head[axis] = slice(1, None)
    tail[axis] = slice(None, -1)
    out[tuple(head)] -= a[tuple(tail)]
    return out


def _lorenzo(words: np.ndarray, order: int) -> np.ndarray:
    """Residuals of the Lorenzo predictor applied ``order`` times (uint32, modulo 2**32)."""
    r = np.asarray(words, dtype=np.uint32)
    for _ in range(order):
        for axis in range(3):
            r = _diff(r, axis)
    return r


def _unlorenzo(residuals: np.ndarray, order: int) -> np.ndarray:
    """Inverse of :func:`_lorenzo`, in place: running sums along x, y, z (modulo 2**32).

    Along the two slow axes a loop over planes/rows is several times faster than
    ``np.cumsum`` (contiguous adds instead of strided scans)."""
    r = residuals
    for _ in range(order):
        for i in range(1, r.shape[0]):
            r[i] += r[i - 1]
        for j in range(1, r.shape[1]):
            r[:, j] += r[:, j - 1]
        np.cumsum(r, axis=2, dtype=np.uint32, out=r)
    return r


def _zigzag(words: np.ndarray) -> np.ndarray:
    r = words.view(np.int32)
    return ((r << 1) ^ (r >> 31)).view(np.uint32)


def _unzigzag(words: np.ndarray) -> np.ndarray:
    return (words >> np.uint32(1)) ^ (np.uint32(0) - (words & np.uint32(1)))


# ------------------------------------------------------------------------------ decimal keys


def _decimal_keys(values: np.ndarray) -> np.ndarray | None:
    """Decimal keys (uint32 view of int32) if every value is a <= 6-significant-digit decimal
    that decodes back to the identical float32 bits, else ``None``."""
    x = np.ascontiguousarray(values, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        return None
    mag = np.abs(x.astype(np.float64))
    nonzero = mag > 0
    exponent = np.zeros(x.shape, dtype=np.int64)
    with np.errstate(divide="ignore"):
        exponent[nonzero] = np.floor(np.log10(mag[nonzero])).astype(np.int64)
    sig = np.rint(mag * 10.0 ** (5 - exponent)).astype(np.int64)
    for fix, step in ((sig > SIG_MAX, 1), ((sig < SIG_MIN) & nonzero, -1)):
        if np.any(fix):  # log10 landed just below/above a power of ten
            exponent[fix] += step
            sig[fix] = np.rint(mag[fix] * 10.0 ** (5 - exponent[fix])).astype(np.int64)
    sig = np.where(nonzero, sig, SIG_MIN)
    if np.any((sig < SIG_MIN) | (sig > SIG_MAX)):
        return None
    if np.any(nonzero & ((exponent < EXP_MIN) | (exponent > EXP_MAX))):
        return None
    table, decade = _log_table()
    magnitude = 1 + (exponent - EXP_MIN) * decade + table[sig - SIG_MIN]
    keys = np.where(nonzero, np.where(np.signbit(x), -magnitude, magnitude), 0).astype(np.int32)
    decoded = _decimal_values(keys.view(np.uint32))
    if not np.array_equal(decoded.view(np.uint32), x.view(np.uint32)):
        return None
    return keys.view(np.uint32)


def _power_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per decimal exponent ``e`` (index ``e - EXP_MIN``): the factor to multiply and the one
    to divide the significand by, one of them 1.0, so that ``s * 10**(e - 5)`` is one exactly
    rounded float64 operation whenever ``|e - 5| <= 22``."""
    power = np.arange(EXP_MIN, EXP_MAX + 1) - 5
    multiply = np.where(power > 0, _POW10[np.clip(power, 0, 22)], 1.0)
    divide = np.where(power < 0, _POW10[np.clip(-power, 0, 22)], 1.0)
    return multiply, divide


_MULTIPLY, _DIVIDE = _power_tables()


_BLOCK = 1 << 16
"""Values decoded per step: keeps the temporaries of :func:`_decimal_values` in cache."""


def _decimal_values(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_decimal_keys` (float32, same shape)."""
    flat = keys.reshape(-1).view(np.int32)
    out = np.empty(flat.size, dtype=np.float32)
    _, decade = _log_table()
    inverse = _inverse_log_table()
    for start in range(0, flat.size, _BLOCK):
        k = flat[start : start + _BLOCK]
        magnitude = np.abs(k)  # keys are at most ~2.1e8 in magnitude: no int32 overflow
        magnitude -= 1
        decade_index = magnitude // decade  # exponent - EXP_MIN; -1 for zero keys
        within = magnitude - decade_index * decade
        zero = decade_index < 0
        decade_index[zero] = 5 - EXP_MIN  # any valid entry; zeros are set below
        within[zero] = 0
        value = inverse[within].astype(np.float64)
        value += SIG_MIN
        lowest = int(decade_index.min()) + EXP_MIN - 5  # powers of ten in this block
        highest = int(decade_index.max()) + EXP_MIN - 5
        if highest > 0:
            value *= _MULTIPLY[decade_index]
        if lowest < 0:
            value /= _DIVIDE[decade_index]
        if lowest < -22 or highest > 22:
            power = decade_index + (EXP_MIN - 5)
            # |value| < 1e-17 or > 1e28: several exact steps, still deterministic
            far = np.abs(power) > 22
            v = inverse[within[far]] + float(SIG_MIN)
            p = power[far]
            while np.any(p):
                step = np.clip(p, -22, 22)
                v = np.where(step > 0, v * _POW10[np.abs(step)], v / _POW10[np.abs(step)])
                p = p - step
            value[far] = v
        np.negative(value, out=value, where=k < 0)
        if zero.any():
            value[zero] = 0.0
        out[start : start + k.size] = value
    return out.reshape(keys.shape)


# ---------------------------------------------------------------------------------- public


def encode_as(values: np.ndarray, code: int) -> np.ndarray | None:
    """Flat uint32 words of a 3-D float32 grid under encoding ``code``; ``None`` when the code
    does not apply (decimal codes on values that are not six-digit decimals)."""
    x = np.asarray(values, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"grid values must be 3-D, got shape {x.shape}")
    if code == RAW:
        return np.ascontiguousarray(x).view(np.uint32).ravel()
    if code in (FLOAT_L1, FLOAT_L2):
        keys = _float_keys(x)
        order = 1 if code == FLOAT_L1 else 2
    elif code in (DECIMAL_L1, DECIMAL_L2):
        decimal = _decimal_keys(x)
        if decimal is None:
            return None
        keys = decimal
        order = 1 if code == DECIMAL_L1 else 2
    else:
        raise ValueError(f"unknown encoding code {code}")
    if x.size == 0:
        return keys.ravel()
    return _zigzag(_lorenzo(keys, order)).ravel()


def encode(
    values: np.ndarray,
    size_of: Callable[[np.ndarray], int],
    codes: tuple[int, ...] = (FLOAT_L1, FLOAT_L2, DECIMAL_L1, DECIMAL_L2),
) -> tuple[int, np.ndarray]:
    """``(code, words)`` with the smallest ``size_of(words)`` (compressed bytes) among the
    applicable ``codes``. Decimal codes apply only to six-digit decimals; when they do, float
    codes are not tried (they would keep the binary-rounding noise bits)."""
    x = np.asarray(values, dtype=np.float32)
    decimal_codes = [c for c in codes if c in (DECIMAL_L1, DECIMAL_L2)]
    other_codes = [c for c in codes if c not in (DECIMAL_L1, DECIMAL_L2)]
    candidates: list[tuple[int, np.ndarray]] = []
    if decimal_codes and x.size:
        for code in decimal_codes:
            words = encode_as(x, code)
            if words is None:
                break
            candidates.append((code, words))
    if not candidates:
        for code in other_codes or [RAW]:
            words = encode_as(x, code)
            assert words is not None
            candidates.append((code, words))
    if len(candidates) == 1:
        return candidates[0]
    return min(candidates, key=lambda item: size_of(item[1]))


def decode(words: np.ndarray, code: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Float32 grid of ``shape`` from the flat uint32 ``words`` of encoding ``code``."""
    w = np.asarray(words, dtype=np.uint32).reshape(shape)
    if code == RAW:
        return w.view(np.float32).copy()
    if code not in ENCODINGS:
        raise ValueError(f"unknown encoding code {code}")
    order = 1 if code in (FLOAT_L1, DECIMAL_L1) else 2
    keys = _unlorenzo(_unzigzag(w), order)  # _unzigzag allocates: ``words`` stays untouched
    if code in (FLOAT_L1, FLOAT_L2):
        return _float_from_keys(keys)
    return _decimal_values(keys)
