"""Starts, steers and ends training runs for the window, and feeds what they report into the Session."""
from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from cnnviz.gui.session import Session
from cnnviz.training.messages import (FAILED, FINISHED, PAUSED, RUNNING, STOPPED, EpochMetrics,
                                      Evaluation, FitResult, Saved, StateChanged, StepBatch, WeightsSnapshot)
from cnnviz.training.runner import TrainingJob
from cnnviz.gui.training_worker import TrainingWorker


_WINDOW_SLOTS = itertools.count(1)  # autosave folders of the windows of this process
_SLOT_PREFIX = "window-"
STALE_AUTOSAVE_DAYS = 7  # autosaves of ended windows that were declined or already reopened are kept this long


def app_data_dir() -> Path:
    """Where autosaves live (CNNVIZ_DATA_DIR overrides the user data folder; tests use it)."""
    override = os.environ.get("CNNVIZ_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("cnnviz", appauthor=False))


class TrainingController(QObject):
    """One run at a time: start (fresh or continuing), pause/resume/step/stop, save, clean shutdown."""

    progress_changed = Signal(object)  # StepMetrics: the latest step (for progress bar, ETA, images/s)
    run_finished = Signal(object)  # FitResult
    saved = Signal(str)  # path of a checkpoint the user asked for
    active_changed = Signal(bool)  # a run's thread started (True) or ended (False)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._thread: QThread | None = None
        self._worker: TrainingWorker | None = None
        self._pending_save: str | None = None
        self.last_checkpoint: Path | None = None  # the run's latest checkpoint on disk (autosave)
        self.last_result: FitResult | None = None
        self.resume_from: Path | None = None  # set when a saved run was opened: Train continues it
        # Each window autosaves into its own folder, so two windows training at once never overwrite each
        # other's autosave; the folder name carries the pid that tells a crash from a window still open.
        self.autosave_root = app_data_dir() / "autosave"
        self.autosave_dir = self.autosave_root / f"{_SLOT_PREFIX}{os.getpid()}-{next(_WINDOW_SLOTS)}"
        self.autosave_path = self.autosave_dir / "checkpoint.safetensors"
        self.marker_path = self.autosave_dir / "RUNNING"
        self._interrupted_marker: Path | None = None

    # -- state -----------------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True while a run's thread exists (running, paused, or ending)."""
        return self._thread is not None

    # -- commands --------------------------------------------------------------------------------------
    def start(self, paused: bool = False) -> None:
        """Train: continue the current run if it stopped early or was opened, else start a fresh one."""
        if self.active:
            return
        s = self.session
        recipe = s.recipe
        resume = None
        continuing = s.state in (STOPPED, FINISHED, FAILED) or self.resume_from is not None
        if continuing and (self.resume_from or self.last_checkpoint):
            resume = str(self.resume_from or self.last_checkpoint)
            done = len(s.history.epochs)
            if s.state == FINISHED or done >= recipe.train.epochs:
                recipe = recipe.replace(train__epochs=done + recipe.train.epochs)
        else:
            s.reset_history()
        job = TrainingJob(spec=s.spec.to_dict(), recipe=recipe, resume_from=resume,
                          autosave_path=str(self.autosave_path), start_paused=paused)
        self.resume_from = None
        self.autosave_path.parent.mkdir(parents=True, exist_ok=True)
        # the owner's pid: a marker of a process still running (another window training now) is no crash
        self.marker_path.write_text(f"{os.getpid()}\na run was in progress; this file is removed when it ends "
                                    "cleanly\n")
        self._worker = TrainingWorker(job)
        self._thread = QThread(self)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.message_received.connect(self._on_message)
        # direct: QThread.quit is thread-safe, and a queued call would wait for a GUI thread blocked in wait()
        self._worker.finished.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self._on_thread_finished)
        self._thread.start()
        s.set_state(PAUSED if paused else RUNNING)
        self.active_changed.emit(True)

    def pause(self) -> None:
        self._command("pause")

    def resume(self) -> None:
        self._command("resume")

    def step(self) -> None:
        """One batch: pauses a running run first; starts a paused run when idle."""
        if not self.active:
            self.start(paused=True)
        self._command("step")

    def stop(self) -> None:
        self._command("request_stop")

    def set_learning_rate(self, lr: float) -> None:
        self._command("set_learning_rate", lr)

    def set_batch_size(self, batch_size: int) -> None:
        self._command("set_batch_size", batch_size)

    def save(self, path: str) -> bool:
        """Save the run to `path`: asks the running process, or copies the last checkpoint.

        Returns False when there is nothing to save yet.
        """
        if self.active:
            self._pending_save = path
            self._command("save", path)
            return True
        if self.last_checkpoint is None or not self.last_checkpoint.exists():
            return False
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.copy")
        shutil.copyfile(self.last_checkpoint, tmp)
        os.replace(tmp, target)
        self.saved.emit(str(target))
        return True

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """Stop any run and wait for its thread (bounded). Safe to call more than once."""
        if self._worker is not None:
            self._worker.shutdown()
        thread = self._thread
        if thread is None:
            return True
        ended = thread.wait(timeout_ms)
        if ended:
            self._on_thread_finished()
        return ended

    def forget_run(self) -> None:
        """Reset: the next Train starts a fresh run."""
        self.last_checkpoint = None
        self.last_result = None
        self.resume_from = None

    def _command(self, name: str, *args) -> None:
        if self._worker is not None:
            self._worker.command(name, *args)

    # -- messages from the run -------------------------------------------------------------------------
    @Slot(object)
    def _on_message(self, message) -> None:
        s = self.session
        if isinstance(message, StepBatch):
            s.add_steps(message)
            self.progress_changed.emit(message.latest)
        elif isinstance(message, WeightsSnapshot):
            s.apply_snapshot(message)
            self._command("ack_snapshot")
        elif isinstance(message, EpochMetrics):
            s.add_epoch(message)
        elif isinstance(message, Evaluation):
            s.set_evaluation(message)
        elif isinstance(message, StateChanged):
            if message.state == "notice":
                s.message.emit("warning", message.message)
            elif message.state in (RUNNING, PAUSED):
                s.set_state(message.state)
        elif isinstance(message, Saved):
            if message.autosave:
                self.last_checkpoint = Path(message.path)
            elif message.path == self._pending_save:
                self._pending_save = None
                self.saved.emit(message.path)
        elif isinstance(message, FitResult):
            self.last_result = message
            if message.status == FAILED:  # the run went back to its last good state: so do the curves
                s.reset_history(s.history.truncated(message.steps, message.epochs_completed))
                s.message.emit("error", message.error or "training failed")
            s.set_state(message.status)
            self.run_finished.emit(message)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is None:
            return
        # `finished` comes just before the thread ends: let it end first (microseconds). The worker moved
        # itself back to this thread (worker_threads.py), so it is deleted here, never in its own thread.
        self._thread.wait()
        thread, worker, self._thread, self._worker = self._thread, self._worker, None, None
        thread.deleteLater()
        if worker is not None:
            worker.deleteLater()
        try:
            self.marker_path.unlink()
        except OSError:
            pass
        if self.session.state in (RUNNING, PAUSED):  # ended without a result (shutdown)
            self.session.set_state(STOPPED)
        self.active_changed.emit(False)

    def interrupted_run(self) -> Path | None:
        """The newest autosave of a run that did not end cleanly, if any (and old leftovers are pruned).

        Each window's run leaves a RUNNING marker beside its autosave while it trains; a marker whose
        process is still alive (this one, or another cnnviz training right now) is a run in progress, not
        an interrupted one. Older versions kept one autosave right in the autosave folder: also offered.
        """
        self._prune_stale_autosaves()
        found = []
        folders = [self.autosave_root] + sorted(self.autosave_root.glob(f"{_SLOT_PREFIX}*"))
        for folder in folders:
            marker, checkpoint = folder / "RUNNING", folder / "checkpoint.safetensors"
            if folder == self.autosave_dir or not (marker.is_file() and checkpoint.is_file()):
                continue
            if _process_alive(_marker_pid(marker)):
                continue
            try:
                found.append((checkpoint.stat().st_mtime, str(checkpoint), marker))
            except OSError:
                continue
        if not found:
            return None
        _, checkpoint, self._interrupted_marker = max(found)
        return Path(checkpoint)

    def clear_interrupted(self) -> None:
        """The interrupted run was offered: do not offer it again (its autosave stays until pruned)."""
        for marker in (self._interrupted_marker, self.marker_path):
            if marker is None:
                continue
            try:
                marker.unlink()
            except OSError:
                pass
        self._interrupted_marker = None

    def dispose(self) -> None:
        """The window closes cleanly: its autosave folder is of no further use (call after `shutdown`)."""
        if not self.active:
            shutil.rmtree(self.autosave_dir, ignore_errors=True)

    def _prune_stale_autosaves(self) -> None:
        """Remove the autosave folders of ended windows (no RUNNING marker, process gone) that are older than
        STALE_AUTOSAVE_DAYS: interrupted runs that were declined or reopened long ago."""
        limit = time.time() - STALE_AUTOSAVE_DAYS * 86400
        for folder in self.autosave_root.glob(f"{_SLOT_PREFIX}*"):
            try:
                if (folder == self.autosave_dir or (folder / "RUNNING").exists()
                        or _process_alive(_folder_pid(folder)) or folder.stat().st_mtime > limit):
                    continue
            except OSError:
                continue
            shutil.rmtree(folder, ignore_errors=True)


def _folder_pid(folder: Path) -> int | None:
    """The pid in an autosave folder's name ("window-PID-N")."""
    try:
        return int(folder.name[len(_SLOT_PREFIX):].split("-")[0])
    except ValueError:
        return None


def _marker_pid(path: Path) -> int | None:
    """The pid written in a RUNNING marker (None for an unreadable or older marker)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _process_alive(pid: int | None) -> bool:
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


__all__ = ["TrainingController", "app_data_dir"]
