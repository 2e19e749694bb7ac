"""The run folder: where a run lives on disk, the same for `cnnviz train --out` and the window's autosave.

A run folder holds the run's checkpoint, its metrics as CSV and a JSON summary, and, while a process
trains into it, a RUNNING marker. The marker is locked (``flock``) by the process that owns the run,
so a second trainer cannot write into the same folder, and a marker that nobody holds any more is the
trace of a run that did not end cleanly (a crash, a kill, a power cut): the window offers to reopen it.

No Qt here: the CLI, the window and the tests use the same rules.
"""
from __future__ import annotations

import errno
import itertools
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
        except (FileExistsError, NotADirectoryError):
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

    # -- writing ---------------------------------------------------------------------------------------
    def write(self, checkpoint, summary: dict) -> None:
        """Write the run: its checkpoint, per-epoch and per-step CSV, and the JSON summary, each atomically."""
        from cnnviz.training.checkpoint import save_checkpoint

        save_checkpoint(self.checkpoint, checkpoint)
        write_text_atomic(self.path / METRICS_NAME, checkpoint.history.to_csv())
        write_text_atomic(self.path / STEPS_NAME, checkpoint.history.steps_csv())
        write_text_atomic(self.path / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")

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


def run_summary(name: str, trainer, result=None) -> dict:
    """What `run.json` says of a run: what it is, how far it got and how it ended (`result` None: still going)."""
    evaluation = result.evaluation if result is not None else trainer.last_evaluation
    summary = {
        "preset": name, "params": sum(p.numel() for p in trainer.model.parameters()),
        "epochs": trainer.epoch, "steps": trainer.step_count, "status": str(result.status) if result else "running",
        "dataset": trainer.data.name, "test_accuracy": evaluation.accuracy if evaluation is not None else None,
        "input_shape": list(trainer.spec.input_shape),  # (C, H, W) of the data's images
        "world_size": getattr(trainer, "world_size", 1),  # the processes that trained it together (DDP)
    }
    if result is not None:
        summary.update(seconds=round(result.seconds, 3), images_per_second=round(result.images_per_second, 1),
                       error=result.error)
    return summary


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file atomically (a crash leaves the old file or the new one, never half)."""
    from cnnviz.training.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def app_data_dir() -> Path:
    """The user's data folder of cnnviz, where the window's autosaves live (CNNVIZ_DATA_DIR overrides it;
    tests use that)."""
    override = os.environ.get("CNNVIZ_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("cnnviz", appauthor=False))


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
    from cnnviz.files import read_regular

    try:  # a regular file of a few bytes only: a FIFO put there must not block the window
        return int(read_regular(path, 4096, RunFolderError, "marker").split()[0])
    except (RunFolderError, ValueError, IndexError):
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


class AutosaveSlots:
    """The window's autosaves: one run folder per window (``window-PID-N``) under `root`, so two windows
    training at once never overwrite each other's; the pid in the name tells a crash from a window still open.

    A slot whose RUNNING marker no live process owns holds an interrupted run, which the window offers to
    reopen once; slots of ended windows older than `keep_days` are pruned."""

    PREFIX = "window-"
    _numbers = itertools.count(1)  # the windows of this process

    def __init__(self, root: str | os.PathLike, keep_days: float = 7.0) -> None:
        self.root = Path(root)
        self.keep_days = keep_days
        self.own = RunFolder(self.root / f"{self.PREFIX}{os.getpid()}-{next(self._numbers)}")

    def interrupted(self) -> RunFolder | None:
        """The newest slot (not this window's) whose run did not end cleanly and left a checkpoint.

        Older versions kept one autosave right in `root`: it is offered too."""
        self.prune()
        found = []
        for folder in [self.root] + sorted(self.root.glob(f"{self.PREFIX}*")):
            run = RunFolder(folder)
            if folder == self.own.path or not run.checkpoint.is_file() or not run.interrupted():
                continue
            try:
                found.append((run.checkpoint.stat().st_mtime, str(folder)))
            except OSError:
                continue
        return RunFolder(max(found)[1]) if found else None

    def prune(self) -> None:
        """Remove the slots of ended windows (no marker, process gone) older than `keep_days`: interrupted runs
        that were declined or reopened long ago."""
        import shutil

        limit = time.time() - self.keep_days * 86400
        for folder in self.root.glob(f"{self.PREFIX}*"):
            try:
                if (folder == self.own.path or (folder / MARKER_NAME).exists()
                        or process_alive(_slot_pid(folder)) or folder.stat().st_mtime > limit):
                    continue
            except OSError:
                continue
            shutil.rmtree(folder, ignore_errors=True)

    def dispose(self) -> None:
        """The window closes cleanly: its slot is of no further use."""
        import shutil

        self.own.release()
        shutil.rmtree(self.own.path, ignore_errors=True)


def _slot_pid(folder: Path) -> int | None:
    """The pid in a slot's name ("window-PID-N")."""
    try:
        return int(folder.name[len(AutosaveSlots.PREFIX):].split("-")[0])
    except ValueError:
        return None
