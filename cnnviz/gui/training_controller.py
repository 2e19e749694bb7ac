"""Starts, steers and ends training runs for the window, and feeds what they report into the Session."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from cnnviz.gui.session import Session
from cnnviz.errors import CnnvizError
from cnnviz.training.messages import (FAILED, FINISHED, PAUSED, RUNNING, STOPPED, AckSnapshot, EpochMetrics,
                                      Evaluation, FitResult, Notice, OperateFilter, Pause, Resume, Saved,
                                      SaveCheckpoint, Rewound, SetBatchSize, SetLearningRate, StateChanged, Step,
                                      StepBatch, Stop, Surgery, WeightsSnapshot)
from cnnviz.training.rundir import AutosaveSlots, RunFolder, app_data_dir
from cnnviz.training.runner import TrainingJob
from cnnviz.gui.training_worker import TrainingWorker
from cnnviz.gui.worker_threads import end_worker, start_worker


STALE_AUTOSAVE_DAYS = 7  # autosaves of ended windows that were declined or already reopened are kept this long


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
        # Each window autosaves into a run folder of its own (cnnviz.training.rundir.AutosaveSlots)
        self.autosaves = AutosaveSlots(app_data_dir() / "autosave", keep_days=STALE_AUTOSAVE_DAYS)
        self.run_folder = self.autosaves.own
        self.autosave_path = self.run_folder.checkpoint
        self.marker_path = self.run_folder.marker
        self.run_name = "run"  # what the run is called in its folder's summary (the window sets the preset)
        self.following: Path | None = None  # the run folder followed (written by another process), if any
        self.job_threads: int | None = None  # torch threads of the training process (None: cores - 1)
        self._offered: RunFolder | None = None

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
            s.set_surgeries(())
        self.run_folder = self._folder_for(resume)
        job = TrainingJob(spec=s.spec.to_dict(), recipe=recipe, resume_from=resume, threads=self.job_threads,
                          run_dir=str(self.run_folder.path), name=self.run_name, start_paused=paused)
        self.resume_from = None
        try:  # the marker, locked while the run lasts, tells a crash from a run still going
            self.run_folder.acquire()
        except CnnvizError as exc:
            s.message.emit("warning", f"the autosave folder cannot be used ({exc}); this run is not autosaved")
        self._worker = TrainingWorker(job)
        self._worker.message_received.connect(self._on_message)
        self._thread = start_worker(self._worker, self, self._on_thread_finished)
        s.set_state(PAUSED if paused else RUNNING)
        self.active_changed.emit(True)

    def _folder_for(self, resume: str | None) -> RunFolder:
        """Where the run records itself. Continuing a run folder that has a timeline goes on in that folder
        (as `cnnviz train --resume` does), so its timeline stays whole; anything else records into the
        window's own autosave folder, emptied first for a fresh run."""
        own = self.autosaves.own
        if resume is not None:
            parent = Path(resume).parent
            if parent != own.path and (parent / "events.jsonl").is_file():
                return RunFolder(parent)
            return own
        if own.path.exists():
            shutil.rmtree(own.path, ignore_errors=True)  # the last run's timeline is not this run's
        return own

    def follow(self, path: str | os.PathLike) -> bool:
        """Show a run that another process is writing into `path`, live; it takes no commands, and ending here
        (Stop following, Reset, closing the window) leaves that process training."""
        if self.active:
            return False
        from cnnviz.timeline.follow import RunFollower

        self.session.reset_history()
        self.following = Path(path)
        self.resume_from = None
        self.last_checkpoint = None
        self._worker = TrainingWorker(source=lambda: RunFollower(path))
        self._worker.message_received.connect(self._on_message)
        self._thread = start_worker(self._worker, self, self._on_thread_finished)
        self.session.set_state(RUNNING)
        self.active_changed.emit(True)
        return True

    def pause(self) -> None:
        self._command(Pause())

    def resume(self) -> None:
        self._command(Resume())

    def step(self) -> None:
        """One batch: pauses a running run first; starts a paused run when idle."""
        if not self.active:
            self.start(paused=True)
        self._command(Step())

    def stop(self) -> None:
        self._command(Stop())

    def set_learning_rate(self, lr: float) -> None:
        self._command(SetLearningRate(lr))

    def set_batch_size(self, batch_size: int) -> None:
        self._command(SetBatchSize(batch_size))

    def operate_filter(self, layer: str, index: int, action: str) -> bool:
        """Ask the run this window trains to zero / freeze / unfreeze / re-initialise a filter before its next
        batch. False (and a message) when there is no such run: a followed run belongs to another process."""
        if not self.active or self.following is not None:
            self.session.message.emit("info", "Filter surgery works on a run this window is training: press Train "
                                              "(or Pause), then right-click a filter.")
            return False
        self._command(OperateFilter(layer, int(index), action))
        return True

    def save(self, path: str) -> bool:
        """Save the run to `path`: asks the running process, or copies the last checkpoint.

        Returns False when there is nothing to save yet.
        """
        if self.active:
            self._pending_save = path
            self._command(SaveCheckpoint(path))
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

    def _command(self, command) -> None:
        if self._worker is not None:
            self._worker.command(command)

    # -- messages from the run -------------------------------------------------------------------------
    @Slot(object)
    def _on_message(self, message) -> None:
        s = self.session
        if isinstance(message, StepBatch):
            s.add_steps(message)
            self.progress_changed.emit(message.latest)
        elif isinstance(message, WeightsSnapshot):
            s.apply_snapshot(message)
            self._command(AckSnapshot())
        elif isinstance(message, EpochMetrics):
            s.add_epoch(message)
        elif isinstance(message, Evaluation):
            s.set_evaluation(message)
        elif isinstance(message, Notice):
            s.message.emit(message.level, message.text)
        elif isinstance(message, StateChanged):
            if message.state in (RUNNING, PAUSED):
                s.set_state(message.state)
        elif isinstance(message, Saved):
            if message.autosave:
                self.last_checkpoint = Path(message.path)
            elif message.path == self._pending_save:
                self._pending_save = None
                self.saved.emit(message.path)
        elif isinstance(message, Surgery):
            s.set_surgeries(message.operations)
        elif isinstance(message, Rewound):  # a followed run went back to its last good state
            s.reset_history(s.history.truncated(message.steps, message.epochs))
        elif isinstance(message, FitResult):
            self.last_result = message
            if self.following is not None and (self.following / "checkpoint.safetensors").is_file():
                self.last_checkpoint = self.following / "checkpoint.safetensors"  # Train continues it here
            if message.status == FAILED:  # the run went back to its last good state: so do the curves
                s.reset_history(s.history.truncated(message.steps, message.epochs_completed))
                s.message.emit("error", message.error or "training failed")
            s.set_state(message.status)
            self.run_finished.emit(message)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is None:
            return
        thread, worker, self._thread, self._worker = self._thread, self._worker, None, None
        end_worker(thread, worker)
        if self.following is None:
            self.run_folder.release()  # ended cleanly: the marker goes
        self.following = None
        if self.session.state in (RUNNING, PAUSED):  # ended without a result (shutdown)
            self.session.set_state(STOPPED)
        self.active_changed.emit(False)

    def interrupted_run(self) -> Path | None:
        """The checkpoint of the newest autosave of a run that did not end cleanly, if any (old leftovers are
        pruned on the way). A run another live window is training is no interrupted run."""
        self._offered = self.autosaves.interrupted()
        return self._offered.checkpoint if self._offered is not None else None

    def clear_interrupted(self) -> None:
        """The interrupted run was offered: do not offer it again (its autosave stays until pruned)."""
        if self._offered is not None:
            try:
                self._offered.marker.unlink()
            except OSError:
                pass
        self._offered = None

    def dispose(self) -> None:
        """The window closes cleanly: its autosave folder is of no further use (call after `shutdown`)."""
        if not self.active:
            self.autosaves.dispose()


__all__ = ["TrainingController", "app_data_dir"]
