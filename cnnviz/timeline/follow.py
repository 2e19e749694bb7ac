"""A run folder that another process (or machine) is writing, as a stream of the training process's messages.

:class:`RunFollower` is a :class:`~cnnviz.training.messages.MessageSource`, like a training process: the
window's training thread polls it, and what it gets (steps, epochs, evaluations, the newest weights, the run's
state, its end) drives the window as a run of its own would. Nothing listens on a network: the folder is read,
at most five times a second, and the writer never knows it is followed.
"""
from __future__ import annotations

import os
import time

from cnnviz.errors import CnnvizError
from cnnviz.training.messages import (FAILED, STOPPED, Evaluation, FitResult, Rewound, RunState,
                                      StateChanged, StepBatch, StepMetrics, Surgery, WeightsSnapshot)
from cnnviz.timeline.reader import RunTimeline

READ_INTERVAL = 0.2  # seconds between two reads of the folder (a written step is on screen well within 1 s)
CRASH_CHECK_INTERVAL = 2.0  # seconds between two looks at whether the writer is still alive


class RunFollower:
    """Reads `path` as another process writes it; :meth:`poll` returns the new messages."""

    def __init__(self, path: str | os.PathLike, from_start: bool = True) -> None:
        self.timeline = RunTimeline.open(path)
        self.path = self.timeline.path
        self._finished = False
        self._last_read = 0.0
        self._last_check = time.monotonic()
        self._pending = self._catch_up() if from_start else []

    def _catch_up(self) -> list:
        """What the run holds already, as messages: its history, the newest weights, its state."""
        t = self.timeline
        messages: list = []
        h = t.history
        if h.steps:
            messages.append(StepBatch(1, h.step_loss.values.astype("float32"), h.step_accuracy.values.astype("float32"),
                                      h.step_lr.values.astype("float32"), _latest(t, h.steps)))
        messages += h.epochs
        if t.surgeries:
            messages.append(Surgery(tuple(t.surgeries)))
        messages += self._weights_message()
        if t.ended is not None:
            messages.append(self._result(t.ended))
        elif t.state in tuple(RunState):
            messages.append(StateChanged(RunState(t.state)))
        return messages

    # -- the MessageSource protocol ---------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> list:
        if self._pending:
            messages, self._pending = self._pending, []
            return messages
        if self._finished:
            return []
        wait = self._last_read + READ_INTERVAL - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout))
            if wait > timeout:
                return []
        self._last_read = time.monotonic()
        try:
            events = self.timeline.refresh()
        except CnnvizError as exc:
            self._finished = True
            return [FitResult(FAILED, 0, 0, 0.0, 0.0, f"cannot follow the run any more: {exc}")]
        messages = self._messages(events)
        if not self._finished and time.monotonic() - self._last_check > CRASH_CHECK_INTERVAL:
            self._last_check = time.monotonic()
            messages += self._ended_without_a_word()
        return messages

    @property
    def finished(self) -> bool:
        return self._finished

    def close(self) -> None:
        self._pending = []

    # -- events to messages ------------------------------------------------------------------------------
    def _messages(self, events: list[dict]) -> list:
        t = self.timeline
        out: list = []
        new_weights = False
        for event in events:
            kind = event["t"]
            if kind == "steps":
                n = len(event.get("loss", ()))
                first = t.history.steps - n + 1  # as the reader placed them
                if n:
                    h = t.history
                    out.append(StepBatch(first, h.step_loss.values[first - 1:].astype("float32"),
                                         h.step_accuracy.values[first - 1:].astype("float32"),
                                         h.step_lr.values[first - 1:].astype("float32"), _latest(t, h.steps)))
            elif kind == "epoch" and t.history.epochs:
                out.append(t.history.epochs[-1])
            elif kind == "eval" and event.get("split") == "test":
                evaluation = _evaluation(t, int(event["step"]))
                if evaluation is not None:
                    out.append(evaluation)
            elif kind in ("keyframe", "anchor"):
                new_weights = True
            elif kind == "state" and event.get("state") in tuple(RunState):
                out.append(StateChanged(RunState(event["state"]), str(event.get("message") or "")))
            elif kind == "rewind":
                out.append(Rewound(t.history.steps, len(t.history.epochs)))
                out.append(Surgery(tuple(t.surgeries)))
            elif kind == "surgery":
                out.append(Surgery(tuple(t.surgeries)))
            elif kind == "end":
                if new_weights:
                    out += self._weights_message()
                    new_weights = False
                out.append(self._result(event))
        if new_weights:
            out += self._weights_message()
        return out

    def _weights_message(self) -> list:
        t = self.timeline
        step = t.nearest_keyframe(t.last_step)
        if step is None:
            return []
        try:
            return [WeightsSnapshot(step, _epoch_of(t, step), t.weights(step))]
        except CnnvizError:
            return []  # a keyframe not whole yet on a slow shared folder: the next one will do

    def _result(self, end: dict) -> FitResult:
        self._finished = True
        status = end.get("status", "finished")
        return FitResult(RunState(status) if status in tuple(RunState) else STOPPED, int(end.get("epoch", 0)),
                         int(end.get("step", 0)), 0.0, 0.0, end.get("error"), None)

    def _ended_without_a_word(self) -> list:
        """The writer died (a crash, a kill, a lost machine): its marker is there but nobody holds it."""
        from cnnviz.training.rundir import RunFolder

        folder = RunFolder(self.path)
        if folder.marker.exists() and folder.interrupted():
            self._finished = True
            return [FitResult(STOPPED, len(self.timeline.history.epochs), self.timeline.history.steps, 0.0, 0.0,
                              "the training process ended without finishing; this is what it recorded")]
        return []


def _latest(t: RunTimeline, step: int) -> StepMetrics:
    """Where the run stood at `step`, from its last steps record (or as well as the history says)."""
    latest = dict(t.latest or {})
    fields = StepMetrics.__dataclass_fields__
    if set(fields) <= set(latest):
        try:
            return StepMetrics(**{k: latest[k] for k in fields})
        except TypeError:
            pass
    per_epoch = int(t.header.get("batches_per_epoch") or max(step, 1))
    epochs = int(t.header.get("recipe", {}).get("train", {}).get("epochs", 1) or 1)
    h = t.history
    return StepMetrics(step, (step - 1) // per_epoch + 1, epochs, (step - 1) % per_epoch + 1, per_epoch,
                       h.step_loss[-1], h.step_accuracy[-1], h.step_lr[-1], 0.0, None, 0.0)


def _epoch_of(t: RunTimeline, step: int) -> int:
    return sum(1 for e in t.history.epochs if e.step is not None and e.step <= step)


def _evaluation(t: RunTimeline, step: int) -> Evaluation | None:
    try:
        return t.evaluation_at(step)
    except CnnvizError:
        return None
