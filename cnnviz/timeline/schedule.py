"""Which steps get a weight keyframe, and at which precision, within the run's byte budget.

The network changes fastest at the start, so keyframes are dense early and sparse later: the planned steps
are spaced evenly on a log scale from the first step to the last (every step at first, then ever wider
gaps), and every epoch end has an anchor (a full, exact state) that serves as a keyframe too.

The budget (default 100 MB) pays first for the anchors (one per epoch end, plus the start), then for the
keyframes. The precision is the best of float32, float16 and 8 bits per value at which at least
``MIN_KEYFRAMES`` keyframes fit (or one per step, for a shorter run); when none does, 8 bits and as many as
fit. Anchors are never dropped for the budget: they are what makes every step exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnviz.timeline.store import BYTES_PER_VALUE, PRECISIONS

DEFAULT_BUDGET_BYTES = 100_000_000
MIN_KEYFRAMES = 200
STATS_BYTES_PER_EPOCH = 150_000  # the layer statistics (a few KB a record, a few records a second)
MARGIN = 0.98  # plan within 98% of the budget: the sizes planned with are estimates


@dataclass(frozen=True)
class KeyframePlan:
    """The keyframe steps planned for one fit, their precision and what the plan expects to spend."""

    steps: tuple[int, ...]
    precision: str
    keyframe_bytes: int  # one keyframe
    anchor_bytes: int  # one anchor
    budget_bytes: int

    @property
    def planned_bytes(self) -> int:
        return len(self.steps) * self.keyframe_bytes


def plan_keyframes(first: int, last: int, epochs_left: int, values: int, anchor_bytes: int,
                   budget_bytes: int = DEFAULT_BUDGET_BYTES, spent_bytes: int = 0) -> KeyframePlan:
    """Keyframe steps in ``(first, last]`` for a model of `values` weights.

    Parameters
    ----------
    first, last
        The step the fit starts from (already recorded) and the last step it plans to reach.
    epochs_left
        Epoch ends still to come in that span (each gets an anchor).
    anchor_bytes
        The size of one anchor (weights, optimizer state, random streams).
    spent_bytes
        What the run's timeline already holds (a continued run has less budget left).
    """
    span = max(0, last - first)
    left = int(budget_bytes * MARGIN) - spent_bytes - (epochs_left + 1) * (anchor_bytes + STATS_BYTES_PER_EPOCH)
    want = min(MIN_KEYFRAMES, span)
    precision, count, size = PRECISIONS[-1], 0, values * BYTES_PER_VALUE[PRECISIONS[-1]] + 1024
    for candidate in PRECISIONS:
        one = values * BYTES_PER_VALUE[candidate] + 1024
        fits = max(0, left // one)
        if fits >= want:
            precision, count, size = candidate, int(min(span, fits, 4 * MIN_KEYFRAMES)), one
            break
    else:
        count = int(max(0, min(span, left // size)))
    return KeyframePlan(log_spaced(first, last, count), precision, size, anchor_bytes, budget_bytes)


def log_spaced(first: int, last: int, count: int) -> tuple[int, ...]:
    """`count` distinct steps in ``(first, last]``, evenly spaced on a log scale of the steps since `first`:
    consecutive at the start, then spreading out; the last step is always one of them."""
    span = last - first
    if count <= 0 or span <= 0:
        return ()
    if count >= span:
        return tuple(range(first + 1, last + 1))
    chosen: np.ndarray = np.array([], dtype=np.int64)
    points = count
    while len(chosen) < count:  # rounding merges the first points: ask for more until there are enough
        chosen = np.unique(np.round(np.geomspace(1, span, points)).astype(np.int64))
        points += max(1, count - len(chosen))
    if len(chosen) > count:  # thin evenly, keeping both ends: the spacing stays logarithmic
        chosen = chosen[np.round(np.linspace(0, len(chosen) - 1, count)).astype(np.int64)]
    return tuple(int(first + s) for s in chosen)
