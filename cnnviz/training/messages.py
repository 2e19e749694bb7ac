"""Plain data that leaves the training loop: metrics, evaluations, weight snapshots, results.

Everything here is a frozen dataclass of floats, ints, strings and *copied* numpy arrays, so it can be
handed to another thread or pickled to another process while the trainer goes on mutating its tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# States a training run goes through, as the window shows them.
IDLE, RUNNING, PAUSED, STOPPED, FINISHED, FAILED = "idle", "running", "paused", "stopped", "finished", "failed"


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

    state: str
    message: str = ""


@dataclass(frozen=True)
class FitResult:
    """How a call to :meth:`Trainer.fit` ended."""

    status: str  # FINISHED, STOPPED or FAILED
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
class Saved:
    """A checkpoint was written."""

    path: str
    epoch: int
    step: int
    autosave: bool
