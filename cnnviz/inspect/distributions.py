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
    lows = np.array([float(h["low"]) for h in histograms])
    highs = np.array([float(h["high"]) for h in histograms])
    low, high = float(lows.min()), float(highs.max())
    if not high > low:
        high = low + max(1e-12, abs(low) * 1e-9)
    edges = np.linspace(low, high, bins + 1)
    matrix = np.zeros((len(histograms), bins), np.float64)
    sizes = np.array([len(h["counts"]) for h in histograms])
    for size in np.unique(sizes):  # one bin count in a run: one vectorized pass
        rows = np.flatnonzero(sizes == size)
        counts = np.array([histograms[i]["counts"] for i in rows], np.float64)
        totals = counts.sum(axis=1)
        cumulative = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(counts, axis=1)], axis=1)
        cumulative /= np.where(totals > 0, totals, 1.0)[:, None]
        spans = highs[rows] - lows[rows]
        flat = ~(spans > 0)  # every value alike: all in the bin of that value
        # where each common edge falls on a histogram's own bins, then the cumulative share there
        at = (edges[None, :] - lows[rows, None]) / np.where(flat, 1.0, spans)[:, None] * size
        k = np.clip(np.floor(at), 0, size - 1).astype(np.int64)
        within = np.clip(at - k, 0.0, 1.0)
        r = np.arange(len(rows))[:, None]
        share = cumulative[r, k] + within * (cumulative[r, k + 1] - cumulative[r, k])
        share[at <= 0] = 0.0
        share[at >= size] = 1.0
        part = np.diff(share, axis=1)
        if flat.any():
            where = np.minimum(((lows[rows[flat]] - low) / (high - low) * bins).astype(np.int64), bins - 1)
            part[flat] = 0.0
            part[np.flatnonzero(flat), where] = 1.0
        part[totals <= 0] = 0.0
        matrix[rows] = part
    return matrix.astype(np.float32), low, high


__all__ = ["spread", "valid_histogram"]
