"""Recomputations that follow the weights, in a background thread, keeping only the newest request.

A view that must recompute something when the weights change (the projector's PCA, the nearest-digit bank,
activation maximisation) submits ``work(progress, cancel)``; while one runs, a newer request waits in its
place (older waiting ones are dropped, as their weights are already stale) and with ``supersede`` the running
one is cancelled. The result comes back through ``result`` in the GUI thread; the work never touches Qt.
"""
from __future__ import annotations

import atexit
import threading

from PySide6.QtCore import QObject, Signal, Slot

from cnnviz.errors import CnnvizError
from cnnviz.gui.worker_threads import end_worker, return_to_gui_thread, start_worker


class _Job(QObject):
    progress = Signal(int, int)
    done = Signal(object, object)  # result, error text or None
    finished = Signal()

    def __init__(self, work) -> None:
        super().__init__()
        self.work, self.cancel = work, threading.Event()

    @Slot()
    def run(self) -> None:
        result, error = None, None
        try:
            result = self.work(self.progress.emit, self.cancel)
        except CnnvizError as exc:
            error = str(exc)
        except Exception as exc:  # a bug must not kill the thread silently
            error = f"{type(exc).__name__}: {exc}"
        finally:
            return_to_gui_thread(self)
        self.done.emit(result, error)
        self.finished.emit()


# Jobs with a thread running, kept alive here: a view closed (and deleted) mid-computation must not delete a
# running QThread (Qt aborts the process); its job finishes, its answer goes nowhere, and it is freed.
_BUSY: set["LatestJob"] = set()


@atexit.register
def _wait_for_all() -> None:
    for job in list(_BUSY):
        job.cancel()
        if job._thread is not None:
            job._thread.wait(30000)


class LatestJob(QObject):
    """One background job at a time; ``submit`` while busy keeps only the newest request for afterwards.

    It has no Qt parent (a view keeps it as an attribute): while its thread runs the module keeps it alive.
    """

    result = Signal(object)  # what the work returned (not emitted for cancelled work)
    failed = Signal(str)  # a CnnvizError's message (or a bug's), not for cancelled work
    progress = Signal(int, int)
    busy_changed = Signal(bool)

    def __init__(self) -> None:
        super().__init__()
        self._thread = self._job = None
        self._pending = None
        self._closed = False

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def submit(self, work, supersede: bool = False) -> None:
        """Run ``work(progress, cancel)`` now, or after the running one (``supersede``: cancel that one)."""
        if self._closed:
            return
        if self.busy:
            self._pending = work
            if supersede:
                self._job.cancel.set()
            return
        self._start(work)

    def cancel(self) -> None:
        """Drop the waiting request and ask the running one to stop."""
        self._pending = None
        if self._job is not None:
            self._job.cancel.set()

    def wait(self, ms: int = 30000) -> bool:
        """Block until nothing runs or waits (tests, closing); True when idle."""
        from PySide6.QtCore import QCoreApplication, QDeadlineTimer

        deadline = QDeadlineTimer(ms)
        while self._thread is not None and not deadline.hasExpired():
            self._thread.wait(50)
            QCoreApplication.processEvents()
        return self._thread is None

    def shutdown(self) -> None:
        """Cancel everything and wait for the thread (the window is closing)."""
        self._closed = True
        self.cancel()
        if self._thread is not None:
            self._thread.wait()
            self._on_finished()

    def _start(self, work) -> None:
        self._job = _Job(work)
        self._job.progress.connect(self.progress)
        self._job.done.connect(self._on_done)
        self._thread = start_worker(self._job, self, self._on_finished)
        _BUSY.add(self)
        self.busy_changed.emit(True)

    @Slot(object, object)
    def _on_done(self, result, error) -> None:
        job = self.sender()
        if job is not None and getattr(job, "cancel", None) is not None and job.cancel.is_set():
            return  # cancelled or superseded: its answer is stale
        if error is not None:
            self.failed.emit(error)
        else:
            self.result.emit(result)

    @Slot()
    def _on_finished(self) -> None:
        if self._thread is None:
            return
        thread, job, self._thread, self._job = self._thread, self._job, None, None
        end_worker(thread, job)
        pending, self._pending = self._pending, None
        if pending is not None and not self._closed:
            self._start(pending)
        else:
            _BUSY.discard(self)
            self.busy_changed.emit(False)
