"""Callbacks: how the world learns what the training loop did, without the loop knowing who listens."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from cnnviz.training.messages import EpochMetrics, Evaluation, FitResult, StepMetrics


class Callback:
    """Override the hooks you need; the trainer only calls the ones a subclass overrides. Each hook gets the
    :class:`~cnnviz.training.trainer.Trainer` that calls it first (left unannotated: this module is what the
    trainer imports, and must not import it back)."""

    def on_fit_start(self, trainer) -> None: ...
    def on_step_end(self, trainer, metrics: "StepMetrics") -> None: ...
    def on_epoch_end(self, trainer, metrics: "EpochMetrics") -> None: ...
    def on_evaluation_start(self, trainer, split: str) -> None: ...  # "val" or "test", before it runs
    def on_evaluation(self, trainer, evaluation: "Evaluation") -> None: ...
    def on_state_change(self, trainer, state: str, message: str) -> None: ...
    def on_fit_end(self, trainer, result: "FitResult") -> None: ...
    def on_exception(self, trainer, error: BaseException) -> None: ...
    def on_recipe_change(self, trainer) -> None: ...  # a live change (learning rate, batch size) is about to apply
    def on_surgery(self, trainer, operation) -> None: ...  # a filter was zeroed, frozen, ... (a FilterOperation)


HOOKS = ("on_fit_start", "on_step_end", "on_epoch_end", "on_evaluation_start", "on_evaluation", "on_state_change",
         "on_fit_end", "on_exception", "on_recipe_change", "on_surgery")


def bound_hooks(callbacks, hook: str) -> tuple:
    """The bound methods of `callbacks` that override `hook` (so unused hooks cost nothing)."""
    base = getattr(Callback, hook)
    return tuple(getattr(cb, hook) for cb in callbacks if getattr(type(cb), hook, base) is not base)
