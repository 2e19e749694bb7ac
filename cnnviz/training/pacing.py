"""Pacing: run a small job on the training thread between two batches, at the rate a reader can follow.

A consumer that listens to every step (`on_step_end`) puts the Trainer on its per-step path, which costs
~4% of a cntk-conv step. A :class:`Pacer` instead asks the trainer, from a thread of its own, to run a
`tick` between two batches (`RunControl.call_soon`) whenever one is due; the tick reads whatever it needs
(the latest step metrics, the steps the history gained, the weights). The CLI's progress line and the
training child's message streamer both pace this way.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """Asks `control` to run `tick` on the training thread whenever `due_in(now)` says it is due (<= 0).

    At most one tick is pending at a time. Either call :meth:`poke` from a loop of your own (the training
    child's control loop, which also reads the parent's commands) or let :meth:`start` run one."""

    def __init__(self, control, tick: Callable[[], None], due_in: Callable[[float], float],
                 retry: Callable[[], float] = lambda: 0.05) -> None:
        """`retry()`: seconds to wait while a tick is due but has not run yet (the loop is inside a batch)."""
        self.control, self._tick, self._due_in, self._retry = control, tick, due_in, retry
        self._queued = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poke(self, now: float | None = None) -> float:
        """Queue a tick if one is due and none is pending; returns the seconds until the next one is due."""
        now = time.perf_counter() if now is None else now
        if self._due_in(now) > 0:
            return self._due_in(now)
        if not self._queued:
            self._queued = True
            self.control.call_soon(self._run_tick)
        return self._retry()

    def _run_tick(self) -> None:
        self._queued = False
        self._tick()

    def start(self, name: str = "cnnviz-pacer") -> "Pacer":
        """Poke from a daemon thread of its own until :meth:`stop`."""
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(max(0.001, self.poke())):
                pass

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class Every:
    """A `due_in` for a fixed rate: due `interval` seconds after the last tick (call :meth:`ticked` in it)."""

    def __init__(self, interval: float) -> None:
        self.interval, self.last = interval, time.perf_counter()

    def __call__(self, now: float) -> float:
        return self.last + self.interval - now

    def ticked(self) -> None:
        self.last = time.perf_counter()
