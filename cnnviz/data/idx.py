"""Read and write IDX files, the format of MNIST, Fashion-MNIST and KMNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the items in C order, big-endian. The published files are
gzip-compressed; we recognise gzip by its magic bytes, not by the file name, because users rename
files and some tools unpack them without dropping ``.gz``.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from cnnviz.errors import DataError

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


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a native-endian, writable array.

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
        The file is missing, unreadable, not IDX, truncated, has trailing bytes or is a corrupt gzip
        stream; the message names the file and what is wrong.
    """
    path = Path(path)
    data = _read_bytes(path)
    name = path.name
    if len(data) < 4:
        raise DataError(f"{name}: not an IDX file: it holds only {len(data)} bytes")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{name}: not an IDX file: it starts with bytes {data[0]:02x} {data[1]:02x}, expected 00 00"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{name}: unknown IDX data type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(f"{name}: the IDX header says the data has 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{name}: truncated: the header announces {ndim} dimensions ({header} header bytes) "
            f"but the file holds only {len(data)} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    held = len(data) - header
    if held != expected:
        what = "truncated" if held < expected else "trailing bytes"
        shape = "x".join(str(d) for d in dims)
        raise DataError(
            f"{name}: {what}: header says {shape} ({expected} bytes) but the file holds {held}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    # One copy makes the array writable (frombuffer over bytes is read-only) and native-endian.
    return array.astype(dtype.newbyteorder("="), copy=True)


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


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzip; every failure as a DataError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an IDX file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise DataError(f"{path.name}: truncated gzip file (the compressed data ends early)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path.name}: corrupt gzip file ({exc})") from None
