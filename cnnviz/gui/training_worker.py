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

    def __init__(self, job: TrainingJob) -> None:
        super().__init__()
        self.job = job
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
        process = TrainingProcess(self.job)
        try:
            process.start()
            while not process.finished:
                if self._shutdown.is_set():
                    process.shutdown(timeout=10.0)
                    break
                self._drain_commands(process)
                for message in process.poll(timeout=0.02):
                    self.message_received.emit(message)
        except Exception as exc:  # never let the thread die silently: the window must learn the run ended
            self.message_received.emit(FitResult(FAILED, 0, 0, 0.0, 0.0, f"could not run training: {exc}"))
        finally:
            try:
                if process.is_alive() and not process.finished:
                    process.shutdown(timeout=10.0)
                else:
                    process.close()  # the run is over (the child may still be exiting): free the pipes and memory
            finally:
                return_to_gui_thread(self)  # deleted there, never in this thread (see worker_threads.py)
                self.finished.emit()  # whatever happened, the window must learn that the thread is done

    def _drain_commands(self, process: TrainingProcess) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            process.send(command)
