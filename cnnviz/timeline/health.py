"""Training-health warnings from a run's layer statistics: dead or saturated units, exploding or vanishing
gradients, each with the step where it started.

A warning covers a *run* of statistics records (see ``stats.py``) in which its condition holds:

- ``dead``: more than half of an activation's units are dead (``dead_fraction > 0.5``);
- ``saturated``: more than half of a sigmoid's or tanh's units are saturated (``saturated_fraction > 0.5``);
- ``exploding``: a layer's gradient norm is above 1e3, not finite, or more than 100 times its median over the
  earlier records in which it was not exploding (after at least 3 of those, so the first steps' natural
  swings do not count);
- ``vanishing``: a layer's gradient norm is below 1e-7 while it was larger before, or one optimizer step
  moves its weights by less than 1e-7 of their size (``update_ratio < 1e-7``).

A run goes on through up to :data:`GAP_RECORDS` records in which the condition does not hold, so a figure
that flickers around its limit gives one warning, not dozens. A warning of an activation module names the
layer it follows (``conv1_relu`` -> ``conv1``) and keeps the module's name in its text.

:class:`HealthMonitor` takes the records as they arrive (a view of a growing run feeds only the new ones);
:func:`find_warnings` is the one-call form. Records of the wrong shape (a damaged log) are skipped. No Qt here.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from cnnviz.models.spec import ACTIVATIONS

DEAD_LIMIT = 0.5
SATURATED_LIMIT = 0.5
EXPLODING_NORM = 1e3
EXPLODING_FACTOR = 100.0
EXPLODING_BASELINE = 3  # earlier healthy records needed before the factor test counts
VANISHING = 1e-7
GAP_RECORDS = 2
KINDS = ("exploding", "vanishing", "dead", "saturated")  # most urgent first


@dataclass(frozen=True)
class HealthWarning:
    """One problem of one layer over a run of records.

    Attributes
    ----------
    kind : str
        ``"dead"``, ``"saturated"``, ``"exploding"`` or ``"vanishing"``.
    layer : str
        The weighted layer concerned (for an activation module, the layer it follows).
    start_step, last_step : int
        The steps of the first and the last record in which the condition held.
    text : str
        One line for a person, naming the module and the worst figure.
    """

    kind: str
    layer: str
    start_step: int
    last_step: int
    text: str


def _number(value) -> float | None:
    """A JSON figure as a float; None for anything else (None, text, a bool, a list)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def record_step(record) -> int | None:
    """The step of a stats record, or None when the record is not one (a damaged line)."""
    if not isinstance(record, dict) or not isinstance(record.get("layers"), dict):
        return None
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return None
    return step


def followed_layer(module: str, weighted: Iterable[str] = (), order: Sequence[str] | None = None) -> str:
    """The weighted layer an activation module follows: ``conv1_relu`` -> ``conv1``; a standalone activation
    (``act1``) -> the nearest weighted layer before it in `order` (the model's modules); else itself."""
    weighted = set(weighted)
    if module in weighted:
        return module
    for activation in sorted(ACTIVATIONS, key=len, reverse=True):  # "leaky_relu" before "relu"
        if module.endswith("_" + activation) and len(module) > len(activation) + 1:
            return module[: -len(activation) - 1]
    if order is not None and module in order:
        for name in reversed(list(order)[: list(order).index(module)]):
            if name in weighted:
                return name
    return module


def _span(start: int, last: int) -> str:
    return f"step {start:,}" if start == last else f"steps {start:,}-{last:,}"


@dataclass
class _Run:
    start: int
    last: int
    worst: dict[str, float | None]  # what held ("" or, for vanishing, gradients / updates) -> its worst figure
    baseline: float | None = None  # exploding: the median before the run
    misses: int = 0  # records since `last` in which the condition did not hold


@dataclass
class _Track:
    """One (kind, module): its closed runs, the open one, and what the tests remember of the past."""

    runs: list[_Run] = field(default_factory=list)
    open: _Run | None = None
    history: list[float] = field(default_factory=list)  # sorted healthy gradient norms (exploding)
    seen_large: bool = False  # a gradient norm >= VANISHING was seen (vanishing)


class HealthMonitor:
    """Finds :class:`HealthWarning` s in stats records fed in step order, a batch at a time.

    Parameters
    ----------
    order : sequence of str, optional
        The model's module names in order, to name the layer a standalone activation follows.
    """

    def __init__(self, order: Sequence[str] | None = None) -> None:
        self.order = list(order) if order is not None else None
        self._tracks: dict[tuple[str, str], _Track] = {}
        self.weighted: set[str] = set()  # the modules with weight statistics seen so far
        self._last_step = -1
        self.records = 0  # records taken in (damaged ones not counted)

    def update(self, records: Iterable[dict]) -> None:
        """Take in more records (those after the ones already fed)."""
        for record in records:
            step = record_step(record)
            if step is None or step < self._last_step:
                continue  # damaged, or out of order: a run's records only go forward
            self._last_step = step
            self.records += 1
            for module, figures in record["layers"].items():
                if not isinstance(figures, dict) or not isinstance(module, str):
                    continue
                if "weight_norm" in figures or "weight_hist" in figures:
                    self.weighted.add(module)
                self._check(step, module, figures)

    def _track(self, kind: str, module: str) -> _Track:
        return self._tracks.setdefault((kind, module), _Track())

    def _check(self, step: int, module: str, figures: dict) -> None:
        dead = _number(figures.get("dead_fraction"))
        if dead is not None:
            self._hold(self._track("dead", module), step, dead > DEAD_LIMIT, dead, max)
        saturated = _number(figures.get("saturated_fraction"))
        if saturated is not None:
            self._hold(self._track("saturated", module), step, saturated > SATURATED_LIMIT, saturated, max)
        if "grad_norm" in figures:
            self._check_gradients(step, module, figures)
        elif "update_ratio" in figures:
            ratio = _number(figures.get("update_ratio"))
            if ratio is not None:
                self._hold(self._track("vanishing", module), step, ratio < VANISHING, ratio, min, "updates")

    def _check_gradients(self, step: int, module: str, figures: dict) -> None:
        raw = figures.get("grad_norm")
        norm = _number(raw)
        if raw is not None and norm is None:
            return  # text or a list: a damaged figure, not a measurement
        track = self._track("exploding", module)
        history = track.history
        median = history[len(history) // 2] if len(history) >= EXPLODING_BASELINE else None
        exploding = norm is None or not math.isfinite(norm) or norm > EXPLODING_NORM or \
            (median is not None and median > 0 and norm > EXPLODING_FACTOR * median)
        self._hold(track, step, exploding, norm, _max_or_inf, baseline=median)
        if not exploding:
            bisect.insort(history, norm)
        if norm is None:
            return
        vanishing = self._track("vanishing", module)
        small = norm < VANISHING and vanishing.seen_large
        vanishing.seen_large = vanishing.seen_large or norm >= VANISHING
        ratio = _number(figures.get("update_ratio"))
        slow = ratio is not None and ratio < VANISHING
        if small:
            self._hold(vanishing, step, True, norm, min, "gradients")
        if slow:
            self._hold(vanishing, step, True, ratio, min, "updates")
        if not (small or slow):
            self._hold(vanishing, step, False, None, min)

    @staticmethod
    def _hold(track: _Track, step: int, holds: bool, value, worse, detail: str = "",
              baseline: float | None = None) -> None:
        run = track.open
        if holds:
            if run is None:
                track.open = _Run(step, step, {detail: value}, baseline)
                return
            run.last, run.misses = step, 0
            run.worst[detail] = worse(run.worst[detail], value) if detail in run.worst else value
        elif run is not None:
            run.misses += 1
            if run.misses > GAP_RECORDS:
                track.runs.append(run)
                track.open = None

    def warnings(self) -> list[HealthWarning]:
        """Every warning so far, by start step (the most urgent kind first at the same step)."""
        found = []
        for (kind, module), track in self._tracks.items():
            for run in track.runs + ([track.open] if track.open is not None else []):
                layer = followed_layer(module, self.weighted, self.order)
                found.append(HealthWarning(kind, layer, run.start, run.last, _text(kind, module, run)))
        return sorted(found, key=lambda w: (w.start_step, KINDS.index(w.kind), w.layer))


def _max_or_inf(a: float | None, b: float | None) -> float | None:
    """The larger gradient norm, None (not finite) being the largest."""
    return None if a is None or b is None else max(a, b)


def _text(kind: str, module: str, run: _Run) -> str:
    span = _span(run.start, run.last)
    worst = run.worst.get("")
    if kind == "dead":
        return f"{module}: up to {100 * worst:.3g}% of units dead (no output for a whole batch), {span}"
    if kind == "saturated":
        return f"{module}: up to {100 * worst:.3g}% of units saturated (stuck at the flat ends), {span}"
    if kind == "exploding":
        size = "not finite" if worst is None or not math.isfinite(worst) else f"up to {worst:.3g}"
        before = f" (typically {run.baseline:.3g} before)" if run.baseline is not None else ""
        return f"{module}: exploding gradients, norm {size}{before}, {span}"
    parts = []
    if "gradients" in run.worst:
        parts.append(f"vanishing gradients, norm down to {run.worst['gradients']:.2g}")
    if "updates" in run.worst:
        parts.append(f"weights barely move, update/weight ratio down to {run.worst['updates']:.2g}")
    return f"{module}: {'; '.join(parts)}, {span}"


def find_warnings(records: Iterable[dict], order: Sequence[str] | None = None) -> list[HealthWarning]:
    """The warnings of a run's stats records (in step order); see the module's docstring for each kind."""
    monitor = HealthMonitor(order)
    monitor.update(records)
    return monitor.warnings()


__all__ = ["HealthWarning", "HealthMonitor", "find_warnings", "followed_layer", "record_step", "KINDS"]
