"""The metric history of a run: per-step curves and per-epoch summaries."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from typing import Any

import numpy as np

from cnnviz.errors import CheckpointError
from cnnviz.training.messages import EpochMetrics
from cnnviz.validation import check_fields, check_type, describe


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
    def restore(cls, arrays: dict[str, np.ndarray], epochs: Any, test_accuracy: Any) -> "History":
        """The history stored in a run file, checked: raises :class:`CheckpointError` for damaged data.

        ``arrays``: the per-step curves, 1-D and of one length; ``epochs``: a list of
        :class:`EpochMetrics` dicts; ``test_accuracy``: a list of numbers. Metrics may be NaN or
        infinite (a diverging run measures such values), but never of another type.
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
            step_loss=steps["step_loss"].astype(float).tolist(),
            step_accuracy=steps["step_accuracy"].astype(float).tolist(),
            step_lr=steps["step_lr"].astype(float).tolist(),
            epochs=restored,
            test_accuracy=tests,
        )

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
