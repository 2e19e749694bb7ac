"""Training in a child process, the parent's side: start it, send it commands, read what it reports.

Why a process: a training thread inside the GUI process holds the GIL in bursts and stalls the event loop
for 150-230 ms at a time (measured, see docs/benchmarks.md); a child process keeps the window smooth and
loses almost no throughput. The child (:mod:`cnnviz.training.child`) runs the ordinary Trainer and streams
plain-data messages back, throttled: step metrics at most every `metrics_interval` seconds, weight
snapshots at most every `snapshot_interval` seconds and only after the parent acknowledged the last one
(so the pipe never fills faster than the window draws). No Qt here: the window's QThread polls this object,
a :class:`~cnnviz.training.messages.MessageSource`.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import threading
import time
from dataclasses import dataclass

from cnnviz.config import Recipe
from cnnviz.training.child import child_main
from cnnviz.training.messages import FAILED, AckSnapshot, Command, FitResult, Stop
from cnnviz.training.shared_weights import SharedSnapshot, SharedWeightsReader


@dataclass(frozen=True)
class TrainingJob:
    """What the child process should do."""

    spec: dict  # ModelSpec.to_dict()
    recipe: Recipe
    resume_from: str | None = None  # checkpoint to continue
    run_dir: str | None = None  # the run's folder, written at every epoch end and at the end of the run
    name: str = "run"  # what the run is called in its folder's summary (the preset, say)
    timeline: bool = True  # record the timeline (keyframes, anchors, statistics) in run_dir
    # seconds between metric messages (10 Hz): each one updates the progress bar, the status bar and the
    # curves' buffers; the curves redraw at most 10 times a second, and 20 Hz cost the window ~3% of a core
    metrics_interval: float = 0.1
    snapshot_interval: float = 0.2  # seconds between weight snapshots (5 Hz), if the last one was taken
    threads: int | None = None  # torch threads in the child; None: cores - 1
    start_paused: bool = False  # park before the first batch (the window's Step on a fresh run)


class TrainingProcess:
    """Parent-side handle of one training run in a child process. Not thread-safe: use from one thread."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        ctx = mp.get_context("spawn")  # never fork a process that runs Qt and torch threads
        self._inbox, child_out = ctx.Pipe(duplex=False)
        child_in, self._outbox = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=child_main, args=(job, child_out, child_in), daemon=True,
                                    name="cnnviz-training")
        self._child_ends = (child_out, child_in)
        self._finished = False
        self._weights = SharedWeightsReader()

    def start(self) -> None:
        with _spawned_without_callers_main():
            self._process.start()
        for end in self._child_ends:
            end.close()

    # -- control ---------------------------------------------------------------------------------------
    def send(self, command: Command) -> None:
        """Ask the run to do something (a command from cnnviz.training.messages); a gone child is ignored
        here, `poll` reports how it ended."""
        try:
            self._outbox.send(command)
        except (BrokenPipeError, EOFError, OSError):
            pass

    # -- messages --------------------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0, limit: int = 256) -> list:
        """Messages that arrived (waiting up to `timeout` s for the first). Reports a child that died."""
        messages = []
        try:
            if self._inbox.poll(timeout):
                while len(messages) < limit and self._inbox.poll(0):
                    messages.append(self._inbox.recv())
        except (EOFError, OSError):
            if not self._finished and not any(isinstance(m, FitResult) for m in messages):
                self._process.join(2.0)
                code = self._process.exitcode
                messages.append(FitResult(FAILED, 0, 0, 0.0, 0.0,
                                          f"the training process ended unexpectedly (exit code {code})"))
                self._finished = True
        out = []
        for message in messages:
            if isinstance(message, FitResult):
                self._finished = True
            elif isinstance(message, SharedSnapshot):
                message = self._weights.read(message)
                if message is None:  # overwritten meanwhile (a newer one is coming) or gone: let it go on
                    self.send(AckSnapshot())
                    continue
            out.append(message)
        return out

    @property
    def finished(self) -> bool:
        """True once the run's FitResult was received (or the child died)."""
        return self._finished

    def is_alive(self) -> bool:
        return self._process.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        self._process.join(timeout)
        return not self._process.is_alive()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the run and wait for the child; kill it only if it does not end in time."""
        self.send(Stop())
        deadline = time.monotonic() + timeout
        while self._process.is_alive() and time.monotonic() < deadline:
            try:  # drain so the child never blocks on a full pipe
                while self._inbox.poll(0.05):
                    self._inbox.recv()
            except (EOFError, OSError):
                self._process.join(max(0.0, deadline - time.monotonic()))
                break
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5.0)
        self._close()

    def close(self) -> None:
        """Free the pipes and the shared weights once the run is over, without waiting for the child to
        exit (after its FitResult it sends nothing more)."""
        self._close()

    def _close(self) -> None:
        for conn in (self._inbox, self._outbox):
            try:
                conn.close()
            except OSError:
                pass
        self._weights.close()  # the child is gone: free the shared weights block


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _spawned_without_callers_main():
    """Start spawned children as if the program were `python -m cnnviz`, whatever the caller's `__main__` is.

    multiprocessing's spawn re-runs the parent's main script in the child (as `__mp_main__`) so that pickled
    objects defined there can be found. The training child needs nothing from it, and a user's script without
    an `if __name__ == "__main__":` guard would run again in the child, build its own window and start
    training again there ("An attempt has been made to start a new process before the current process has
    finished its bootstrapping phase"). While the child is being launched, `__main__` reads as cnnviz's own
    entry module, which spawn does not re-run (a `*.__main__` module is skipped)."""
    import importlib.util
    import types

    with _MAIN_LOCK:
        real = sys.modules.get("__main__")
        stand_in = types.ModuleType("__main__")
        stand_in.__spec__ = importlib.util.find_spec("cnnviz.__main__")
        sys.modules["__main__"] = stand_in
        try:
            yield
        finally:
            if real is not None:
                sys.modules["__main__"] = real
