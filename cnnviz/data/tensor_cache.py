"""A cache of decoded datasets as safetensors files, so a folder of images is decoded only once.

A cache entry is named by a key the caller derives from what it decoded (for a folder of images: every
file's path, size and modification time, and the size rule), so a changed, added or removed file makes a
new key and the stale entry is not found (:func:`prune` removes it). Entries are written atomically (a temporary file
renamed into place) and read back through the checked open of :mod:`cnnviz.files`; nothing is unpickled.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from cnnviz import limits
from cnnviz.errors import DataError
from cnnviz.files import open_regular, read_regular

_VERSION = "1"  # bump when the stored layout changes


def cache_path(folder: str | os.PathLike[str], key: str) -> Path:
    """Where the entry for ``key`` (a hex digest) lives in ``folder``."""
    return Path(folder) / f"{key}.v{_VERSION}.safetensors"


def read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path``, or None when there is no usable entry."""
    from safetensors.numpy import load as load_arrays

    if not path.is_file():
        return None
    try:
        return load_arrays(read_regular(path, limits.MAX_IDX_BYTES * 2, DataError, "cache file"))
    except Exception:  # noqa: BLE001 - a damaged cache entry is a miss: decode the images again
        return None


def cached_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    """The shape of every array stored at ``path``, from its header alone; None when there is no usable entry."""
    header = _header(path)
    return None if header is None else header[0]


def prune(path: Path, key: str, value: str) -> int:
    """Delete the other entries beside ``path`` whose metadata ``key`` is ``value`` (e.g. the same folder's
    entries for files that have changed since); returns how many went."""
    gone = 0
    try:
        entries = list(path.parent.glob(f"*.v{_VERSION}.safetensors"))
    except OSError:
        return 0
    for entry in entries:
        header = _header(entry) if entry != path else None
        if header is not None and header[1].get(key) == value:
            try:
                entry.unlink()
                gone += 1
            except OSError:
                pass
    return gone


def _header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]] | None:
    """(the shape of every array, the metadata) of the entry at ``path``, read from its header alone."""
    import json

    if not path.is_file():
        return None
    try:
        f, size = open_regular(path, limits.MAX_IDX_BYTES * 2, DataError, "cache file")
        with f:
            length = int.from_bytes(f.read(8), "little")
            if not 0 < length <= min(size - 8, limits.MAX_CHECKPOINT_HEADER_BYTES):
                return None
            header = json.loads(f.read(length))
        shapes = {k: tuple(int(d) for d in v["shape"]) for k, v in header.items() if k != "__metadata__"}
        meta = {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}
        return shapes, meta
    except Exception:  # noqa: BLE001 - a damaged entry is a miss
        return None


def write_cache(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> bool:
    """Store ``arrays`` at ``path`` atomically; False (and nothing written) when the cache is not writable."""
    from safetensors.numpy import save

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".safetensors")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(blob)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True
