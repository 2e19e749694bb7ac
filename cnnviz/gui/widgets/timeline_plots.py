"""What the views of a run's layer statistics share: the records kept in step with the timeline, the empty
states, step plots in the curves' style, the line at the step on show, and a click that seeks there.

The statistics come from the window's :class:`~cnnviz.gui.timeline_model.TimelineModel`: its timeline's
``stats`` list grows while the run trains and is replaced when the run rewinds or another run is shown;
:class:`StatsTable` follows it, keeping only well-formed records (a damaged event log is never fatal).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from cnnviz.errors import CnnvizError
from cnnviz.gui.widgets.curve_items import GridAxis
from cnnviz.timeline.health import record_step

NO_STATS = "No statistics yet: they are recorded while a run trains."
NO_TIMELINE = ("This run was saved without a timeline, so it has no layer statistics over time. "
               "Runs trained with this version record them.")
REDRAW_MS = 250  # statistics arrive about 4 times a second while training: redraw at most that often
# Matplotlib's tab10: distinct hues for up to 10 layers, one colour per layer in every plot.
LAYER_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def number(value) -> float:
    """A JSON figure as a float; NaN for None (not finite when recorded), infinities and anything that is not a
    number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


def empty_text(model) -> str | None:
    """Why there is nothing to draw for the run of `model` (a TimelineModel), or None when it has a timeline."""
    timeline = model.timeline
    if timeline is None:
        folder = model.folder
        if folder is not None and not (folder / "events.jsonl").exists() and \
                ((folder / "run.json").exists() or (folder / "checkpoint.safetensors").exists()):
            return NO_TIMELINE  # a run folder from before the timeline, or saved with --no-timeline
        return NO_STATS
    if not timeline.has_timeline:
        return NO_TIMELINE
    return None


class StatsTable:
    """The well-formed stats records of the timeline on show, in step order, following it as it grows."""

    def __init__(self) -> None:
        self._source: list | None = None
        self._seen = 0
        self.records: list[dict] = []
        self.steps: list[int] = []

    def sync(self, timeline) -> tuple[bool, list[dict]]:
        """Catch up with ``timeline.stats`` (None: no timeline). Returns ``(reset, new)``: ``reset`` when the
        records were started over (another run, a rewind), ``new`` the records added by this call."""
        source = timeline.stats if timeline is not None else None
        reset = source is not self._source or (source is not None and len(source) < self._seen)
        if reset:
            self._source, self._seen, self.records, self.steps = source, 0, [], []
        if source is None:
            return reset, []
        new = []
        for record in source[self._seen:]:
            step = record_step(record)
            if step is None or (self.steps and step < self.steps[-1]):
                continue  # damaged, or out of step order
            self.records.append(record)
            self.steps.append(step)
            new.append(record)
        self._seen = len(source)
        return reset, new

    def index_at(self, step: float) -> int | None:
        """The index of the record at or before `step` (the first one before all), None when there is none."""
        if not self.steps:
            return None
        i = int(np.searchsorted(np.asarray(self.steps), step, side="right")) - 1
        return max(i, 0)


def short_number(x: float) -> str:
    """``0.05``, ``1``, ``300`` as they are; ``1e-05``, ``2e+04`` as ``1e-5``, ``2e4``."""
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:g}"
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


class StepPlotAxis(GridAxis):
    """The curves' axis, whose log scale labels the powers of ten only (1, 2 and 5 times them within one
    decade): pyqtgraph labels every minor tick, an unreadable column of numbers in a short plot."""

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph override)
        values = [float(v) for v in values]
        decades = [abs(v - round(v)) < 1e-6 for v in values]
        keep = decades if sum(decades) >= 2 else \
            [round(10 ** (v - math.floor(v + 1e-9)), 6) in (1.0, 2.0, 5.0) for v in values]
        return [short_number(10 ** v * scale) if k else "" for v, k in zip(values, keep)]


def step_plot(owner: QWidget, name: str, ylabel: str) -> pg.PlotWidget:
    """A plot against the step in the style of the curves view (theme colours, faint grid)."""
    pal = owner.palette()
    bg, fg = pal.base().color(), pal.text().color()
    plot = pg.PlotWidget(background=bg, axisItems={side: StepPlotAxis(side, bg) for side in ("left", "bottom")})
    plot.setObjectName(name)
    item = plot.getPlotItem()
    item.showGrid(x=True, y=True, alpha=0.15)
    item.setMenuEnabled(False)
    item.hideButtons()
    for side in ("left", "bottom"):
        axis = item.getAxis(side)
        axis.setPen(fg)
        axis.setTextPen(fg)
        axis.setStyle(maxTickLevel=1)
        axis.enableAutoSIPrefix(False)
    item.getAxis("left").setWidth(62)  # the same width in every plot, so that the linked step axes line up
    item.setLabel("left", ylabel)
    # The step axis spans the whole run in every plot of a view (set by the view, not linked: pyqtgraph's
    # linked axes turn each other's auto-range off); a click seeks, so the mouse does not pan or zoom.
    box = item.getViewBox()
    box.setMouseEnabled(x=False, y=False)
    box.enableAutoRange(x=False)
    return plot


def set_step_range(plot: pg.PlotWidget, first: float, last: float) -> None:
    """Show steps `first` to `last` (the whole run) on the step axis."""
    plot.getPlotItem().getViewBox().setXRange(first, max(last, first + 1), padding=0.01)


def shown_step_line(plot: pg.PlotWidget) -> pg.InfiniteLine:
    """The line at the step whose weights the window shows (hidden while it shows the live weights)."""
    line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((230, 60, 40), width=2))
    line.setZValue(20)
    line.hide()
    plot.addItem(line, ignoreBounds=True)
    return line


def place_line(line: pg.InfiniteLine, model) -> None:
    """Put `line` at the model's shown step, or hide it while the views are live."""
    if model.live or model.timeline is None:
        line.hide()
    else:
        line.setValue(float(model.shown_step))
        line.show()


def seek(model, session, step: int) -> None:
    """Show the stored weights at or before `step`; a refusal (no timeline, nothing stored) is a banner."""
    try:
        model.seek(int(step))
    except CnnvizError as err:
        session.message.emit("warning", str(err))


def clicked_x(plot: pg.PlotWidget, event) -> float | None:
    """The step coordinate of a left click on `plot`'s data area, else None."""
    if event.button() != Qt.MouseButton.LeftButton or event.double():
        return None
    box = plot.getPlotItem().getViewBox()
    pos = event.scenePos()
    if not box.sceneBoundingRect().contains(pos):
        return None
    return float(box.mapSceneToView(pos).x())
