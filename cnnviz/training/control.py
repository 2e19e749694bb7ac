"""Thread-safe run control: pause, resume, single-step and stop, polled by the loop once per batch."""
from __future__ import annotations

import threading


class RunControl:
    """Flags the training loop checks before every batch.

    All methods may be called from any thread; they take effect before the next batch starts.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._paused = False
        self._stop = False
        self._steps_allowed = 0
        self._calls: list = []

    def call_soon(self, fn) -> None:
        """Run `fn()` on the training thread between two batches (or at once while the loop is parked)."""
        with self._cond:
            self._calls.append(fn)
            self._cond.notify_all()

    def run_calls(self) -> None:
        """Run the pending `call_soon` functions; called by the training thread only."""
        with self._cond:
            calls, self._calls = self._calls, []
        for fn in calls:
            fn()

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._steps_allowed = 0
            self._cond.notify_all()

    def step(self) -> None:
        """Run exactly one more batch, then stay paused (pauses first if running)."""
        with self._cond:
            self._paused = True
            self._steps_allowed += 1
            self._cond.notify_all()

    def request_stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stop_requested(self) -> bool:
        return self._stop

    @property
    def idle(self) -> bool:
        """True when `wait_to_run` would return at once (no pause, stop or queued call): lock-free."""
        return not self._paused and not self._stop and not self._calls

    def wait_to_run(self, on_pause=None) -> bool:
        """Block while paused; return False when a stop was requested.

        `on_pause` is called (outside the lock) once when the loop actually parks, so observers learn
        that the run is paused only when it really is.
        """
        if not self._paused and not self._stop and not self._calls:  # fast path: no lock on the hot loop
            return True
        notified = False
        with self._cond:
            while True:
                if self._calls:
                    self._cond.release()
                    try:
                        self.run_calls()
                    finally:
                        self._cond.acquire()
                    continue
                if self._stop:
                    return False
                if not self._paused:
                    return True
                if self._steps_allowed > 0:
                    self._steps_allowed -= 1
                    return True
                if not notified and on_pause is not None:
                    notified = True
                    self._cond.release()
                    try:
                        on_pause()
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(0.5)
