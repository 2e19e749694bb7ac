"""A view's own computation off the GUI thread: one job at a time, the newest request kept while it runs.

``JobRunner.submit(work)`` runs ``work(progress, cancel)`` in a worker thread (``progress(done, total)``,
``cancel`` a threading.Event the work checks); its result comes back as ``done(result)`` in the GUI thread, a
CnnvizError's message as ``failed(text)``. A request made while a job runs waits; a later request replaces it
(views ask again at every weight update and only the newest matters); ``submit(..., restart=True)`` also
cancels the running job. The work must not touch Qt objects nor the Session's model: views hand it a copy.
"""
from __future__ import annotations

import threading

from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot

from cnnviz.errors import CnnvizError
from cnnviz.gui.worker_threads import end_worker, return_to_gui_thread, start_worker


class _Job(QObject):
    progress = Signal(int, int)
    done = Signal(object)  # this job, its `ok` and `result` (the result or the message) set
    finished = Signal()

    def __init__(self, work) -> None:
        super().__init__()
        self.work, self.cancel = work, threading.Event()
        self.ok, self.result = False, None

    @Slot()
    def run(self) -> None:
        try:
            self.ok, self.result = True, self.work(self.progress.emit, self.cancel)
        except CnnvizError as exc:
            self.ok, self.result = False, str(exc)
        except Exception as exc:  # a bug must not kill the thread silently
            self.ok, self.result = False, f"{type(exc).__name__}: {exc}"
        finally:
            return_to_gui_thread(self)
        self.done.emit(self)
        self.finished.emit()


_RUNNING: set["JobRunner"] = set()  # runners with a job in flight, kept alive until it has ended


class JobRunner(QObject):
    """One background job at a time for one view.

    Give it no Qt parent: a view deleted while its job runs must not take the runner (and the job's signal
    connections) with it mid-flight, which can deadlock on Qt's signal lock and the GIL (see
    :func:`~cnnviz.gui.worker_threads.return_to_gui_thread`). A running runner keeps itself alive until its job
    has ended; its results then go nowhere.
    """

    progress = Signal(int, int)
    done = Signal(object)
    failed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = self._job = None
        self._pending = None

    @property
    def busy(self) -> bool:
        """True while a job runs or waits."""
        return self._thread is not None or self._pending is not None

    def submit(self, work, restart: bool = False) -> None:
        """Run ``work`` now, or after the running job (replacing any request already waiting)."""
        if self._thread is None:
            self._start(work)
            return
        self._pending = work
        if restart and self._job is not None:
            self._job.cancel.set()

    def cancel(self) -> None:
        """Drop the waiting request and ask the running job to stop (its result is not delivered)."""
        self._pending = None
        if self._job is not None:
            self._job.cancel.set()

    def wait(self, ms: int = 30000) -> None:
        """Block until the running job (and the one waiting) are done; for tests and closing."""
        while self._thread is not None:
            thread = self._thread
            if not thread.wait(ms):
                return
            QCoreApplication.sendPostedEvents(self)  # the job's result, queued to this object
            self._on_finished()

    def _start(self, work) -> None:
        self._job = _Job(work)
        self._job.progress.connect(self.progress)
        self._job.done.connect(self._on_done)
        _RUNNING.add(self)
        self._thread = start_worker(self._job, self, self._on_finished)
        self.busy_changed.emit(True)

    @Slot(object)
    def _on_done(self, job: _Job) -> None:
        if job.cancel.is_set():
            return
        if job.ok:
            self.done.emit(job.result)
        else:
            self.failed.emit(str(job.result))

    @Slot()
    def _on_finished(self) -> None:
        if self._thread is None:
            return
        thread, job, self._thread, self._job = self._thread, self._job, None, None
        end_worker(thread, job)
        work, self._pending = self._pending, None
        if work is not None:
            self._start(work)
        else:
            _RUNNING.discard(self)
            self.busy_changed.emit(False)
