"""Plain data that leaves the training loop: metrics, evaluations, weight snapshots, results.

Everything here is a frozen dataclass of floats, ints, strings and *copied* numpy arrays, so it can be
handed to another thread or pickled to another process while the trainer goes on mutating its tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, Union

import numpy as np


class RunState(str, Enum):
    """The states a training run goes through, as the window shows them (each equals its name in lower case,
    so a state reads and compares as plain text in messages, settings and tests)."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


IDLE, RUNNING, PAUSED, STOPPED, FINISHED, FAILED = RunState
ENDED = frozenset({STOPPED, FINISHED, FAILED})  # states a run ends in


@dataclass(frozen=True)
class StepMetrics:
    """One optimisation step (one batch)."""

    step: int  # global batch count, 1-based
    epoch: int  # 1-based
    epochs: int
    batch: int  # batch within the epoch, 1-based
    batches_per_epoch: int
    loss: float
    accuracy: float
    lr: float
    images_per_second: float  # recent throughput
    eta_seconds: float | None  # time left for the whole run
    elapsed_seconds: float

    @property
    def progress(self) -> float:
        """Fraction of the run done, 0..1."""
        total = self.epochs * self.batches_per_epoch
        return min(1.0, self.step / total) if total else 1.0


@dataclass(frozen=True)
class EpochMetrics:
    """Averages over one epoch, and the validation figures at its end."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float
    images_per_second: float
    step: int | None = None  # the step the epoch ended at (None only in checkpoints from before it was kept)


@dataclass(frozen=True)
class Evaluation:
    """A full evaluation of one split: what the evaluation panel and the CLI show."""

    split: str  # "test" or "val"
    step: int  # training step the weights came from
    loss: float
    accuracy: float
    per_class_accuracy: np.ndarray  # (C,)
    confusion: np.ndarray  # (C, C) int64, rows true, columns predicted
    labels: np.ndarray  # (N,) int64
    predicted: np.ndarray  # (N,) int64
    probabilities: np.ndarray  # (N, C) float32


@dataclass(frozen=True)
class WeightsSnapshot:
    """A copy of the model's weights (and batch-norm buffers) at one step."""

    step: int
    epoch: int
    state: dict[str, np.ndarray] = field(repr=False)


@dataclass(frozen=True)
class StateChanged:
    """The run moved to another state (running, paused, ...)."""

    state: RunState
    message: str = ""


@dataclass(frozen=True)
class Notice:
    """Something the user should read that does not change the run's state (a save that failed, say)."""

    text: str
    level: str = "warning"  # "info", "warning" or "error"


@dataclass(frozen=True)
class FitResult:
    """How a call to :meth:`Trainer.fit` ended."""

    status: RunState  # FINISHED, STOPPED or FAILED
    epochs_completed: int
    steps: int
    seconds: float
    images_per_second: float
    error: str | None = None
    evaluation: Evaluation | None = None


@dataclass(frozen=True)
class StepBatch:
    """The steps done since the last message: every step's loss/accuracy/lr, and the latest metrics."""

    first_step: int  # step number of losses[0]
    losses: np.ndarray  # float32
    accuracies: np.ndarray  # float32
    lrs: np.ndarray  # float32
    latest: StepMetrics


@dataclass(frozen=True)
class Rewound:
    """A failed run went back to its last good state: only its first `steps` steps and `epochs` epochs stay."""

    steps: int
    epochs: int


@dataclass(frozen=True)
class Surgery:
    """The filter operations the run has applied so far (sent after each new one and after a rewind)."""

    operations: tuple  # of cnnviz.training.surgery.FilterOperation, in the order applied


@dataclass(frozen=True)
class Saved:
    """A checkpoint was written."""

    path: str
    epoch: int
    step: int
    autosave: bool


# -- commands: what the window (or any driver) asks a training run to do ---------------------------------
@dataclass(frozen=True)
class Pause:
    """Pause before the next batch."""


@dataclass(frozen=True)
class Resume:
    """Go on after a pause."""


@dataclass(frozen=True)
class Step:
    """Train exactly one more batch, then stay paused (pauses first if running)."""


@dataclass(frozen=True)
class Stop:
    """End the run before the next batch; it can be continued from its last save."""


@dataclass(frozen=True)
class SetLearningRate:
    """A new base learning rate from the next batch on (the schedule scales from it)."""

    lr: float


@dataclass(frozen=True)
class SetBatchSize:
    """A new batch size from the next epoch on."""

    batch_size: int


@dataclass(frozen=True)
class AckSnapshot:
    """The last weight snapshot was drawn: the next one may be sent."""


@dataclass(frozen=True)
class SaveCheckpoint:
    """Write a checkpoint to `path` between two batches (answered by a Saved message or a Notice)."""

    path: str


@dataclass(frozen=True)
class OperateFilter:
    """Zero, freeze, unfreeze or re-initialise (`action`) filter `index` of conv layer `layer` before the next
    batch (answered by a Surgery message, or a Notice saying why not)."""

    layer: str
    index: int
    action: str


Command = Union[Pause, Resume, Step, Stop, SetLearningRate, SetBatchSize, AckSnapshot, SaveCheckpoint, OperateFilter]


class MessageSource(Protocol):
    """Where a view of a run gets the run's messages from: a training process today; a run folder written
    by another process tomorrow. Polled from the window's training thread."""

    def poll(self, timeout: float = 0.0) -> list:
        """The messages that arrived, waiting up to `timeout` seconds for the first."""

    @property
    def finished(self) -> bool:
        """True once the run's FitResult was delivered (or the source ended otherwise)."""

    def close(self) -> None:
        """Free what the source holds (pipes, shared memory, file handles)."""
