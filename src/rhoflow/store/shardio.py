"""Fast paths that read the store's own arrays with plain file I/O instead of through zarr.

zarr-python routes every read through its asyncio event loop thread; for one molecule
(~1 MB of words, three or four inner chunks) that costs several milliseconds more than the
work itself. The Zarr v3 sharding format is simple and specified (``sharding_indexed``: inner
chunks stored back to back, an index of ``(offset, nbytes)`` little-endian uint64 pairs per
inner chunk, here followed by its CRC32C, at the end of the shard file; ``2**64 - 1`` marks
an inner chunk that was not written because it holds only the fill value), so
:class:`DirectReader` reads exactly the bytes one molecule needs with plain file I/O and
decompresses them with the same Blosc codec. :func:`read_table` does the same for the small
single-chunk tables (Blosc numeric arrays and ``vlen-utf8`` + zstd strings), so opening a shard
is ~20 small file reads. Both accept only the exact metadata the store writer creates on a
local directory; for anything else they return ``None`` and the reader goes through zarr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.storage import LocalStore

_MISSING = np.uint64(2**64 - 1)

_NUMERIC = {"uint8", "uint32", "int32", "int64", "float64"}
_SPECIAL_FLOATS = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


def array_metadata(folder: Path) -> dict[str, Any]:
    """The parsed ``zarr.json`` of the array or group at ``folder``."""
    with open(folder / "zarr.json", "rb") as fh:
        return json.loads(fh.read())


def _regular_whole_chunk(meta: dict[str, Any]) -> bool:
    grid = meta.get("chunk_grid")
    shape = list(meta.get("shape", ()))
    if not _named(grid, "regular") or not _named(
        meta.get("chunk_key_encoding"), "default", separator="/"
    ):
        return False
    chunks = list(grid["configuration"].get("chunk_shape", ()))
    return len(chunks) == len(shape) and all(
        c >= max(n, 1) for c, n in zip(chunks, shape, strict=True)
    )


def _decode_vlen_utf8(raw: bytes, count: int) -> np.ndarray:
    """numcodecs VLenUTF8 layout: uint32 count, then per item uint32 length + UTF-8 bytes."""
    if int.from_bytes(raw[:4], "little") != count:
        raise ValueError("vlen-utf8 item count does not match the array shape")
    out = np.empty(count, dtype=object)
    pos = 4
    for i in range(count):
        n = int.from_bytes(raw[pos : pos + 4], "little")
        out[i] = raw[pos + 4 : pos + 4 + n].decode("utf-8")
        pos += 4 + n
    return out


def read_table(folder: Path, meta: dict[str, Any]) -> np.ndarray | None:
    """The whole single-chunk array at ``folder`` (``meta`` = its ``zarr.json``), or ``None``
    when its metadata is not what the store writer produces."""
    if meta.get("node_type") != "array" or not _regular_whole_chunk(meta):
        return None
    shape = tuple(int(n) for n in meta["shape"])
    dtype, codecs = meta.get("data_type"), list(meta.get("codecs", ()))
    if dtype in _NUMERIC:
        single_byte = np.dtype(dtype).itemsize == 1  # no endianness to declare
        bytes_ok = (
            _named(codecs[0], "bytes")
            if single_byte and len(codecs) == 2
            else (len(codecs) == 2 and _named(codecs[0], "bytes", endian="little"))
        )
        if not bytes_ok or not _named(codecs[1], "blosc"):
            return None
    elif dtype == "string":
        if len(codecs) != 2 or not _named(codecs[0], "vlen-utf8") or not _named(codecs[1], "zstd"):
            return None
    else:
        return None
    numpy_dtype = np.dtype(object if dtype == "string" else f"<{np.dtype(dtype).str[1:]}")
    if 0 in shape:
        return np.empty(shape, dtype=numpy_dtype)
    chunk = folder / "c" / "/".join("0" for _ in shape)
    try:
        with open(chunk, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:  # a chunk holding only the fill value is not written
        fill = meta.get("fill_value")
        fill = (
            _SPECIAL_FLOATS.get(fill, fill) if isinstance(fill, str) and dtype != "string" else fill
        )
        return np.full(shape, fill, dtype=numpy_dtype)
    if dtype == "string":
        n = int(np.prod(shape))
        return _decode_vlen_utf8(numcodecs.Zstd().decode(raw), n).reshape(shape)
    data = np.frombuffer(numcodecs.Blosc().decode(raw), dtype=numpy_dtype)
    return data.reshape(shape).astype(numpy_dtype.newbyteorder("="), copy=True)


def _named(codecs: Any, name: str, **config: Any) -> bool:
    if not isinstance(codecs, dict) or codecs.get("name") != name:
        return False
    given = codecs.get("configuration") or {}
    return all(given.get(k) == v for k, v in config.items())


class DirectReader:
    """Reads ``[lo, hi)`` of one 1-D uint32 array written by the store writer."""

    def __init__(self, folder: Path, shard_len: int, chunk_len: int, fill: int) -> None:
        self.folder = folder
        self.shard_len = shard_len
        self.chunk_len = chunk_len
        self.fill = fill
        self.per_shard = shard_len // chunk_len
        self._blosc = numcodecs.Blosc()

    @classmethod
    def for_array(cls, array: zarr.Array) -> DirectReader | None:
        """A direct reader if ``array`` has exactly the layout the writer creates, else None."""
        store = array.store
        if not isinstance(store, LocalStore):
            return None
        return cls.from_metadata(Path(store.root) / array.path, array.metadata.to_dict())

    @classmethod
    def from_metadata(cls, folder: Path, meta: dict[str, Any]) -> DirectReader | None:
        """A direct reader for the array at ``folder`` whose ``zarr.json`` is ``meta``, if it
        has exactly the layout the writer creates, else None."""
        codecs = list(meta.get("codecs") or ())
        if (
            meta.get("node_type", "array") != "array"
            or meta.get("data_type") != "uint32"
            or len(meta.get("shape", ())) != 1
            or not _named(meta.get("chunk_grid"), "regular")
            or not _named(meta.get("chunk_key_encoding"), "default", separator="/")
            or len(codecs) != 1
            or not _named(codecs[0], "sharding_indexed", index_location="end")
        ):
            return None
        config = codecs[0]["configuration"]
        inner, index = list(config.get("codecs", ())), list(config.get("index_codecs", ()))
        if (
            len(inner) != 2
            or not _named(inner[0], "bytes", endian="little")
            or not _named(inner[1], "blosc")
            or len(index) != 2
            or not _named(index[0], "bytes", endian="little")
            or not _named(index[1], "crc32c")
        ):
            return None
        shard_len = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
        chunk_len = int(config["chunk_shape"][0])
        if chunk_len <= 0 or shard_len % chunk_len:
            return None
        return cls(folder, shard_len, chunk_len, int(meta["fill_value"]))

    def _index(self, fh: Any, path: Path) -> np.ndarray:
        size = self.per_shard * 16
        fh.seek(-(size + 4), 2)
        raw = fh.read(size + 4)
        if int.from_bytes(raw[size:], "little") != google_crc32c.value(raw[:size]):
            raise OSError(f"{path}: shard index checksum mismatch")
        return np.frombuffer(raw[:size], dtype="<u8").reshape(self.per_shard, 2)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Words ``[lo, hi)`` as a new uint32 array."""
        out = np.empty(hi - lo, dtype=np.uint32)
        pos = lo
        while pos < hi:
            shard = pos // self.shard_len
            shard_end = min(hi, (shard + 1) * self.shard_len)
            path = self.folder / "c" / str(shard)
            try:
                fh = open(path, "rb")
            except FileNotFoundError:  # a shard holding only the fill value is not written
                out[pos - lo : shard_end - lo] = self.fill
                pos = shard_end
                continue
            with fh:
                index = self._index(fh, path)
                while pos < shard_end:
                    chunk = pos // self.chunk_len
                    start = chunk * self.chunk_len
                    stop = min(shard_end, start + self.chunk_len)
                    offset, nbytes = index[chunk - shard * self.per_shard]
                    if offset == _MISSING and nbytes == _MISSING:
                        out[pos - lo : stop - lo] = self.fill
                    else:
                        fh.seek(int(offset))
                        words = np.frombuffer(self._blosc.decode(fh.read(int(nbytes))), "<u4")
                        out[pos - lo : stop - lo] = words[pos - start : stop - start]
                    pos = stop
        return out
