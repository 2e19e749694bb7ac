"""Histograms of a layer's values over a run, as the distributions view draws them: checked, and put on one
common value axis.

The records come from ``cnnviz.timeline.stats`` (a histogram is ``{"counts": [...], "low": f, "high": f}``, its
bins equal from low to high); a damaged event log can hold anything in their place, so
:func:`valid_histogram` says which to draw. No Qt here.
"""
from __future__ import annotations

import numpy as np

MAX_BIN_COUNT = 1 << 16  # a histogram with more bins than this is not one cnnviz recorded
MAX_COUNT = 1e15  # values in one bin: more than any layer holds (and their sum stays finite)
MAX_VALUE = 1e30  # a bin edge beyond this is damage (the spans computed from it would overflow)


def valid_histogram(h) -> bool:
    """Whether `h` is a histogram record stats.py could have written (a damaged log can hold anything)."""
    if not isinstance(h, dict):
        return False
    counts, low, high = h.get("counts"), h.get("low"), h.get("high")
    if not isinstance(counts, list) or not 0 < len(counts) <= MAX_BIN_COUNT:
        return False
    for v in (low, high):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v) < MAX_VALUE:
            return False
    if high < low:
        return False
    return all(not isinstance(c, bool) and isinstance(c, (int, float)) and 0 <= c <= MAX_COUNT for c in counts)


def spread(histograms: list[dict], bins: int = 64) -> tuple[np.ndarray, float, float]:
    """Histograms of different value ranges on one common axis: ``(matrix, low, high)``, where matrix[i, j] is
    the share of histogram i's values in bin j of `bins` equal bins from `low` to `high` (their whole range).

    Each recorded bin's share is spread over the common bins it overlaps, as if its values were evenly spread
    within it (linear interpolation of the cumulative share). ``stats.histogram_matrix`` puts a recorded bin
    whole into the common bin of its centre instead, which leaves zig-zag stripes wherever two bin grids
    nearly line up: visible in every heatmap of a real run."""
    if not histograms:
        return np.zeros((0, bins), np.float32), 0.0, 1.0
    low = min(float(h["low"]) for h in histograms)
    high = max(float(h["high"]) for h in histograms)
    if not high > low:
        high = low + max(1e-12, abs(low) * 1e-9)
    edges = np.linspace(low, high, bins + 1)
    matrix = np.zeros((len(histograms), bins), np.float64)
    for i, h in enumerate(histograms):
        counts = np.asarray(h["counts"], np.float64)
        total = counts.sum()
        if total <= 0:
            continue
        if not float(h["high"]) > float(h["low"]):  # every value alike: one bin
            matrix[i, min(int((float(h["low"]) - low) / (high - low) * bins), bins - 1)] = 1.0
            continue
        own = np.linspace(float(h["low"]), float(h["high"]), len(counts) + 1)
        cumulative = np.concatenate([[0.0], np.cumsum(counts) / total])
        matrix[i] = np.diff(np.interp(edges, own, cumulative))
    return matrix.astype(np.float32), low, high


__all__ = ["spread", "valid_histogram"]
