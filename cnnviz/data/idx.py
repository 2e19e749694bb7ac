"""Read and write IDX files, the format of MNIST, Fashion-MNIST and KMNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the items in C order, big-endian. The published files are
gzip-compressed; we recognise gzip by its magic bytes, not by the file name, because users rename
files and some tools unpack them without dropping ``.gz``.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnnviz import limits
from cnnviz.errors import DataError
from cnnviz.files import human_size, open_regular

# IDX type code -> big-endian numpy dtype, as in the format's definition.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("=").kind + str(dtype.itemsize): code for code, dtype in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_TRAILING_COUNTED = 1 << 20  # bytes past the declared data decompressed to say how many there are


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a native-endian, writable array.

    Only a regular file is opened, and nothing beyond what the header declares is read or
    decompressed: the size the header announces (dimensions times item size, at most
    :data:`cnnviz.limits.MAX_IDX_BYTES` and :data:`cnnviz.limits.MAX_IDX_DIMS` dimensions) is checked
    before the data is read, and gzip is decompressed in bounded steps, so a small gzip that expands to
    gigabytes is refused as soon as it passes the declared size.

    Parameters
    ----------
    path
        The file. Gzip is detected from the content, so the name does not matter.

    Returns
    -------
    numpy.ndarray
        Shape from the header, dtype from the type code (uint8 for MNIST images and labels).

    Raises
    ------
    DataError
        The file is missing, not a regular file, too large, not IDX, truncated, has trailing bytes or is
        a corrupt gzip stream; the message names the file and what is wrong.
    """
    path = Path(path)
    f, size = open_regular(path, limits.MAX_IDX_BYTES, DataError, "IDX file")
    with f:
        try:
            compressed = f.read(2) == _GZIP_MAGIC
            f.seek(0)
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if not compressed:
            try:
                return _parse(f, path.name, size)
            except OSError as exc:
                raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                try:
                    return _parse(stream, path.name, None)
                except DataError:
                    # A damaged deflate stream can decode into a nonsense header before zlib notices: read a
                    # little further (bounded) so that a corrupt gzip is called one.
                    stream.read(_TRAILING_COUNTED)
                    raise
        except EOFError:
            raise DataError(f"{path.name}: truncated gzip file (the compressed data ends early)") from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise DataError(f"{path.name}: corrupt gzip file ({exc})") from None


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when the name ends with ``.gz``.

    The gzip header carries no time stamp or name, so the same array always gives the same bytes.

    Raises
    ------
    DataError
        The dtype has no IDX type code, or the shape cannot be stored.
    """
    path = Path(path)
    array = np.asarray(array)
    key = array.dtype.kind + str(array.dtype.itemsize)
    if key not in _CODES:
        raise DataError(f"{path.name}: IDX cannot store arrays of type {array.dtype}")
    if not 1 <= array.ndim <= 255 or any(d >= 2**32 for d in array.shape):
        raise DataError(f"{path.name}: IDX cannot store an array of shape {array.shape}")
    code = _CODES[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=9, mtime=0)
    try:
        path.write_bytes(payload)
    except OSError as exc:
        raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _parse(stream: BinaryIO, name: str, size: int | None) -> np.ndarray:
    """The array in ``stream``; ``size``: the plain file's size, or None for a gzip stream of unknown size."""
    head = stream.read(4)
    if len(head) < 4:
        raise DataError(f"{name}: not an IDX file: it holds only {len(head)} bytes")
    if head[0] != 0 or head[1] != 0:
        raise DataError(
            f"{name}: not an IDX file: it starts with bytes {head[0]:02x} {head[1]:02x}, expected 00 00"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{name}: unknown IDX data type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(f"{name}: the IDX header says the data has 0 dimensions")
    if ndim > limits.MAX_IDX_DIMS:
        raise DataError(f"{name}: the IDX header says the data has {ndim} dimensions; "
                        f"cnnviz reads at most {limits.MAX_IDX_DIMS}")
    header = 4 + 4 * ndim
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(
            f"{name}: truncated: the header announces {ndim} dimensions ({header} header bytes) "
            f"but the file holds only {4 + len(raw_dims)} bytes"
        )
    dims = tuple(int.from_bytes(raw_dims[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # Python integers: cannot wrap around
    shape = "x".join(str(d) for d in dims)
    if expected > limits.MAX_IDX_BYTES:
        raise DataError(f"{name}: the header says {shape} items of {dtype.itemsize} bytes "
                        f"({human_size(expected)}), more than cnnviz reads (at most "
                        f"{human_size(limits.MAX_IDX_BYTES)})")
    if size is not None and size - header != expected:  # plain file: known without reading the data
        held = size - header
        what = "truncated" if held < expected else "trailing bytes"
        raise DataError(f"{name}: {what}: header says {shape} ({expected} bytes) but the file holds {held}")
    data = stream.read(expected)
    if len(data) < expected:
        raise DataError(
            f"{name}: truncated: header says {shape} ({expected} bytes) but the file holds {len(data)}"
        )
    extra = len(stream.read(_TRAILING_COUNTED + 1))  # gzip: also checks the CRC at the stream's end
    if extra:
        held = f"{expected + extra}" if extra <= _TRAILING_COUNTED else f"more than {expected + _TRAILING_COUNTED}"
        raise DataError(f"{name}: trailing bytes: header says {shape} ({expected} bytes) but the file holds {held}")
    array = np.frombuffer(data, dtype=dtype).reshape(dims)
    # One copy makes the array writable (frombuffer over bytes is read-only) and native-endian.
    return array.astype(dtype.newbyteorder("="), copy=True)
