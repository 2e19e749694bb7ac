"""The run folder: where a run lives on disk, the same for `cnnviz train --out` and the window's autosave.

A run folder holds the run's checkpoint, its metrics as CSV and a JSON summary, and, while a process
trains into it, a RUNNING marker. The marker is locked (``flock``) by the process that owns the run,
so a second trainer cannot write into the same folder, and a marker that nobody holds any more is the
trace of a run that did not end cleanly (a crash, a kill, a power cut): the window offers to reopen it.

No Qt here: the CLI, the window and the tests use the same rules.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time
from contextlib import suppress
from pathlib import Path

from cnnviz.errors import CnnvizError

CHECKPOINT_NAME = "checkpoint.safetensors"
METRICS_NAME = "metrics.csv"  # per-epoch figures
STEPS_NAME = "steps.csv"  # per-step loss, accuracy and learning rate
SUMMARY_NAME = "run.json"  # what the run is and how it ended
MARKER_NAME = "RUNNING"  # present (and locked) while a process trains into the folder
RUN_FILES = (CHECKPOINT_NAME, METRICS_NAME, STEPS_NAME, SUMMARY_NAME)

try:  # POSIX advisory locks; released by the kernel when the process dies, however it dies
    import fcntl
except ImportError:  # pragma: no cover (Windows: the marker's pid is the only evidence)
    fcntl = None


class RunFolderError(CnnvizError):
    """A run folder cannot be used (not a folder, not writable, already holds a run, in use)."""


class RunFolder:
    """One run's folder. Nothing is created until :meth:`prepare` or :meth:`acquire` is called."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).absolute()
        self._lock_fd: int | None = None

    # -- what is there ---------------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def marker(self) -> Path:
        return self.path / MARKER_NAME

    def holds_run(self) -> bool:
        """True when the folder holds a saved run (any of the run files)."""
        return any((self.path / name).exists() for name in RUN_FILES)

    # -- before a run starts -----------------------------------------------------------------------------
    def prepare(self) -> "RunFolder":
        """Create the folder if needed and prove it writable, before any work starts.

        Raises RunFolderError for an existing file, a path under a file, a folder that cannot be created
        or written (read-only, permissions, full disk)."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"{path} is a file, not a run folder; choose a folder for --out")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RunFolderError(f"{path}: a part of this path is a file, not a folder") from None
        except NotADirectoryError:
            raise RunFolderError(f"{path}: a part of this path is a file, not a folder") from None
        except OSError as exc:
            raise RunFolderError(f"cannot create the run folder {path}: {_reason(exc)}") from None
        probe = path / f".cnnviz-write-test-{os.getpid()}"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"cnnviz checks that it can write here before training\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise RunFolderError(f"cannot write into the run folder {path}: {_reason(exc)}") from None
        finally:
            with suppress(OSError):
                probe.unlink()
        return self

    def acquire(self) -> "RunFolder":
        """Create and lock the RUNNING marker: this process now owns the folder.

        Raises RunFolderError when another live process trains into it."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.marker, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunFolderError(f"cannot create {self.marker}: {_reason(exc)}") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunFolderError(f"{self.path} is in use: {self._owner_text()} is training into it. "
                                         f"Wait for it to end or choose another folder.") from None
                raise RunFolderError(f"cannot lock {self.marker}: {_reason(exc)}") from None
        else:  # pragma: no cover
            owner = read_marker_pid(self.marker)
            if owner is not None and owner != os.getpid() and process_alive(owner):
                os.close(fd)
                raise RunFolderError(f"{self.path} is in use by process {owner}")
        note = (f"{os.getpid()}\n{socket.gethostname()}\n{time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
                "a run is in progress; this file is removed when it ends cleanly\n").encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, note, 0)
        except OSError:
            pass  # the lock is what counts; the text only names the owner for messages
        self._lock_fd = fd
        return self

    def release(self, remove_marker: bool = True) -> None:
        """The run ended cleanly: remove the marker and drop the lock (safe to call twice)."""
        if remove_marker and self._lock_fd is not None:
            with suppress(OSError):
                self.marker.unlink()
        if self._lock_fd is not None:
            with suppress(OSError):
                os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def __enter__(self) -> "RunFolder":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -- after a run ended -------------------------------------------------------------------------------
    def in_use(self) -> bool:
        """True while a live process owns the folder (holds its marker's lock, or, where locks are not
        available, wrote a marker with a pid that is alive)."""
        if not self.marker.is_file():
            return False
        if self._lock_fd is not None:
            return True
        if fcntl is not None:
            try:
                fd = os.open(self.marker, os.O_RDONLY)
            except OSError:
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True  # someone holds it
            finally:
                os.close(fd)
        return process_alive(read_marker_pid(self.marker))

    def interrupted(self) -> bool:
        """True for a run that did not end cleanly: its marker is still there and no live process owns it."""
        return self.marker.is_file() and not self.in_use()

    def _owner_text(self) -> str:
        pid = read_marker_pid(self.marker)
        return f"process {pid}" if pid is not None else "another process"


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file atomically (a crash leaves the old file or the new one, never half)."""
    from cnnviz.training.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2) + "\n"


def rescue_folder(name: str) -> Path:
    """A fresh folder in the user cache for a run that could not be saved where it was asked to."""
    import platformdirs

    root = Path(os.environ.get("CNNVIZ_RESCUE_DIR") or
                Path(platformdirs.user_cache_dir("cnnviz", appauthor=False)) / "rescued-runs")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = root / (f"{name}-{stamp}" + (f"-{n}" if n else ""))
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise RunFolderError(f"cannot create a rescue folder under {root}")


def read_marker_pid(path: Path) -> int | None:
    """The pid written on the first line of a RUNNING marker (None when unreadable)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def process_alive(pid: int | None) -> bool:
    """True when process `pid` exists on this machine (this process counts)."""
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return True


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EROFS,):
        return "the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)
