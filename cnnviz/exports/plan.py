"""Which steps an animation shows, and the figures its captions give for each.

By default one frame a stored step (keyframes and anchors), thinned evenly by index to at most
``max_frames``: the keyframes are spaced on a log scale (dense where the network changes fastest), and
thinning by index keeps that spacing. With ``every`` N, one frame every N steps from 0 to the last step
(and the last step), each showing the stored step at or before it.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from cnnviz.errors import CnnvizError

MAX_FRAMES = 10_000  # an hour at 3 frames a second; more is a mistake (and memory for a GIF)


@dataclass(frozen=True)
class FrameStep:
    """One frame: the step it stands for and the stored step whose weights it shows (at or before it)."""

    step: int
    stored: int


def plan_frames(timeline, every: int | None = None, max_frames: int = 150) -> list[FrameStep]:
    """The frames of an animation of `timeline` (a :class:`~cnnviz.timeline.reader.RunTimeline`).

    Raises
    ------
    CnnvizError
        The run stores the weights of fewer than two steps (nothing moves), or `every` makes more than
        :data:`MAX_FRAMES` frames.
    """
    stored = timeline.keyframe_steps()
    if len(stored) < 2:
        why = ("it was recorded without a timeline (--no-timeline, or by a cnnviz before the timeline)"
               if not timeline.has_timeline else "its timeline holds the weights of one step only")
        raise CnnvizError(f"{timeline.path}: nothing to animate: {why}. Train it with `cnnviz train --out RUN` "
                          "to record one")
    if every is None:
        if len(stored) > max_frames:
            picks = np.unique(np.round(np.linspace(0, len(stored) - 1, max_frames)).astype(int))
            stored = [stored[i] for i in picks]
        return [FrameStep(s, s) for s in stored]
    last = max(timeline.last_step, stored[-1])
    count = last // every + 1 + (last % every != 0)
    if count > MAX_FRAMES:
        raise CnnvizError(f"--every {every} makes {count:,} frames of the run's {last:,} steps; at most "
                          f"{MAX_FRAMES:,}: use --every {math.ceil(last / (MAX_FRAMES - 1))} or more")
    steps = list(range(0, last + 1, every)) + ([last] if last % every else [])
    return [FrameStep(s, timeline.nearest_keyframe(s)) for s in steps]


@dataclass(frozen=True)
class Figures:
    """What a frame's caption says about its step."""

    step: int
    last_step: int
    epoch: float  # epochs done at the step (2.5: half-way through the third)
    epochs: int  # the run's planned epochs
    test_accuracy: float | None  # the nearest test evaluation at or before the step
    test_step: int | None
    train_accuracy: float | None  # the moving average over the steps up to it
    window: int  # steps in that average


class RunFigures:
    """Looks the caption's figures up for any step of a run, from its history and evaluations."""

    def __init__(self, timeline) -> None:
        from cnnviz.training.history import WINDOW

        self.window = WINDOW
        history = timeline.history
        header = timeline.header if isinstance(timeline.header, dict) else {}
        self.last_step = max(timeline.last_step, 1)
        ends = [e.step for e in history.epochs if e.step]
        per_epoch = header.get("batches_per_epoch")
        if not isinstance(per_epoch, int) or per_epoch < 1:
            per_epoch = ends[0] if ends else None
        self.per_epoch = per_epoch
        recipe = header.get("recipe") if isinstance(header.get("recipe"), dict) else {}
        planned = (recipe.get("train") or {}).get("epochs") if isinstance(recipe.get("train"), dict) else None
        self.epochs = int(planned) if isinstance(planned, int) and planned > 0 else max(1, len(ends))
        tests = {s: e.get("accuracy") for s, e in timeline.evaluations.items() if isinstance(e, dict)}
        self._test_steps = sorted(s for s, a in tests.items() if isinstance(a, (int, float)) and math.isfinite(a))
        self._tests = tests
        self._train = history.moving_average("step_accuracy") if history.steps else np.zeros(0)

    def at(self, step: int) -> Figures:
        i = bisect.bisect_right(self._test_steps, step) - 1
        test_step = self._test_steps[i] if i >= 0 else None
        train = float(self._train[step - 1]) if 1 <= step <= len(self._train) else None
        epoch = step / self.per_epoch if self.per_epoch else float("nan")
        return Figures(step, self.last_step, epoch, self.epochs,
                       float(self._tests[test_step]) if test_step is not None else None, test_step,
                       train if train is not None and math.isfinite(train) else None, self.window)


def caption_lines(f: Figures) -> tuple[str, str]:
    """The caption's two lines: the figures, large; where they come from, small."""
    epoch = f"epoch {f.epoch:.1f} of {f.epochs}" if math.isfinite(f.epoch) else f"of {f.epochs} epochs"
    test = f"test {f.test_accuracy * 100:.1f}%" if f.test_accuracy is not None else "test -"
    train = f"train {f.train_accuracy * 100:.1f}%" if f.train_accuracy is not None else "train -"
    big = f"step {f.step:,}   {epoch}   {test}   {train}"
    where = [f"step {f.step:,} of {f.last_step:,}"]
    where.append(f"test: evaluated at step {f.test_step:,}" if f.test_step is not None else "test: not evaluated yet")
    where.append(f"train: mean of the last {f.window} batches" if f.train_accuracy is not None
                 else "train: no batch yet")
    return big, ";  ".join(where)
