"""A view's computation off the GUI thread: one job at a time, the newest request kept while it runs.

Both kinds of view work go through it: what the user asks for and waits for, with progress and Cancel
(ablation, counterfactuals, top patches, occlusion), and what follows the weights (the projector's PCA and
t-SNE, the nearest-digit bank, activation maximisation). ``submit(work)`` runs ``work(progress, cancel)`` in a
background thread (``progress(done, total)``; ``cancel`` a threading.Event the work checks); while one runs, a
newer request waits in its place (older waiting ones are dropped: views ask again at every weight update and
only the newest matters) and with ``restart=True`` the running one is cancelled. The answer comes back as
``done(result)`` in the GUI thread, a CnnvizError's message as ``failed(text)``; a cancelled job's answer is
dropped. The work never touches Qt objects nor the Session's model: views hand it a copy (``ModelCopy``).

Each job runs in a plain Python thread at a lower CPU priority, which only emits signals (queued to the GUI
thread). A QThread per job would have to be waited for when it ends, and that wait took ~100 ms of the GUI
thread while another Python thread held the GIL (measured: ten job ends cost the GUI thread a second). This
module replaces two runners that two helpers wrote in parallel (a QThread one and this one).
"""
from __future__ import annotations

import atexit
import copy
import os
import threading

from PySide6.QtCore import QObject, Signal, Slot

from cnnviz.errors import CnnvizError

# Jobs with a thread running, kept alive here: a view closed (and deleted) mid-computation must not take the
# object its thread reports to with it; its job finishes, its answer goes nowhere, and it is freed.
_BUSY: set["BackgroundJob"] = set()


@atexit.register
def _wait_for_all() -> None:
    for job in list(_BUSY):
        job.cancel()
        if job._thread is not None:
            job._thread.join(30)


def _lower_priority() -> None:
    """Give the calling thread a lower CPU priority (Linux: nice +10 for this thread only), so the GUI thread
    and the training process come first on a busy machine; elsewhere a no-op."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class BackgroundJob(QObject):
    """One background job at a time; ``submit`` while busy keeps only the newest request for afterwards.

    Give it no Qt parent (a view keeps it as an attribute): a view deleted while its job runs must not take the
    object its thread reports to with it; while its thread runs the module keeps it alive, its answer goes nowhere.
    """

    done = Signal(object)  # what the work returned (not emitted for cancelled work)
    failed = Signal(str)  # a CnnvizError's message (or a bug's), not for cancelled work
    progress = Signal(int, int)
    busy_changed = Signal(bool)
    _ended = Signal(object, object, object)  # cancel event, result, error: from the job's thread

    def __init__(self) -> None:
        super().__init__()
        self._thread: threading.Thread | None = None
        self._cancel: threading.Event | None = None
        self._pending = None
        self._closed = False
        self._ended.connect(self._on_ended)  # queued: emitted from the job's thread

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def submit(self, work, restart: bool = False) -> None:
        """Run ``work(progress, cancel)`` now, or after the running one (``restart``: cancel that one)."""
        if self._closed:
            return
        if self.busy:
            self._pending = work
            if restart:
                self._cancel.set()
            return
        self._start(work)

    def cancel(self) -> None:
        """Drop the waiting request and ask the running one to stop."""
        self._pending = None
        if self._cancel is not None:
            self._cancel.set()

    def wait(self, ms: int = 30000) -> bool:
        """Process events until nothing runs or waits (tests, benchmarks); True when idle."""
        import time

        from PySide6.QtCore import QCoreApplication

        end = time.monotonic() + ms / 1000
        while self._thread is not None and time.monotonic() < end:
            self._thread.join(0.02)
            QCoreApplication.processEvents()
        return self._thread is None

    def shutdown(self) -> None:
        """Cancel everything and wait for the thread (the window is closing)."""
        self._closed = True
        self.cancel()
        if self._thread is not None:
            self._thread.join(30)
        self._thread = self._cancel = None
        _BUSY.discard(self)

    def _start(self, work) -> None:
        cancel = threading.Event()
        self._cancel = cancel
        progress = self.progress.emit

        def run() -> None:
            _lower_priority()
            result, error = None, None
            try:
                result = work(progress, cancel)
            except CnnvizError as exc:
                error = str(exc)
            except Exception as exc:  # a bug must not kill the thread silently
                error = f"{type(exc).__name__}: {exc}"
            try:
                self._ended.emit(cancel, result, error)
            except RuntimeError:  # the object is gone (the window closed): nobody waits for the answer
                pass

        self._thread = threading.Thread(target=run, name="cnnviz-background-job", daemon=True)
        _BUSY.add(self)
        self._thread.start()
        self.busy_changed.emit(True)

    @Slot(object, object, object)
    def _on_ended(self, cancel, result, error) -> None:
        if cancel is not self._cancel:
            return
        self._thread, self._cancel = None, None
        if not cancel.is_set():  # a cancelled or restarted job's answer is stale
            if error is not None:
                self.failed.emit(error)
            else:
                self.done.emit(result)
        pending, self._pending = self._pending, None
        if pending is not None and not self._closed:
            self._start(pending)
        else:
            _BUSY.discard(self)
            self.busy_changed.emit(False)


class ModelCopy:
    """The session's model for one BackgroundJob's work, copied cheaply on the GUI thread.

    ``take(session)`` clones the weights (well under a millisecond) and returns ``load()``, which the work
    calls in its thread to get a private model holding them; ``copy.deepcopy`` of the model on every
    weight change cost the GUI thread ~20 ms. The private model is made once per model spec and used by one
    job at a time (a BackgroundJob runs one job at a time), never by the GUI thread.
    """

    def __init__(self) -> None:
        self._spec = None
        self._model = None

    def take(self, session):
        if self._model is None or self._spec is not session.spec:
            self._model, self._spec = copy.deepcopy(session.model), session.spec
        state = {k: v.detach().clone() for k, v in session.model.state_dict().items()}
        model = self._model

        def load():
            model.load_state_dict(state)
            return model.eval()
        return load
