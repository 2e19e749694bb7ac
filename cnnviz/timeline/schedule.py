"""Which steps get a weight keyframe, and at which precision, within the run's byte budget.

The network changes fastest at the start, so keyframes are dense early and sparse later: the planned steps
are spaced evenly on a log scale from the first step to the last (every step at first, then ever wider
gaps), and every epoch end has an anchor (a full, exact state) that serves as a keyframe too.

The budget (default 100 MB) is for the whole run folder. It pays first for what the run needs whatever the
keyframes (:func:`reserve_bytes`: an anchor per epoch end plus the start, each with its optimizer state; a
recorded evaluation per epoch; the checkpoint; the event log with at most ``MAX_STATS_RECORDS`` records of
layer statistics), then for the keyframes. The precision is the best of float32, float16, 8 bits per value,
and 8 bits compressed with zlib (about 0.8 of the size, ~6 ms a keyframe of 244k weights) at which at least
``MIN_KEYFRAMES`` keyframes fit (or one per step, for a shorter run); when none does, the last and as many
as fit. Anchors are never dropped for the budget: they are what makes every step exact.

Time bounds the keyframes too: the recorder thins the plan (evenly along it, so the spacing stays
logarithmic) when writing them would take more than ``KEYFRAME_SHARE`` of the training time, as measured on
the run's first keyframes and steps (`recorder.py`): a short run of a tiny model, whose steps take a few
milliseconds, gets fewer keyframes than the byte budget would allow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnviz.timeline.store import BYTES_PER_VALUE, PRECISIONS

DEFAULT_BUDGET_BYTES = 100_000_000
MIN_KEYFRAMES = 200
MAX_STATS_RECORDS = 600  # records of layer statistics in one fit (they are spaced to fit)
STATS_BYTES_PER_LAYER = 700  # one layer's figures in a statistics record (two 32-bin histograms and numbers)
STEP_EVENT_BYTES = 80  # a step's loss, accuracy and learning rate in the event log
EPOCH_EVENT_BYTES = 4_000  # an epoch's and an evaluation's events (the confusion matrix)
ZLIB_RATIO = 0.85  # what zlib leaves of an 8-bit keyframe (0.79-0.85 measured once training has started)
MARGIN = 0.99  # plan within 99% of the budget: the sizes planned with are estimates
KEYFRAME_SHARE = 0.008  # the share of the training time the keyframes may take


@dataclass(frozen=True)
class KeyframePlan:
    """The keyframe steps planned for one fit, their precision and what the plan expects to spend."""

    steps: tuple[int, ...]
    precision: str
    keyframe_bytes: int  # one keyframe
    anchor_bytes: int  # one anchor
    budget_bytes: int
    compress: bool = False  # 8-bit keyframes compressed with zlib (only when the budget needs it)

    @property
    def planned_bytes(self) -> int:
        return len(self.steps) * self.keyframe_bytes


def reserve_bytes(epochs_left: int, steps_left: int, anchor_bytes: int, eval_bytes: int, layers: int) -> int:
    """What the rest of a fit writes besides keyframes: an anchor and an evaluation per epoch end (and one
    more anchor, where the fit stops), the checkpoint (an anchor's size), and the event log."""
    return ((epochs_left + 1) * (anchor_bytes + eval_bytes + EPOCH_EVENT_BYTES) + anchor_bytes
            + min(MAX_STATS_RECORDS, steps_left) * STATS_BYTES_PER_LAYER * max(1, layers)
            + steps_left * STEP_EVENT_BYTES)


def optimizer_slots(name: str, momentum: float = 0.0) -> int:
    """How many weight-sized tensors the optimizer keeps (Adam two, SGD with momentum one, ...): an anchor
    holds them, and they only exist after the first step, so an anchor of step 0 is smaller than the rest."""
    return {"adam": 2, "adadelta": 2, "rmsprop": 1 + (momentum > 0)}.get(name, int(momentum > 0))


def plan_keyframes(first: int, last: int, epochs_left: int, values: int, anchor_bytes: int,
                   budget_bytes: int = DEFAULT_BUDGET_BYTES, spent_bytes: int = 0, eval_bytes: int = 0,
                   layers: int = 1) -> KeyframePlan:
    """Keyframe steps in ``(first, last]`` for a model of `values` weights.

    Parameters
    ----------
    first, last
        The step the fit starts from (already recorded) and the last step it plans to reach.
    epochs_left
        Epoch ends still to come in that span (each gets an anchor and an evaluation).
    anchor_bytes
        The size of one anchor (weights, optimizer state, random streams).
    spent_bytes
        What the run folder already holds (a continued run has less budget left).
    eval_bytes, layers
        The size of one recorded evaluation, and the layers with statistics (see :func:`reserve_bytes`).
    """
    span = max(0, last - first)
    left = int(budget_bytes * MARGIN) - spent_bytes - reserve_bytes(epochs_left, span, anchor_bytes, eval_bytes,
                                                                    layers)
    want = min(MIN_KEYFRAMES, span)
    candidates = [(p, False, values * BYTES_PER_VALUE[p] + 1024) for p in PRECISIONS]
    candidates.append((PRECISIONS[-1], True, int(values * BYTES_PER_VALUE[PRECISIONS[-1]] * ZLIB_RATIO) + 1024))
    for precision, compress, size in candidates:
        fits = max(0, left // size)
        if fits >= want:
            count = int(min(span, fits, 4 * MIN_KEYFRAMES))
            break
    else:
        count = int(max(0, min(span, left // size)))
    return KeyframePlan(log_spaced(first, last, count), precision, size, anchor_bytes, budget_bytes, compress)


def thin(steps: tuple[int, ...], keep: int) -> tuple[int, ...]:
    """`keep` of `steps`, evenly along them (a log-spaced plan stays log-spaced), the last one kept."""
    if keep >= len(steps):
        return steps
    if keep <= 0:
        return ()
    index = np.unique(np.round(np.linspace(len(steps) - 1, 0, keep)).astype(np.int64))
    return tuple(steps[i] for i in index)


def log_spaced(first: int, last: int, count: int) -> tuple[int, ...]:
    """`count` distinct steps in ``(first, last]``, evenly spaced on a log scale of the steps since `first`:
    consecutive at the start, then spreading out; the last step is always one of them."""
    span = last - first
    if count <= 0 or span <= 0:
        return ()
    if count >= span:
        return tuple(range(first + 1, last + 1))
    # every step from the first up to m, then a geometric series from m to the span; m is the least for which
    # the series' first gap is a whole step, so no two points round to the same step (one numpy pass)
    heads = np.arange(1, count, dtype=np.float64)
    ratios = (span / heads) ** (1.0 / (count - heads))
    fits = np.nonzero(heads * (ratios - 1.0) >= 1.0)[0]
    m = int(heads[fits[0]]) if len(fits) else count
    tail = np.floor(m * ratios[m - 1] ** np.arange(1, count - m + 1) + 0.5) if m < count else np.zeros(0)
    chosen = np.concatenate([np.arange(1, m + 1), tail]).astype(np.int64)
    chosen[-1] = span
    return tuple(int(first + s) for s in chosen)
