"""pyqtgraph items for the training curves that stay cheap to redraw while a run grows.

:class:`StepCurve` draws a min/max envelope of a per-step series, not every step. pyqtgraph's own
'peak' downsampling looks at every point on every redraw (twice when the view follows the growing
run), so a million-step curve cost ~5-10 ms per curve per frame. Here the envelope is kept up to date
as steps arrive (O(new steps) per frame), and only about two points per pixel column of the plot reach
pyqtgraph: each column's max and min, which is all a screen can show. A view zoomed into part of the
run gets the exact points of that part, or an envelope of just that part.

:class:`SteppedViewBox` fits its auto-range to whole "nice" steps (an eighth of the span, rounded to 1, 2 or 5
times a power of ten), so a growing run moves the range only when its curves cross a step, not at every
redraw: each move of the range regenerated the axes' ticks, labels and grid (pyqtgraph's generateDrawSpecs)
and re-fitted every linked plot, the largest part of a redraw and of the window's longest stalls while training.

:class:`GridAxis` draws its grid lines opaque, behind the curves: faint grid lines drawn with alpha
(pyqtgraph's way) took ~4 ms per plot to paint, at every redraw of a growing run (the axes change).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor, QPen


def _merge(lo: np.ndarray, hi: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Min of each group of ``m`` consecutive ``lo`` and max of each group of ``hi`` (last group short)."""
    if m <= 1:
        return lo, hi
    starts = np.arange(0, len(lo), m)
    return np.fmin.reduceat(lo, starts), np.fmax.reduceat(hi, starts)


def nice_step(span: float, parts: int = 8) -> float:
    """1, 2 or 5 times a power of ten, at least ``span / parts`` (for a positive, finite span)."""
    raw = span / parts
    power = 10.0 ** np.floor(np.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * power >= raw * (1 - 1e-9):
            return m * power
    return 10.0 * power


def snap_range(lo: float, hi: float, slack: float = 0.0) -> tuple[float, float]:
    """``(lo, hi)`` widened outward to whole nice steps (unchanged when empty or not finite).

    ``slack``: the fraction of the snapped span that the view pads each side with; an end that sticks out of
    a step by no more than that padding is kept at the step (it is still seen, in the padding) instead of
    growing by a whole step: 100.00001 % (a float sum) stays at 100, and pyqtgraph's room for the markers'
    symbols at x = 0 does not add a step at the left (a fifth of the plot left empty).
    """
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return lo, hi
    step = nice_step(hi - lo)
    low, high = float(np.floor(lo / step) * step), float(np.ceil(hi / step) * step)
    if high - step > low and hi - (high - step) <= slack * (high - step - low):
        high -= step
    if low + step < high and (low + step) - lo <= slack * (high - low - step):
        low += step
    return low, high


class SteppedViewBox(pg.ViewBox):
    """A ViewBox whose auto-range fits the data widened to whole nice steps (see the module's docstring).

    Zooming, panning and the "A" button behave as pyqtgraph's: only the range auto-range picks is snapped."""

    def childrenBounds(self, frac=None, orthoRange=(None, None), items=None):  # noqa: N802 (pyqtgraph's name)
        bounds = super().childrenBounds(frac=frac, orthoRange=orthoRange, items=items)
        return [None if r is None else list(snap_range(float(r[0]), float(r[1]), self.suggestPadding(ax)))
                for ax, r in enumerate(bounds)]


class PeakEnvelope:
    """Min and max of consecutive bins of a growing series.

    The bin size doubles whenever there would be more than ``max_bins`` bins, so any run length has
    between ``max_bins / 2`` and ``max_bins`` bins; appending k values costs O(k + bin size), and a
    doubling (rare) O(all values). NaNs are skipped (a bin of NaNs stays NaN).
    """

    def __init__(self, max_bins: int = 4096) -> None:
        self.max_bins = max_bins
        self.clear()

    def clear(self) -> None:
        self.size = 1  # values per bin
        self.count = 0  # values summarised
        self.lo = np.zeros(0, np.float32)
        self.hi = np.zeros(0, np.float32)

    def update(self, values: np.ndarray) -> None:
        """Summarise ``values``: the whole series so far, which only grows between calls."""
        n = len(values)
        if n < self.count:
            self.clear()
        if n == self.count:
            return
        size = self.size
        while -(-n // size) > self.max_bins:
            size *= 2
        first = 0 if size != self.size else self.count // size  # the last, partial bin is redone
        self.size = size
        chunk = values[first * size:n]
        starts = np.arange(0, len(chunk), size)
        self.lo = np.concatenate([self.lo[:first], np.fmin.reduceat(chunk, starts).astype(np.float32)])
        self.hi = np.concatenate([self.hi[:first], np.fmax.reduceat(chunk, starts).astype(np.float32)])
        self.count = n

    def points(self, x: np.ndarray, y: np.ndarray, i0: int, i1: int, columns: int):
        """``(x, y)`` to draw indices ``[i0, i1)`` in about ``columns`` pixel columns (see :func:`_draw`)."""
        b0, b1 = i0 // self.size, -(-i1 // self.size)
        m = -(-(b1 - b0) // columns)
        lo, hi = _merge(self.lo[b0:b1], self.hi[b0:b1], m)
        mid = np.minimum((b0 + np.arange(len(lo)) * m) * self.size + (m * self.size) // 2, i1 - 1)
        return _draw(x, y, i0, i1, x[mid], lo, hi)


def _draw(x, y, i0, i1, xs, lo, hi):
    # Each bin's max then min at the bin's x, between the exact first and last points, so the curve
    # starts and ends exactly where the series does.
    body_y = np.column_stack([hi, lo]).reshape(-1)
    return (np.concatenate([[x[i0]], np.repeat(xs, 2), [x[i1 - 1]]]),
            np.concatenate([[y[i0]], body_y, [y[i1 - 1]]]))


def peak_decimate(x: np.ndarray, y: np.ndarray, i0: int, i1: int, columns: int):
    """The max and min of ``y[i0:i1]`` in ``columns`` equal slices, drawn as :class:`PeakEnvelope` does."""
    size = -(-(i1 - i0) // columns)
    starts = np.arange(i0, i1, size)
    lo, hi = np.fmin.reduceat(y[i0:i1], starts - i0), np.fmax.reduceat(y[i0:i1], starts - i0)
    return _draw(x, y, i0, i1, x[np.minimum(starts + size // 2, i1 - 1)], lo, hi)


class StepCurve(pg.PlotDataItem):
    """A PlotDataItem for a growing series; ``set_series`` takes the whole series every time.

    ``getOriginalDataset()`` returns the whole series, ``getData()`` what is drawn: the exact points
    when there are at most two per pixel column in view, else each column's max and min.
    """

    def __init__(self, **kwargs) -> None:
        # pyqtgraph's own auto-downsampling stays on but never bites: we hand it <= 2 points per
        # pixel column, and it only downsamples beyond `autoDownsampleFactor` points per column.
        kwargs.setdefault("autoDownsampleFactor", 3.0)
        super().__init__(**kwargs)
        self.envelope = PeakEnvelope()
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._finite = True
        self._view = None  # the zoomed x range last drawn for (None: the view follows the whole run)
        self._shown: tuple | None = None  # what a zoomed view last drew: (range, first, last, columns)

    def reset(self) -> None:
        """Forget the series (a new run or history): the next ``set_series`` starts afresh."""
        self._x = self._y = None
        self._shown = self._view = None
        self.envelope.clear()

    def set_series(self, x: np.ndarray, y: np.ndarray, finite: bool = True) -> None:
        """Show the series ``y`` over steps ``x`` (increasing); both only grow between calls."""
        if len(y) == 0:
            self.reset()
            self.setData([], [])
            return
        if self._y is not None and (len(y) < len(self._y) or finite != self._finite):
            self.reset()  # shorter: a new series; NaNs appeared: draw them from scratch
        self._x, self._y, self._finite = x, y, finite
        self.envelope.update(y)
        self._show()

    def getOriginalDataset(self):  # noqa: N802 (pyqtgraph API)
        """The whole series (pyqtgraph's ``getData()`` gives what is drawn)."""
        if self._x is None:
            return super().getOriginalDataset()
        return self._x, self._y

    def viewRangeChanged(self, vb=None, ranges=None, changed=None):  # noqa: N802 (pyqtgraph override)
        # A zoomed or panned view gets the detail of the part it shows.
        view = self.getViewBox()
        if self._y is not None and view is not None and (changed is None or changed[0]):
            if self._detail_key(view) != self._view:
                self._show(view)
        super().viewRangeChanged(vb, ranges, changed)

    @staticmethod
    def _detail_key(view) -> tuple | None:
        # An x-linked view follows its master: while that one auto-ranges, this shows the whole run too.
        master = view.linkedView(view.XAxis) or view
        if master.autoRangeEnabled()[0]:
            return None
        x0, x1 = view.viewRange()[0]
        return (float(x0), float(x1))

    def _show(self, view=None) -> None:
        x, y = self._x, self._y
        n = len(y)
        view = view or self.getViewBox()
        columns = max(64, int(view.width())) if view is not None else 1024
        key = None if view is None else self._detail_key(view)
        self._view = key
        i0, i1 = 0, n
        if key is not None:
            i0 = max(0, int(np.searchsorted(x, key[0])) - 1)
            i1 = min(n, int(np.searchsorted(x, key[1])) + 1)
            if i1 <= i0:
                i0, i1 = max(0, i1 - 1), max(1, i1)  # nothing in view: keep one point for the bounds
            if (key, i0, i1, columns) == self._shown:
                return  # zoomed into steps that are already drawn: nothing new to show
        self._shown = None if key is None else (key, i0, i1, columns)
        if i1 - i0 <= 2 * columns:
            xs, ys = x[i0:i1], y[i0:i1]
        elif (i1 - i0) // self.envelope.size >= columns:
            xs, ys = self.envelope.points(x, y, i0, i1, columns)
        else:  # zoomed in past the envelope's resolution: decimate just the part in view
            xs, ys = peak_decimate(x, y, i0, i1, columns)
        self.setData(xs, ys, skipFiniteCheck=self._finite)


class GridAxis(pg.AxisItem):
    """An AxisItem whose tick and grid lines are drawn opaque, in the colour they would have had with
    their alpha on ``background``, and behind the plot's items rather than over them."""

    def __init__(self, orientation: str, background: QColor, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self._background = QColor(background)
        self._pens: dict[int, QPen] = {}

    def setZValue(self, z: float) -> None:  # noqa: N802 (Qt override)
        # PlotItem puts axes over the view (z 0.5); opaque grid lines must go under the curves.
        super().setZValue(min(z, -1.0))

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs):  # noqa: N802 (pyqtgraph override)
        super().drawPicture(p, axisSpec, [(self._opaque(pen), a, b) for pen, a, b in tickSpecs], textSpecs)

    def _opaque(self, pen: QPen) -> QPen:
        colour = pen.color()
        if colour.alpha() == 255:
            return pen
        key = colour.rgba()
        if key not in self._pens:
            a, bg = colour.alphaF(), self._background
            opaque = QPen(pen)
            opaque.setColor(QColor(round(colour.red() * a + bg.red() * (1 - a)),
                                   round(colour.green() * a + bg.green() * (1 - a)),
                                   round(colour.blue() * a + bg.blue() * (1 - a))))
            self._pens[key] = opaque
        return self._pens[key]
