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
``5``/``6`` decimal6 split, Lorenzo order 1/2
    the same decimals, with the key magnitude split into a coarse part that is predicted and
    an exact remainder that is not. The log-like keys of codes 3/4 predict well, but they are
    sparse: consecutive decimals are 1.1 to 11 key units apart (dense at the top of a decade,
    sparse at the bottom), so a residual carries log2(spacing) ≈ 1.8 bits on average that say
    nothing. Here the coarse ``cell`` (0 for zero, else ``1 + (e - EXP_MIN) * PER_DECADE +
    offset // CELL``, where ``offset`` is the key's offset within its decade and ``CELL`` =
    11 key units, the widest spacing) goes through Lorenzo + zigzag; each cell holds
    ``n`` = 1 … 11 decimals, and the decimal's position within its cell (``0 … n-1``, known
    to be below ``n`` once the cell is decoded) is packed in mixed radix ``n`` (as many
    base-``n`` digits per uint32 word as fit), one stream per ``n``, in grid order;
    ``n = 1`` costs nothing. Signs are a separate bitmap, so the key
    magnitude stays smooth where the ESP changes sign. Word layout:
    ``[cell residuals (size)] [sign bits (ceil(size / 32))] [digits n = 2] [n = 3] …``.

The writer tries the applicable codes and keeps the one that compresses smallest (see
:func:`encode`). Word arrays are flat, in the grid's C order (x slowest, z fastest).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

RAW, FLOAT_L1, FLOAT_L2, DECIMAL_L1, DECIMAL_L2, SPLIT_L1, SPLIT_L2 = 0, 1, 2, 3, 4, 5, 6
DECIMAL_CODES = (DECIMAL_L1, DECIMAL_L2, SPLIT_L1, SPLIT_L2)

ENCODINGS: dict[int, str] = {
    RAW: "raw-float32",
    FLOAT_L1: "float32-lorenzo1",
    FLOAT_L2: "float32-lorenzo2",
    DECIMAL_L1: "decimal6-lorenzo1",
    DECIMAL_L2: "decimal6-lorenzo2",
    SPLIT_L1: "decimal6-split-lorenzo1",
    SPLIT_L2: "decimal6-split-lorenzo2",
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


def _decimal_keys(values: np.ndarray, verify: bool = True) -> np.ndarray | None:
    """Decimal keys (uint32 view of int32) if every value is a <= 6-significant-digit decimal
    that decodes back to the identical float32 bits, else ``None``. ``verify=False`` skips
    the decoding check (for callers that check the encoded words themselves)."""
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
    if verify:
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


def _values_from_digits(
    index: np.ndarray,
    decade_index: np.ndarray,
    negative: np.ndarray | None,
    zero: np.ndarray | None,
) -> np.ndarray:
    """Float32 values ``±(SIG_MIN + index) * 10**(decade_index + EXP_MIN - 5)`` (flat arrays;
    negative where ``negative``, 0 where ``zero`` (None: nowhere); ``decade_index`` must be a
    valid entry where ``zero``). One exactly rounded
    float64 operation per value when the power of ten is within 1e±22, several exact steps
    otherwise: deterministic on every IEEE platform."""
    out = np.empty(index.size, dtype=np.float32)
    for start in range(0, index.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        d = decade_index[block]
        value = index[block].astype(np.float64)
        value += SIG_MIN
        lowest = int(d.min()) + EXP_MIN - 5  # powers of ten in this block
        highest = int(d.max()) + EXP_MIN - 5
        if highest > 0:
            value *= _MULTIPLY[d]
        if lowest < 0:
            value /= _DIVIDE[d]
        if lowest < -22 or highest > 22:
            power = d + (EXP_MIN - 5)
            # |value| < 1e-17 or > 1e28: several exact steps, still deterministic
            far = np.abs(power) > 22
            v = index[block][far] + float(SIG_MIN)
            p = power[far]
            while np.any(p):
                step = np.clip(p, -22, 22)
                v = np.where(step > 0, v * _POW10[np.abs(step)], v / _POW10[np.abs(step)])
                p = p - step
            value[far] = v
        if negative is not None:
            np.negative(value, out=value, where=negative[block])
        if zero is not None:
            value[zero[block]] = 0.0
        out[block] = value
    return out


def _decimal_values(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_decimal_keys` (float32, same shape)."""
    k = keys.reshape(-1).view(np.int32)
    _, decade = _log_table()
    magnitude = np.abs(k)  # keys are at most ~2.1e8 in magnitude: no int32 overflow
    magnitude -= 1
    decade_index = magnitude // decade  # exponent - EXP_MIN; -1 for zero keys
    within = magnitude - decade_index * decade
    zero = decade_index < 0
    decade_index[zero] = 5 - EXP_MIN  # any valid entry; zeros are set to 0 at the end
    within[zero] = 0
    index = _inverse_log_table()[within]
    negative = k < 0
    return _values_from_digits(
        index, decade_index, negative if negative.any() else None, zero if zero.any() else None
    ).reshape(keys.shape)


# ------------------------------------------------------------------- decimal split (codes 5/6)

CELL = 11
"""Key units per coarse cell of codes 5/6 (the largest gap between consecutive decimal keys,
at the bottom of a decade, is ``_LOG_SLOPE / SIG_MIN`` = 11 units)."""


@lru_cache(maxsize=1)
def _cell_tables() -> tuple[np.ndarray, np.ndarray, int]:
    """``(FIRST, SIZE, PER_DECADE)`` of the coarse cells of one decade: cell ``c`` holds the
    decade offsets ``[c * CELL, (c + 1) * CELL)``, i.e. the significand indices
    ``FIRST[c] … FIRST[c] + SIZE[c] - 1`` (int32; integer-only, identical everywhere)."""
    table, decade = _log_table()
    per_decade = -(-decade // CELL)
    bounds = np.arange(per_decade + 1, dtype=np.int64) * CELL
    first = np.searchsorted(table, bounds, side="left").astype(np.int32)
    return first[:-1], np.diff(first).astype(np.int32), per_decade


def _radix_per_word(base: int) -> int:
    """How many base-``base`` digits fit in one uint32 word."""
    k, power = 0, 1
    while power * base <= 1 << 32:
        power *= base
        k += 1
    return k


def _pack_radix(digits: np.ndarray, base: int) -> np.ndarray:
    """Digits ``0 … base-1`` packed in mixed radix, first digit least significant (uint32)."""
    k = _radix_per_word(base)
    padded = np.zeros(-(-digits.size // k) * k, dtype=np.uint64)
    padded[: digits.size] = digits
    rows = padded.reshape(-1, k)
    words = np.zeros(rows.shape[0], dtype=np.uint64)
    for j in range(k - 1, -1, -1):
        words *= np.uint64(base)
        words += rows[:, j]
    return words.astype(np.uint32)


def _unpack_radix(words: np.ndarray, base: int, count: int) -> np.ndarray:
    """Inverse of :func:`_pack_radix`: the first ``count`` digits (int32)."""
    k = _radix_per_word(base)
    rest = words.astype(np.uint64)
    out = np.empty((rest.size, k), dtype=np.uint32)
    b = np.uint64(base)
    for j in range(k):
        quotient = rest // b
        out[:, j] = rest - quotient * b
        rest = quotient
    return out.reshape(-1)[:count].view(np.int32)


def _groups(size: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(n, flat positions whose cell holds n decimals)`` for n >= 2, ascending n."""
    counts = np.bincount(size, minlength=2)
    if counts[2:].sum() == 0:
        return []
    order = np.argsort(size.astype(np.uint8), kind="stable")  # radix sort: sizes <= 11
    ends = np.cumsum(counts)
    return [
        (n, order[ends[n - 1] : ends[n]]) for n in range(2, counts.size) if counts[n]
    ]


def _split_encode(keys: np.ndarray, order: int) -> np.ndarray:
    """Words of codes 5/6 from signed decimal keys (uint32 view of int32, 3-D)."""
    first, size_of, per_decade = _cell_tables()
    _, decade = _log_table()
    signed = keys.view(np.int32).ravel()
    mag = np.abs(signed.astype(np.int64))
    m = np.maximum(mag - 1, 0)
    e = m // decade
    w = m - e * decade
    c = w // CELL
    zero = mag == 0
    cell = np.where(zero, 0, 1 + e * per_decade + c).astype(np.uint32)
    within = (_inverse_log_table()[w] - first[c]).astype(np.int64)
    size = np.where(zero, 1, size_of[c])
    residuals = _zigzag(_lorenzo(cell.reshape(keys.shape), order)).ravel()
    signs = np.packbits(signed < 0, bitorder="little")
    signs = np.concatenate([signs, np.zeros(-signs.size % 4, np.uint8)]).view("<u4")
    parts = [residuals, signs.astype(np.uint32)]
    for base, members in _groups(size):
        parts.append(_pack_radix(within[members], base))
    return np.concatenate(parts)


def _split_values(words: np.ndarray, shape: tuple[int, int, int], order: int) -> np.ndarray:
    """Float32 grid from the words of codes 5/6 (same arithmetic as :func:`_decimal_values`)."""
    first, size_of, per_decade = _cell_tables()
    n = math.prod(shape)
    cell = _unlorenzo(_unzigzag(words[:n].reshape(shape)), order).ravel().view(np.int32)
    n_sign_words = -(-n // 32)
    sign_words = words[n : n + n_sign_words]
    negative = None
    if sign_words.any():
        negative = np.unpackbits(
            np.ascontiguousarray(sign_words, dtype="<u4").view(np.uint8),
            count=n,
            bitorder="little",
        ).view(bool)
    zero = cell == 0
    has_zero = bool(zero.any())
    c = cell - 1
    e = c // per_decade
    c -= e * per_decade
    if has_zero:
        c[zero] = 0
    index = first[c]
    size = size_of[c]
    if has_zero:
        size[zero] = 1
    pos = n + n_sign_words
    for base, members in _groups(size):
        n_words = -(-members.size // _radix_per_word(base))
        index[members] += _unpack_radix(words[pos : pos + n_words], base, members.size)
        pos += n_words
    if pos != words.size:
        raise ValueError(f"decimal split words: expected {pos}, got {words.size}")
    if has_zero:
        e[zero] = 5 - EXP_MIN
    return _values_from_digits(index, e, negative, zero if has_zero else None).reshape(shape)


# ---------------------------------------------------------------------------------- public


_SAMPLE = 4096
"""Values :func:`encode` checks for being six-digit decimals before encoding them all."""


def _order(code: int) -> int:
    return 1 if code in (FLOAT_L1, DECIMAL_L1, SPLIT_L1) else 2


def _words(keys: np.ndarray, code: int) -> np.ndarray:
    """Words of ``code`` from its 3-D keys (float keys for 1/2, decimal keys otherwise)."""
    if keys.size == 0:
        return keys.ravel()
    if code in (SPLIT_L1, SPLIT_L2):
        return _split_encode(keys, _order(code))
    return _zigzag(_lorenzo(keys, _order(code))).ravel()


def encode_as(values: np.ndarray, code: int) -> np.ndarray | None:
    """Flat uint32 words of a 3-D float32 grid under encoding ``code``; ``None`` when the code
    does not apply (decimal codes on values that are not six-digit decimals)."""
    x = np.asarray(values, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"grid values must be 3-D, got shape {x.shape}")
    if code == RAW:
        return np.ascontiguousarray(x).view(np.uint32).ravel()
    if code in (FLOAT_L1, FLOAT_L2):
        return _words(_float_keys(x), code)
    if code in DECIMAL_CODES:
        keys = _decimal_keys(x)
        return None if keys is None else _words(keys.reshape(x.shape), code)
    raise ValueError(f"unknown encoding code {code}")


def encode(
    values: np.ndarray,
    size_of: Callable[[np.ndarray], int],
    codes: tuple[int, ...] = (FLOAT_L1, FLOAT_L2, *DECIMAL_CODES),
) -> tuple[int, np.ndarray]:
    """``(code, words)`` with the smallest ``size_of(words)`` (compressed bytes) among the
    applicable ``codes``. Decimal codes apply only to six-digit decimals; when one of them
    reproduces the values, float codes are not tried (they would keep the binary-rounding noise
    bits). The chosen words are decoded once and compared bit for bit with ``values`` (then the
    next smallest, the float codes, and finally raw float32), so what is stored always reads
    back exactly."""
    x = np.asarray(values, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"grid values must be 3-D, got shape {x.shape}")
    decimal_codes = [c for c in codes if c in DECIMAL_CODES]
    other_codes = [c for c in codes if c not in DECIMAL_CODES and c != RAW]
    raw = (RAW, np.ascontiguousarray(x).view(np.uint32).ravel())
    bits = x.view(np.uint32)

    def smallest_exact(candidates: list[tuple[int, np.ndarray]]) -> tuple[int, np.ndarray] | None:
        if x.size == 0:
            return candidates[0] if candidates else None
        if len(candidates) > 1:
            candidates.sort(key=lambda item: size_of(item[1]))
        for code, words in candidates:
            if np.array_equal(decode(words, code, x.shape).view(np.uint32), bits):
                return code, words
        return None

    # the decimal keys are checked on a sample only (native floats fail there at once); the
    # chosen words are checked in full below
    keys = None
    if decimal_codes and x.size and _decimal_keys(x.ravel()[:_SAMPLE]) is not None:
        keys = _decimal_keys(x, verify=False)
    if keys is not None:
        chosen = smallest_exact([(c, _words(keys.reshape(x.shape), c)) for c in decimal_codes])
        if chosen is not None:
            return chosen
    if other_codes:
        float_keys = _float_keys(x)
        chosen = smallest_exact([(c, _words(float_keys, c)) for c in other_codes])
        if chosen is not None:
            return chosen
    return raw  # asked for, or (never seen) no other code reproduced the values


def decode(words: np.ndarray, code: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Float32 grid of ``shape`` from the flat uint32 ``words`` of encoding ``code``."""
    if code not in ENCODINGS:
        raise ValueError(f"unknown encoding code {code}")
    if code in (SPLIT_L1, SPLIT_L2):
        order = 1 if code == SPLIT_L1 else 2
        if math.prod(shape) == 0:
            return np.empty(shape, np.float32)
        return _split_values(np.asarray(words, dtype=np.uint32), shape, order)
    w = np.asarray(words, dtype=np.uint32).reshape(shape)
    if code == RAW:
        return w.view(np.float32).copy()
    order = 1 if code in (FLOAT_L1, DECIMAL_L1) else 2
    keys = _unlorenzo(_unzigzag(w), order)  # _unzigzag allocates: ``words`` stays untouched
    if code in (FLOAT_L1, FLOAT_L2):
        return _float_from_keys(keys)
    return _decimal_values(keys)
