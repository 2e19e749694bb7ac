"""The training child process: the ordinary Trainer, a streamer that sends what it does, and a control loop
that applies the parent's commands.

The streamer does not listen to every step (that would put the Trainer on its per-step path, ~4% of a
cntk-conv step). A :class:`~cnnviz.training.pacing.Pacer`, poked by the control loop, has the training
thread run a `tick` between two batches whenever metrics or a snapshot are due; the tick sends the steps
the history gained since the last message, and the weights through shared memory. The run's folder is
written at every epoch end and when the run ends. Started by :class:`~cnnviz.training.runner.TrainingProcess`.
"""
from __future__ import annotations

import threading
import time
import traceback

import numpy as np

from cnnviz.errors import CnnvizError
from cnnviz.training.callbacks import Callback
from cnnviz.training.messages import (FAILED, FINISHED, PAUSED, STOPPED, AckSnapshot, FitResult, Notice,
                                      OperateFilter, Pause, Resume, Saved, SaveCheckpoint, SetBatchSize,
                                      SetLearningRate, StateChanged, Step, StepBatch, Stop, Surgery)
from cnnviz.training.pacing import Pacer
from cnnviz.training.process_tuning import lower_cpu_priority, tune_for_training
from cnnviz.training.shared_weights import SharedWeightsWriter
from cnnviz.timeline.recorder import RunRecorder

PAUSED_TICK_INTERVAL = 0.02  # seconds between ticks while the run is paused (parked, so they are free)


class Streamer(Callback):
    """Sends throttled plain-data messages to the parent and keeps the run's folder up to date."""

    def __init__(self, conn, job) -> None:
        self.conn, self.job = conn, job
        self.lock = threading.Lock()  # the control thread and the loop both send
        self.trainer = None
        self.sent = 0  # index in the trainer's history of the first step not sent yet
        self.last_flush = 0.0
        self.snapshot_acked, self.next_snapshot, self.snapshot_step = True, 0.0, -1
        self.shared = SharedWeightsWriter()
        self.paused = False
        self.fitting = False

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
        return due - now if self.fitting else 0.05

    def retry(self) -> float:
        return PAUSED_TICK_INTERVAL if self.paused else 0.05

    # -- sending (training thread) ---------------------------------------------------------------------
    def tick(self) -> None:
        trainer = self.trainer
        if not self.fitting or trainer is None:
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

    def on_evaluation_start(self, trainer, split) -> None:
        """An evaluation can take a second: send the steps and (if due) the weights it is about to judge."""
        self.flush()
        due = self.snapshot_acked and time.perf_counter() >= self.next_snapshot
        if due and self.snapshot_step != trainer.step_count:
            self.send_snapshot(trainer)

    def on_evaluation(self, trainer, evaluation) -> None:
        self.flush()
        self.send(evaluation)

    def on_surgery(self, trainer, operation) -> None:
        """A filter operation took effect: say so, and show the weights it left at once."""
        self.flush()
        self.send(Surgery(tuple(trainer.surgery.operations)))
        text = operation.describe()
        self.send(Notice(text[:1].upper() + text[1:], "info"))
        self.send_snapshot(trainer)

    def on_state_change(self, trainer, state, message) -> None:
        self.flush()
        if state == FAILED:  # it went back to its last good state: the operations after it are gone too
            self.send(Surgery(tuple(trainer.surgery.operations)))
        self.paused = state == PAUSED
        if state in (PAUSED, FINISHED, STOPPED) and trainer.step_count > 0 or state == FAILED:
            self.send_snapshot(trainer)  # the exact weights the run paused or ended on (failed: went back to)
        self.send(StateChanged(state, message))

    def save(self, trainer, path: str) -> None:
        """Write a checkpoint the user asked for (File -> Save run)."""
        from cnnviz.training.checkpoint import from_trainer, save_checkpoint

        save_checkpoint(path, from_trainer(trainer))
        self.send(Saved(str(path), trainer.epoch, trainer.step_count, False))


# What each command does in the child (from the control thread; the trainer's controls are thread-safe).
_HANDLERS = {
    Pause: lambda command, trainer, streamer: trainer.pause(),
    Resume: lambda command, trainer, streamer: trainer.resume(),
    Step: lambda command, trainer, streamer: trainer.step(),
    Stop: lambda command, trainer, streamer: trainer.request_stop(),
    SetLearningRate: lambda command, trainer, streamer: trainer.set_learning_rate(command.lr),
    SetBatchSize: lambda command, trainer, streamer: trainer.set_batch_size(command.batch_size),
    AckSnapshot: lambda command, trainer, streamer: setattr(streamer, "snapshot_acked", True),
    SaveCheckpoint: lambda command, trainer, streamer: trainer.control.call_soon(
        lambda: _save_or_report(trainer, streamer, command.path)),
    OperateFilter: lambda command, trainer, streamer: trainer.operate(command.layer, command.index, command.action),
}


def apply_command(command, trainer, streamer: Streamer) -> None:
    """Do what the parent asked."""
    handler = _HANDLERS.get(type(command))
    if handler is None:  # a parent of another version: say so rather than die
        streamer.send(Notice(f"the training process does not know the command {command!r}"))
        return
    handler(command, trainer, streamer)


def control_loop(conn, trainer, streamer: Streamer, done: threading.Event) -> None:
    """Child thread: apply the parent's commands to the trainer and pace the streamer, until `done` is set.

    It polls rather than blocking in recv(): a thread still blocked there when the process exits wakes
    up during interpreter shutdown if the parent closes the pipe, and is then ended by a forced unwind
    that aborts the process ("terminate called without an active exception")."""
    pacer = Pacer(trainer.control, streamer.tick, streamer.due_in, streamer.retry)
    while not done.is_set():
        wait = pacer.poke()
        try:
            if not conn.poll(min(0.05, wait)):
                continue
            command = conn.recv()
        except (EOFError, OSError):
            trainer.request_stop()  # the parent is gone
            return
        try:
            apply_command(command, trainer, streamer)
        except CnnvizError as exc:
            streamer.send(Notice(str(exc)))
        except (BrokenPipeError, OSError):
            return


def _save_or_report(trainer, streamer: Streamer, path: str) -> None:
    try:
        streamer.save(trainer, path)
    except (OSError, CnnvizError) as exc:
        streamer.send(Notice(f"could not save {path}: {exc}"))


def child_main(job, conn, control) -> None:
    """The child process's whole life: build the trainer, train, report how it ended, never hang the parent."""

    from cnnviz.compute_threads import limit_compute_threads
    from cnnviz.data.prepare import load_data
    from cnnviz.models import ModelSpec
    from cnnviz.training.checkpoint import load_checkpoint, resume_trainer
    from cnnviz.training.trainer import Trainer, default_threads

    lower_cpu_priority()  # the window's GUI thread comes first whenever the two share a core
    limit_compute_threads(job.threads or default_threads())  # numpy's BLAS too: its idle threads spin
    streamer = Streamer(conn, job)
    trainer = None
    controls, controls_done = None, threading.Event()
    try:
        data = load_data(job.recipe.data, fallback=False)
        callbacks = [streamer]
        if job.run_dir:  # the run's folder and its timeline, written as it trains
            callbacks.append(RunRecorder(
                job.run_dir, job.name, timeline=job.timeline, on_notice=lambda text: streamer.send(Notice(text)),
                on_saved=lambda path, t: streamer.send(Saved(str(path), t.epoch, t.step_count, True))))
        if job.resume_from:
            trainer = resume_trainer(load_checkpoint(job.resume_from), data, callbacks, recipe=job.recipe)
        else:
            trainer = Trainer(ModelSpec.from_dict(job.spec), job.recipe, data, callbacks)
        tune_for_training()  # this process only trains (malloc keeps step buffers, GC skips start-up objects)
        if job.start_paused:
            trainer.pause()
        controls = threading.Thread(target=control_loop, args=(control, trainer, streamer, controls_done),
                                    daemon=True, name="cnnviz-controls")
        controls.start()
        result = trainer.fit()
        trainer.control.run_calls()  # a save asked for just as the run ended
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


def _send_quietly(streamer: Streamer, message) -> None:
    try:
        streamer.send(message)
    except (BrokenPipeError, OSError):
        pass
