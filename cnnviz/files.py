"""Opening a file a user named, safely: regular files only, size-checked before anything is read.

A named pipe (FIFO) would block ``open`` forever, ``/dev/zero`` never ends, and a sparse file can
claim gigabytes it does not hold on disk. So the path is checked with ``os.stat`` first, opened with
``O_NONBLOCK`` (a FIFO swapped in after the check still cannot block the open), and checked again on
the open descriptor before a byte is read.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from cnnviz.errors import CnnvizError

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def open_regular(
    path: str | os.PathLike[str], limit: int, error: type[CnnvizError], what: str = "file",
) -> tuple[BinaryIO, int]:
    """Open ``path`` for reading if it is a regular file of at most ``limit`` bytes.

    Parameters
    ----------
    limit
        The largest size accepted, in bytes.
    error
        The :class:`~cnnviz.errors.CnnvizError` subclass raised for every problem.
    what
        What the file should be, for messages ("IDX file", "run file", ...).

    Returns
    -------
    (file, size)
        A binary file object (the caller closes it) and the file's size in bytes.

    Raises
    ------
    error
        Not found, a folder, a FIFO / device / socket, larger than ``limit``, or unreadable.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:  # e.g. a NUL byte in the name
        raise error(f"{str(path)[:200]!r}: not a usable file name ({exc})") from None
    _check(path, info, limit, error, what)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)  # the file actually opened, in case the path changed since the stat
        _check(path, info, limit, error, what)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def read_regular(
    path: str | os.PathLike[str], limit: int, error: type[CnnvizError], what: str = "file",
) -> bytes:
    """The content of ``path``, checked as :func:`open_regular` does; never more than ``limit`` bytes."""
    f, _ = open_regular(path, limit, error, what)
    with f:
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:  # it grew after the check
        raise error(_too_large(Path(path), len(data), limit, what))
    return data


def human_size(n: int) -> str:
    """``n`` bytes as e.g. ``3.0 GiB``, ``47.0 MiB``, ``512 bytes`` (EiB at most: 64.0 EiB is 2^66)."""
    for unit, size in (("EiB", 1 << 60), ("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20),
                       ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} bytes"


def _check(path: Path, info: os.stat_result, limit: int, error: type[CnnvizError], what: str) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise error(f"{path}: is a folder, not {_article(what)} {what}")
    if not stat.S_ISREG(mode):
        raise error(f"{path}: is {_kind(mode)}, not a regular file; cnnviz reads only regular files")
    if info.st_size > limit:
        raise error(_too_large(path, info.st_size, limit, what))


def _too_large(path: Path, size: int, limit: int, what: str) -> str:
    return (f"{path}: is {human_size(size)}, more than cnnviz reads from {_article(what)} {what} "
            f"(at most {human_size(limit)})")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
