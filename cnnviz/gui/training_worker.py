"""The window's training thread: it drives a training *process* and relays its messages as Qt signals.

The recipe of superqt/napari: a parentless QObject moved to a QThread, `started -> run`,
`finished -> quit`, `deleteLater` on both (the worker from the GUI thread, see worker_threads.py). Control arrives as thread-safe method calls (a queue the
loop drains), never as signals into the busy loop.
"""
from __future__ import annotations

import queue
import threading

from PySide6.QtCore import QObject, Signal, Slot

from cnnviz.gui.worker_threads import return_to_gui_thread
from cnnviz.training.messages import FAILED, Command, FitResult
from cnnviz.training.runner import TrainingJob, TrainingProcess


class TrainingWorker(QObject):
    """Starts the child process, forwards commands to it and emits every message it sends."""

    message_received = Signal(object)  # a plain-data message from cnnviz.training.messages
    finished = Signal()

    def __init__(self, job: TrainingJob | None = None, source=None) -> None:
        """Drive a training process for `job`, or poll `source`, a factory of a MessageSource (a run folder
        written by another process: it takes no commands, and ending here leaves that process training)."""
        super().__init__()
        self.job, self.source_factory = job, source
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._shutdown = threading.Event()

    def command(self, command: Command) -> None:
        """Queue a command (cnnviz.training.messages: Pause, Step, SaveCheckpoint, ...) for the process.
        Safe from any thread."""
        self._commands.put(command)

    def shutdown(self) -> None:
        """Stop the run and end the loop (safe from any thread)."""
        self._shutdown.set()

    @Slot()
    def run(self) -> None:
        source = None
        try:
            if self.source_factory is not None:
                source = self.source_factory()
            else:
                source = TrainingProcess(self.job)
                source.start()
            while not source.finished:
                if self._shutdown.is_set():
                    break  # the `finally` below ends it
                self._drain_commands(source)
                for message in source.poll(timeout=0.02):
                    self.message_received.emit(message)
        except Exception as exc:  # never let the thread die silently: the window must learn the run ended
            what = "follow the run" if self.source_factory is not None else "run training"
            self.message_received.emit(FitResult(FAILED, 0, 0, 0.0, 0.0, f"could not {what}: {exc}"))
        finally:
            try:
                if source is not None:
                    self._end(source)
            finally:
                return_to_gui_thread(self)  # deleted there, never in this thread (see worker_threads.py)
                self.finished.emit()  # whatever happened, the window must learn that the thread is done

    @staticmethod
    def _end(source) -> None:
        """A training process still going is stopped (bounded); otherwise its pipes and memory are freed
        (the child may still be exiting). A followed run is only let go of."""
        if hasattr(source, "is_alive") and source.is_alive() and not source.finished:
            source.shutdown(timeout=10.0)
        else:
            source.close()

    def _drain_commands(self, source) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if hasattr(source, "send"):  # a followed run takes no commands
                source.send(command)
