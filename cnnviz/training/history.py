"""The metric history of a run: per-step series and per-epoch summaries, one object wherever it is kept.

The trainer appends to it one step at a time, the window's Session in batches as steps stream in, and the
curves draw straight from it. Each per-step series is a :class:`Series`: a numpy array that doubles when
full, so appending is cheap and a view of the filled part costs nothing. Moving averages are computed for
the new steps only, when a reader asks for them (the trainer never does).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from cnnviz.errors import CheckpointError
from cnnviz.training.messages import EpochMetrics
from cnnviz.validation import check_fields, check_type, describe

WINDOW = 50  # steps in the moving averages


class Series:
    """A growing one-dimensional float64 array; indexing and iteration see the filled part only.

    float64, as the Python floats the trainer appends (a learning rate of 0.01 stays 0.01); checkpoints and
    the messages to the window carry float32."""

    __slots__ = ("_data", "_n")

    def __init__(self, values: Iterable[float] = (), capacity: int = 1024) -> None:
        values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, np.float64)
        self._data = np.zeros(max(capacity, len(values)), np.float64)
        self._data[:len(values)] = values
        self._n = len(values)

    def append(self, value: float) -> None:
        if self._n == len(self._data):
            self._grow(self._n + 1)
        self._data[self._n] = value
        self._n += 1

    def extend(self, values) -> None:
        values = np.asarray(values, np.float64).reshape(-1)
        need = self._n + len(values)
        if need > len(self._data):
            self._grow(need)
        self._data[self._n:need] = values
        self._n = need

    def _grow(self, need: int) -> None:
        capacity = max(1024, len(self._data))
        while capacity < need:
            capacity *= 2
        grown = np.zeros(capacity, np.float64)
        grown[:self._n] = self._data[:self._n]
        self._data = grown

    @property
    def values(self) -> np.ndarray:
        """The filled part (a view: read it before the next append)."""
        return self._data[:self._n]

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.values[index]
        return float(self.values[index])

    def __delitem__(self, index: slice) -> None:
        """Only `del series[n:]` (keep the first n values) is supported."""
        if not isinstance(index, slice) or index.stop is not None or index.step is not None:
            raise TypeError("a Series can only be cut at its end: del series[n:]")
        self._n = min(self._n, len(range(*slice(None, index.start).indices(self._n))))

    def __iter__(self):
        return iter(self.values.tolist())

    def __eq__(self, other) -> bool:
        try:
            return len(self) == len(other) and bool(np.array_equal(self.values, np.asarray(other, np.float64)))
        except TypeError:
            return NotImplemented

    def __repr__(self) -> str:
        return f"Series({self.values!r})"

    def tolist(self) -> list[float]:
        return self.values.tolist()


def _series() -> Series:
    return Series()


@dataclass(eq=False)
class History:
    """Everything the curves show, kept by the trainer, streamed to the window and stored in checkpoints."""

    step_loss: Series = field(default_factory=_series)
    step_accuracy: Series = field(default_factory=_series)
    step_lr: Series = field(default_factory=_series)
    epochs: list[EpochMetrics] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)  # after each epoch, when evaluated

    def __post_init__(self) -> None:
        for name in ("step_loss", "step_accuracy", "step_lr"):
            if not isinstance(getattr(self, name), Series):
                setattr(self, name, Series(getattr(self, name)))
        self.epochs = _with_steps(list(self.epochs), self.steps, None)
        self._averages: dict[str, Series] = {}

    # -- steps ---------------------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Steps recorded (step numbers run from 1 to this)."""
        return len(self.step_loss)

    def add_steps(self, losses, accuracies, lrs) -> None:
        """Append the next steps' values (as a StepBatch brings them)."""
        self.step_loss.extend(losses)
        self.step_accuracy.extend(accuracies)
        self.step_lr.extend(lrs)

    def moving_average(self, name: str, window: int = WINDOW) -> np.ndarray:
        """The trailing mean of series `name` ("step_loss" or "step_accuracy") over `window` steps, one value
        per step; computed for the steps added since the last call only."""
        values = getattr(self, name)
        cached = self._averages.setdefault(name, Series())
        n = len(values)
        if len(cached) > n:  # cut back (a failed run's history): start over
            del cached[0:]
        if len(cached) < n:
            cached.extend(trailing_mean(values.values, len(cached), n, window))
        return cached.values

    def step_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).values.astype(np.float32) for name in ("step_loss", "step_accuracy",
                                                                                  "step_lr")}

    # -- epochs --------------------------------------------------------------------------------------------
    def epoch_ends(self) -> list[int]:
        """The step at which each recorded epoch ended."""
        return [e.step for e in self.epochs]

    def epochs_json(self) -> list[dict]:
        return [dataclasses.asdict(e) for e in self.epochs]

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], epochs: Any, test_accuracy: Any,
                steps_per_epoch: int | None = None) -> "History":
        """The history stored in a run file, checked: raises :class:`CheckpointError` for damaged data.

        ``arrays``: the per-step curves, 1-D and of one length; ``epochs``: a list of
        :class:`EpochMetrics` dicts; ``test_accuracy``: a list of numbers. Metrics may be NaN or
        infinite (a diverging run measures such values), but never of another type. Epochs saved before
        they carried their step get it from `steps_per_epoch` (the run's batches per epoch) or, failing
        that, evenly spread over the steps.
        """
        steps = {}
        for name in ("step_loss", "step_accuracy", "step_lr"):
            values = np.asarray(arrays.get(name, np.zeros(0, np.float32)))
            if values.ndim != 1 or values.dtype.kind not in "fiu":
                raise CheckpointError(f"history: {name} must be a list of numbers, got an array of shape "
                                      f"{values.shape} and type {values.dtype}")
            steps[name] = values
        lengths = {len(v) for v in steps.values()}
        if len(lengths) > 1:
            raise CheckpointError("history: the per-step loss, accuracy and learning rate have different lengths "
                                  f"({', '.join(str(len(v)) for v in steps.values())})")
        if not isinstance(epochs, list):
            raise CheckpointError(f"history: epochs must be a list, got {describe(epochs)}")
        restored = [EpochMetrics(**check_fields(EpochMetrics, e, CheckpointError, f"history epoch {i}", finite=False))
                    for i, e in enumerate(epochs, start=1)]
        if not isinstance(test_accuracy, list):
            raise CheckpointError(f"history: test accuracy must be a list, got {describe(test_accuracy)}")
        tests = [check_type(v, float, f"history: test accuracy {i}", CheckpointError, finite=False)
                 for i, v in enumerate(test_accuracy, start=1)]
        return cls(
            step_loss=Series(steps["step_loss"]), step_accuracy=Series(steps["step_accuracy"]),
            step_lr=Series(steps["step_lr"]),
            epochs=_with_steps(restored, len(steps["step_loss"]), steps_per_epoch),
            test_accuracy=tests,
        )

    def truncated(self, steps: int, epochs: int) -> "History":
        """A copy holding the first `steps` steps and `epochs` epochs (a failed run's kept state)."""
        return History(Series(self.step_loss[:steps]), Series(self.step_accuracy[:steps]),
                       Series(self.step_lr[:steps]), self.epochs[:epochs], self.test_accuracy[:epochs])

    # -- text ----------------------------------------------------------------------------------------------
    def to_csv(self) -> str:
        """Per-epoch metrics as CSV text (what `cnnviz train --out` writes)."""
        lines = ["epoch,train_loss,train_accuracy,val_loss,val_accuracy,test_accuracy,lr,seconds,"
                 "images_per_second,step"]
        for i, e in enumerate(self.epochs):
            test = self.test_accuracy[i] if i < len(self.test_accuracy) else None
            cells = [e.epoch, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, test, e.lr,
                     e.seconds, e.images_per_second, e.step]
            lines.append(",".join("" if c is None else (f"{c:.6g}" if isinstance(c, float) else str(c))
                                  for c in cells))
        return "\n".join(lines) + "\n"

    def steps_csv(self) -> str:
        """Per-step loss, accuracy and learning rate as CSV text (the curves export)."""
        rows = zip(self.step_loss, self.step_accuracy, self.step_lr)
        body = "\n".join(f"{i},{l:.6g},{a:.6g},{r:.6g}" for i, (l, a, r) in enumerate(rows, start=1))
        return "step,loss,accuracy,lr\n" + body + ("\n" if body else "")


def _with_steps(epochs: list[EpochMetrics], steps: int, steps_per_epoch: int | None) -> list[EpochMetrics]:
    """Epochs recorded before they carried their step get it: from the run's batches per epoch when known,
    else spread evenly over the `steps` recorded."""
    if all(e.step is not None for e in epochs):
        return epochs
    count = len(epochs)
    if steps_per_epoch:
        ends = [min(steps, (i + 1) * steps_per_epoch) for i in range(count)]
    else:
        ends = [int(round(steps * (i + 1) / count)) for i in range(count)]
    return [dataclasses.replace(e, step=end) if e.step is None else e for e, end in zip(epochs, ends)]


def trailing_mean(values: np.ndarray, start: int, stop: int, window: int = WINDOW) -> np.ndarray:
    """Mean of the last ``window`` finite values up to each index in ``[start, stop)`` of ``values``.

    Early indices average what there is; non-finite values are skipped (NaN where a window has none).
    Only ``values[start - window + 1 : stop]`` is read, so appending k steps costs O(k + window).
    """
    lo = max(0, start - window + 1)
    seg = np.asarray(values[lo:stop], dtype=np.float64)
    finite = np.isfinite(seg)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, seg, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    idx = np.arange(start, stop)
    hi_i = idx + 1 - lo
    lo_i = np.maximum(0, idx - window + 1) - lo
    n = counts[hi_i] - counts[lo_i]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[hi_i] - sums[lo_i]) / np.maximum(n, 1), np.nan)
