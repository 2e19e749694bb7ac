"""The metric history of a run: per-step curves and per-epoch summaries."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from cnnviz.training.messages import EpochMetrics


@dataclass
class History:
    """Everything the curves show, kept by the trainer and stored in checkpoints."""

    step_loss: list[float] = field(default_factory=list)
    step_accuracy: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    epochs: list[EpochMetrics] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)  # after each epoch, when evaluated

    def step_arrays(self) -> dict[str, np.ndarray]:
        return {
            "step_loss": np.asarray(self.step_loss, dtype=np.float32),
            "step_accuracy": np.asarray(self.step_accuracy, dtype=np.float32),
            "step_lr": np.asarray(self.step_lr, dtype=np.float32),
        }

    def epochs_json(self) -> list[dict]:
        return [dataclasses.asdict(e) for e in self.epochs]

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], epochs: list[dict], test_accuracy: list[float]) -> "History":
        return cls(
            step_loss=[float(v) for v in arrays.get("step_loss", [])],
            step_accuracy=[float(v) for v in arrays.get("step_accuracy", [])],
            step_lr=[float(v) for v in arrays.get("step_lr", [])],
            epochs=[EpochMetrics(**e) for e in epochs],
            test_accuracy=[float(v) for v in test_accuracy],
        )

    def truncated(self, steps: int, epochs: int) -> "History":
        """A copy holding the first `steps` steps and `epochs` epochs (a failed run's kept state)."""
        return History(self.step_loss[:steps], self.step_accuracy[:steps], self.step_lr[:steps],
                       self.epochs[:epochs], self.test_accuracy[:epochs])

    def to_csv(self) -> str:
        """Per-epoch metrics as CSV text (what `cnnviz train --out` writes)."""
        lines = ["epoch,train_loss,train_accuracy,val_loss,val_accuracy,test_accuracy,lr,seconds,images_per_second"]
        for i, e in enumerate(self.epochs):
            test = self.test_accuracy[i] if i < len(self.test_accuracy) else None
            cells = [e.epoch, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, test, e.lr, e.seconds,
                     e.images_per_second]
            lines.append(",".join("" if c is None else (f"{c:.6g}" if isinstance(c, float) else str(c))
                                  for c in cells))
        return "\n".join(lines) + "\n"

    def steps_csv(self) -> str:
        """Per-step loss, accuracy and learning rate as CSV text (the curves export)."""
        rows = zip(self.step_loss, self.step_accuracy, self.step_lr)
        body = "\n".join(f"{i},{l:.6g},{a:.6g},{r:.6g}" for i, (l, a, r) in enumerate(rows, start=1))
        return "step,loss,accuracy,lr\n" + body + ("\n" if body else "")
