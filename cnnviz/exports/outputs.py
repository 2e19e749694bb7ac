"""Where an export writes, checked before any work; and the optional packages an export needs.

An export may take a while (the exact weights of a step are recomputed at training speed), so every output
path is checked first: a file name that is a folder, a path under a file, a folder that cannot be created
or written are each one :class:`ExportError` line before anything runs. Files are then written under a
temporary name and renamed, so a failed export never leaves half a file under the name asked for.
"""
from __future__ import annotations

import importlib
import os
from contextlib import suppress
from pathlib import Path
from types import ModuleType

from cnnviz.errors import CnnvizError
from cnnviz.training.rundir import _reason as reason


class ExportError(CnnvizError):
    """An export cannot be written: a bad output path, a missing package, a step the run cannot give."""


def need(what: str, *modules: tuple[str, str]) -> list[ModuleType]:
    """Import the optional modules an export needs, given as ``(module, pip package)`` pairs.

    Raises ExportError naming every missing package and the one pip line that installs them all."""
    found, missing = [], []
    for module, package in modules:
        try:
            found.append(importlib.import_module(module))
        except ImportError:
            missing.append(package)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ExportError(f"{what} needs {' and '.join(missing)}, which {verb} not installed: "
                          f"pip install {' '.join(missing)}")
    return found


def output_file(path: str | os.PathLike, option: str, suffix: str) -> Path:
    """The absolute path of a file an export will write, checked: not a folder, its folder created and
    writable, and no existing file of another kind replaced (``--onnx RUN/checkpoint.safetensors`` must
    not destroy the run)."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise ExportError(f"{path} is a folder; {option} needs a file name (e.g. {path / ('model' + suffix)})")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise ExportError(f"{path} exists and is not a regular file; choose another name for {option}")
        if path.suffix.lower() != suffix:
            raise ExportError(f"{path} exists and is not a {suffix} file; it is not replaced: choose another "
                              f"name for {option}")
    _writable_folder(path.parent, option)
    return path


def output_folder(path: str | os.PathLike, option: str) -> Path:
    """The absolute path of a folder an export will write into, created and proved writable."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ExportError(f"{path} is a file; {option} needs a folder")
    _writable_folder(path, option)
    return path


def _writable_folder(folder: Path, option: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ExportError(f"{folder}: a part of this path is a file, not a folder ({option})") from None
    except OSError as exc:
        raise ExportError(f"cannot create the folder {folder} ({option}): {reason(exc)}") from None
    probe = folder / f".cnnviz-write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"cnnviz checks that it can write here before exporting\n")
    except OSError as exc:
        raise ExportError(f"cannot write into {folder} ({option}): {reason(exc)}") from None
    finally:
        with suppress(OSError):
            probe.unlink()


def write_bytes(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` atomically (temporary file, fsync, rename); an OSError is an ExportError."""
    from cnnviz.training.checkpoint import atomic_write_bytes

    try:
        atomic_write_bytes(path, payload)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {reason(exc)}") from None
