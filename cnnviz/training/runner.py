"""Training in a child process, driven from the parent by control messages.

Why a process: a training thread inside the GUI process holds the GIL in bursts and stalls the event loop
for 150-230 ms at a time (measured, see docs/benchmarks.md); a child process keeps the window smooth and
loses almost no throughput. The child runs the ordinary :class:`Trainer` with a callback that streams
plain-data messages back, throttled: step metrics at most every `metrics_interval` seconds, weight
snapshots at most every `snapshot_interval` seconds and only after the parent acknowledged the last one
(so the pipe never fills faster than the window draws). No Qt here: the window's QThread polls this object.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnviz.config import Recipe
from cnnviz.errors import CnnvizError
from cnnviz.training.callbacks import Callback
from cnnviz.training.messages import FAILED, FINISHED, PAUSED, STOPPED, FitResult, Saved, StepBatch
from cnnviz.training.process_tuning import tune_for_training
from cnnviz.training.shared_weights import SharedSnapshot, SharedWeightsReader, SharedWeightsWriter


@dataclass(frozen=True)
class TrainingJob:
    """What the child process should do."""

    spec: dict  # ModelSpec.to_dict()
    recipe: Recipe
    resume_from: str | None = None  # checkpoint to continue
    autosave_path: str | None = None  # written atomically at every epoch end and at the end of the run
    # seconds between metric messages (10 Hz): each one updates the progress bar, the status bar and the
    # curves' buffers; the curves redraw at most 10 times a second, and 20 Hz cost the window ~3% of a core
    metrics_interval: float = 0.1
    snapshot_interval: float = 0.2  # seconds between weight snapshots (5 Hz), if the last one was taken
    threads: int | None = None  # torch threads in the child; None: cores - 1
    start_paused: bool = False  # park before the first batch (the window's Step on a fresh run)
    extra: dict = field(default_factory=dict)


class TrainingProcess:
    """Parent-side handle of one training run in a child process. Not thread-safe: use from one thread."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        ctx = mp.get_context("spawn")  # never fork a process that runs Qt and torch threads
        self._inbox, child_out = ctx.Pipe(duplex=False)
        child_in, self._outbox = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_child_main, args=(job, child_out, child_in), daemon=True,
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
    def pause(self) -> None:
        self._send("pause")

    def resume(self) -> None:
        self._send("resume")

    def step(self) -> None:
        self._send("step")

    def request_stop(self) -> None:
        self._send("stop")

    def set_learning_rate(self, lr: float) -> None:
        self._send("lr", float(lr))

    def set_batch_size(self, batch_size: int) -> None:
        self._send("batch_size", int(batch_size))

    def ack_snapshot(self) -> None:
        """Tell the child the last weight snapshot was used, so it may send the next one."""
        self._send("ack")

    def save(self, path: str) -> None:
        """Ask the child to write a checkpoint to `path` between two batches (answered by a Saved message)."""
        self._send("save", str(path))

    def _send(self, *message) -> None:
        try:
            self._outbox.send(message)
        except (BrokenPipeError, EOFError, OSError):
            pass  # the child is gone; poll() reports how it ended

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
                    self._send("ack")
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
        self.request_stop()
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


# ---- the child side ---------------------------------------------------------------------------------
PAUSED_TICK_INTERVAL = 0.02  # seconds between ticks while the run is paused (parked, so they are free)


class _Streamer(Callback):
    """Sends throttled plain-data messages to the parent.

    It does not listen to every step (that would put the Trainer on its per-step path, ~4% of a cntk-conv
    step): the control thread asks for a `tick` between two batches whenever metrics or a snapshot are due
    (`due_in`), and the tick sends the steps the history gained since the last message."""

    def __init__(self, conn, job: TrainingJob) -> None:
        self.conn, self.job = conn, job
        self.lock = threading.Lock()  # the control thread and the loop both send
        self.trainer = None
        self.sent = 0  # index in the trainer's history of the first step not sent yet
        self.last_flush = 0.0
        self.snapshot_acked, self.next_snapshot, self.snapshot_step = True, 0.0, -1
        self.shared = SharedWeightsWriter()
        self.paused = False
        self.fitting = False
        self.tick_queued = False
        self.saved_step = -1  # step of the last autosave

    def send(self, message) -> None:
        with self.lock:
            self.conn.send(message)

    def on_fit_start(self, trainer) -> None:
        self.trainer, self.sent, self.fitting = trainer, len(trainer.history.step_loss), True

    def on_fit_end(self, trainer, result) -> None:
        self.fitting = False

    # -- pacing (control thread) -----------------------------------------------------------------------
    def due_in(self, now: float) -> float:
        """Seconds until metrics or a snapshot are due (<= 0: due now). While paused, the loop is parked and
        a tick costs nothing, so it is asked for at 50 Hz: a single Step shows its result without delay."""
        due = self.last_flush + (PAUSED_TICK_INTERVAL if self.paused else self.job.metrics_interval)
        if self.snapshot_acked:
            due = min(due, self.next_snapshot)
        return due - now

    def request_tick(self, trainer) -> None:
        """Have the training thread run `tick` between two batches (at most one pending request)."""
        if self.fitting and not self.tick_queued:
            self.tick_queued = True
            trainer.control.call_soon(lambda: self.tick(trainer))

    # -- sending (training thread) ---------------------------------------------------------------------
    def tick(self, trainer) -> None:
        self.tick_queued = False
        if not self.fitting:
            return
        now = time.perf_counter()
        if now - self.last_flush >= self.job.metrics_interval or self.paused:
            self.flush(now)
        new_weights = trainer.step_count != self.snapshot_step and trainer.step_count > 0
        if new_weights and (self.snapshot_acked and now >= self.next_snapshot or self.paused):
            self.send_snapshot(trainer, now)

    def flush(self, now: float | None = None) -> None:
        """Send the steps done since the last message (every step's loss, accuracy and lr)."""
        trainer = self.trainer
        if trainer is not None:
            latest = trainer.latest_step_metrics()  # also counts any pending accuracies
            h = trainer.history
            end = min(len(h.step_loss), len(h.step_accuracy), len(h.step_lr))
            if latest is not None and end > self.sent:
                f32 = np.float32
                first_step = trainer.step_count - len(h.step_loss) + self.sent + 1
                self.send(StepBatch(first_step, np.array(h.step_loss[self.sent:end], f32),
                                    np.array(h.step_accuracy[self.sent:end], f32),
                                    np.array(h.step_lr[self.sent:end], f32), latest))
                self.sent = end
        self.last_flush = time.perf_counter() if now is None else now

    def send_snapshot(self, trainer, now: float | None = None) -> None:
        self.snapshot_acked = False
        self.snapshot_step = trainer.step_count
        self.next_snapshot = (time.perf_counter() if now is None else now) + self.job.snapshot_interval
        note = self.shared.write(trainer.weight_arrays(), trainer.step_count, trainer.epoch)
        self.send(note if note is not None else trainer.snapshot())

    def on_epoch_end(self, trainer, metrics) -> None:
        self.flush()
        self.send(metrics)
        self.autosave(trainer)

    def on_evaluation_start(self, trainer, split) -> None:
        """An evaluation can take a second: send the steps and (if due) the weights it is about to judge."""
        self.flush()
        due = self.snapshot_acked and time.perf_counter() >= self.next_snapshot
        if due and self.snapshot_step != trainer.step_count:
            self.send_snapshot(trainer)

    def on_evaluation(self, trainer, evaluation) -> None:
        self.flush()
        self.send(evaluation)

    def on_state_change(self, trainer, state, message) -> None:
        self.flush()
        self.paused = state == PAUSED
        if state in (PAUSED, FINISHED, STOPPED) and trainer.step_count > 0 or state == FAILED:
            self.send_snapshot(trainer)  # the exact weights the run paused or ended on (failed: went back to)
        from cnnviz.training.messages import StateChanged

        self.send(StateChanged(state, message))

    def autosave(self, trainer) -> None:
        if self.job.autosave_path and trainer.step_count != self.saved_step:
            self.saved_step = trainer.step_count
            self.save(trainer, self.job.autosave_path, autosave=True)

    def save(self, trainer, path: str, autosave: bool = False) -> None:
        from cnnviz.training.checkpoint import from_trainer, save_checkpoint

        save_checkpoint(path, from_trainer(trainer))
        self.send(Saved(str(path), trainer.epoch, trainer.step_count, autosave))


def _control_loop(conn, trainer, streamer: _Streamer, done: threading.Event) -> None:
    """Child thread: apply the parent's control messages to the trainer until `done` is set.

    It polls rather than blocking in recv(): a thread still blocked there when the process exits wakes
    up during interpreter shutdown if the parent closes the pipe, and is then ended by a forced unwind
    that aborts the process ("terminate called without an active exception")."""
    while not done.is_set():
        wait = streamer.due_in(time.perf_counter())
        if wait <= 0:  # metrics or a snapshot are due: the training thread sends them between two batches
            streamer.request_tick(trainer)
            wait = PAUSED_TICK_INTERVAL if streamer.paused else 0.05
        try:
            if not conn.poll(min(0.05, wait)):
                continue
            message = conn.recv()
        except (EOFError, OSError):
            trainer.request_stop()  # the parent is gone
            return
        kind, args = message[0], message[1:]
        try:
            if kind == "pause":
                trainer.pause()
            elif kind == "resume":
                trainer.resume()
            elif kind == "step":
                trainer.step()
            elif kind == "stop":
                trainer.request_stop()
            elif kind == "lr":
                trainer.set_learning_rate(args[0])
            elif kind == "batch_size":
                trainer.set_batch_size(args[0])
            elif kind == "ack":
                streamer.snapshot_acked = True
            elif kind == "save":
                trainer.control.call_soon(lambda p=args[0]: _save_or_report(trainer, streamer, p))
        except CnnvizError as exc:
            streamer.send(_notice(str(exc)))
        except (BrokenPipeError, OSError):
            return


def _save_or_report(trainer, streamer, path) -> None:
    try:
        streamer.save(trainer, path)
    except (OSError, CnnvizError) as exc:
        streamer.send(_notice(f"could not save {path}: {exc}"))


def _notice(text: str):
    from cnnviz.training.messages import StateChanged

    return StateChanged("notice", text)


def _child_main(job: TrainingJob, conn, control) -> None:
    import torch

    from cnnviz.data.prepare import load_data
    from cnnviz.models import ModelSpec
    from cnnviz.training.checkpoint import load_checkpoint, resume_trainer
    from cnnviz.training.trainer import Trainer, default_threads

    torch.set_num_threads(job.threads or default_threads())
    streamer = _Streamer(conn, job)
    trainer = None
    controls, controls_done = None, threading.Event()
    try:
        data = load_data(job.recipe.data, fallback=False)
        if job.resume_from:
            trainer = resume_trainer(load_checkpoint(job.resume_from), data, [streamer], recipe=job.recipe)
        else:
            trainer = Trainer(ModelSpec.from_dict(job.spec), job.recipe, data, [streamer])
        tune_for_training()  # this process only trains (malloc keeps step buffers, GC skips start-up objects)
        if job.start_paused:
            trainer.pause()
        controls = threading.Thread(target=_control_loop, args=(control, trainer, streamer, controls_done),
                                    daemon=True, name="cnnviz-controls")
        controls.start()
        result = trainer.fit()
        try:
            trainer.control.run_calls()  # a save asked for just as the run ended
            if result.steps > 0:
                streamer.autosave(trainer)
        except (OSError, CnnvizError) as exc:
            streamer.send(_notice(f"could not write the autosave: {exc}"))
        streamer.send(result)
    except CnnvizError as exc:
        _send_quietly(streamer, FitResult(FAILED, 0, 0, 0.0, 0.0, str(exc)))
    except BaseException as exc:  # a bug: report it, never hang the parent
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        _send_quietly(streamer, FitResult(FAILED, trainer.epoch if trainer else 0,
                                          trainer.step_count if trainer else 0, 0.0, 0.0,
                                          f"internal error in the training process: {detail}\n"
                                          + traceback.format_exc()))
    finally:
        controls_done.set()
        if controls is not None:
            controls.join(1.0)
        streamer.shared.close()
        try:
            conn.close()
        except OSError:
            pass


def _send_quietly(streamer: _Streamer, message) -> None:
    try:
        streamer.send(message)
    except (BrokenPipeError, OSError):
        pass


def default_autosave_path(root: Path) -> Path:
    """Where the window autosaves the current run."""
    return root / "autosave" / "checkpoint.safetensors"
