"""Callbacks: how the world learns what the training loop did, without the loop knowing who listens."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from cnnviz.training.messages import EpochMetrics, Evaluation, FitResult, StepMetrics
    from cnnviz.training.trainer import Trainer


class Callback:
    """Override the hooks you need; the trainer only calls the ones a subclass overrides."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", metrics: "StepMetrics") -> None: ...
    def on_epoch_end(self, trainer: "Trainer", metrics: "EpochMetrics") -> None: ...
    def on_evaluation_start(self, trainer: "Trainer", split: str) -> None: ...  # "val" or "test", before it runs
    def on_evaluation(self, trainer: "Trainer", evaluation: "Evaluation") -> None: ...
    def on_state_change(self, trainer: "Trainer", state: str, message: str) -> None: ...
    def on_fit_end(self, trainer: "Trainer", result: "FitResult") -> None: ...
    def on_exception(self, trainer: "Trainer", error: BaseException) -> None: ...


HOOKS = ("on_fit_start", "on_step_end", "on_epoch_end", "on_evaluation_start", "on_evaluation", "on_state_change",
         "on_fit_end", "on_exception")


def bound_hooks(callbacks, hook: str) -> tuple:
    """The bound methods of `callbacks` that override `hook` (so unused hooks cost nothing)."""
    base = getattr(Callback, hook)
    return tuple(getattr(cb, hook) for cb in callbacks if getattr(type(cb), hook, base) is not base)
