"""The exact weights of any step: train again from the nearest anchor before it, as the run did.

An anchor holds everything the run needs to go on bit-exactly (weights, optimizer state, random streams,
shuffle order, schedule position, recipe), and a live change of the recipe always left an anchor, so the
steps between an anchor and the one asked for are the run's own steps, recomputed. The cost is those steps
at training speed, with progress and cancel. A run trained on a GPU cannot be recomputed exactly (its kernels
are not deterministic): :func:`exact_weights` refuses it, and the nearest keyframe is what can be shown.
"""
from __future__ import annotations

import dataclasses
import threading

from collections.abc import Callable

import numpy as np
import torch

from cnnviz.errors import CnnvizError
from cnnviz.training.callbacks import Callback
from cnnviz.training.pacing import Every, Pacer
from cnnviz.timeline.reader import RunTimeline

Progress = Callable[[int, int], None]  # (steps done, steps to do)


class ReplayCancelled(CnnvizError):
    """The recomputation was cancelled."""

    def __init__(self) -> None:
        super().__init__("the recomputation was cancelled")


class _Watch(Callback):
    """Reports progress a few times a second and stops the replay when `cancel` is set."""

    def __init__(self, progress: Progress | None, cancel: threading.Event | None, start: int, target: int):
        self.progress, self.cancel, self.start, self.target = progress, cancel, start, target
        self.pacer: Pacer | None = None

    def on_fit_start(self, trainer) -> None:
        if self.cancel is not None and self.cancel.is_set():
            trainer.request_stop()
        every = Every(0.1)

        def tick() -> None:
            every.ticked()
            if self.cancel is not None and self.cancel.is_set():
                trainer.request_stop()
            if self.progress is not None:
                self.progress(trainer.step_count - self.start, self.target - self.start)

        self.pacer = Pacer(trainer.control, tick, every).start("cnnviz-replay")

    def on_fit_end(self, trainer, result) -> None:
        if self.pacer is not None:
            self.pacer.stop()


def exact_weights(timeline: RunTimeline, step: int, data=None, progress: Progress | None = None,
                  cancel: threading.Event | None = None) -> dict[str, np.ndarray]:
    """The weights after `step` (0: the initial weights), recomputed from the nearest anchor before it.

    `data` is the run's prepared data (loaded from the run's recipe when None). Raises CnnvizError when the
    step is not in the run, the run cannot be recomputed exactly, or it was cancelled (ReplayCancelled)."""
    from cnnviz.data.prepare import load_data
    from cnnviz.training.checkpoint import resume_trainer

    if step < 0 or step > timeline.last_step:
        raise CnnvizError(f"step {step} is not in this run (it has steps 0 to {timeline.last_step})")
    anchor_step = timeline.anchor_before(step)
    if anchor_step is None:
        raise CnnvizError(f"no anchor at or before step {step}: this run cannot recompute it")
    anchor = timeline.load_anchor(anchor_step)
    if anchor_step == step:
        return {k: v.numpy() for k, v in anchor.model_state.items()}
    if not timeline.exact:
        raise CnnvizError("this run was trained where steps cannot be recomputed exactly (a GPU); the nearest "
                          "keyframe is what can be shown")
    if data is None:
        data = load_data(anchor.recipe.data, fallback=False)
    data = dataclasses.replace(data, val=None)  # the validation split only informs epoch figures
    recipe = anchor.recipe.replace(train__max_steps=step, train__evaluate_test=False,
                                   train__epochs=max(anchor.recipe.train.epochs, anchor.epoch + 1 + step))
    threads = timeline.header.get("threads")
    before = torch.get_num_threads()
    watch = _Watch(progress, cancel, anchor_step, step)
    try:
        if isinstance(threads, int) and threads > 0:
            torch.set_num_threads(threads)  # the run's thread count: float sums then add up in the same order
        trainer = resume_trainer(anchor, data, [watch], recipe=recipe)
        for op in timeline.surgeries[len(anchor.surgery):]:  # the filter operations since the anchor, as they ran
            if op.step < step:
                trainer.call_at_step(op.step, lambda op=op: trainer.apply_operation(op))
        result = trainer.fit()
    finally:
        torch.set_num_threads(before)
    if cancel is not None and cancel.is_set() and trainer.step_count < step:
        raise ReplayCancelled()
    if result.status == "failed" or trainer.step_count != step:
        raise CnnvizError(f"could not recompute step {step}: {result.error or f'stopped at {trainer.step_count}'}")
    if progress is not None:
        progress(step - anchor_step, step - anchor_step)
    return {k: v.detach().cpu().numpy().copy() for k, v in trainer.model.state_dict().items()}


def replay_seconds_estimate(timeline: RunTimeline, step: int) -> float | None:
    """About how long recomputing `step` takes (the steps from its anchor at the run's recorded speed)."""
    anchor = timeline.anchor_before(step)
    rate = (timeline.latest or {}).get("images_per_second")
    batch = timeline.header.get("recipe", {}).get("train", {}).get("batch_size") if timeline.header else None
    if anchor is None or not rate or not batch:
        return None
    return (step - anchor) * batch / rate


