"""Is every layer still learning? Dead and saturated units, the update/weight ratio and the gradient norm of
each layer over the run, and the problems found in them (:mod:`cnnviz.timeline.health`) as a list.

Three plots share the step axis: the share of dead (ReLU, solid) or saturated (sigmoid/tanh, dashed) units,
0 to 100%, with the 50% warning line; the update/weight ratio on a log axis, with the healthy 1e-3 marked;
the gradient norm on a log axis. Each layer has one colour in all three (an activation takes the colour of the
layer it follows), named in the legend above them. A zero ratio or norm (nothing moves) is drawn at the
bottom of its log axis, a decade under the smallest other value. A click on a plot or on a warning shows that step's weights; a warning also
emits :attr:`HealthView.layer_selected` so that the window can show that layer's filters.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QLabel, QListWidget, QListWidgetItem, QSizePolicy, QSplitter, QStyle, QVBoxLayout,
                               QWidget)

from cnnviz.gui.visibility import on_screen
from cnnviz.gui.throttle import Throttle
from cnnviz.gui.widgets.timeline_plots import (LAYER_COLOURS, NO_STATS, REDRAW_MS, StatsTable, clicked_x,
                                               empty_text, number, place_line, seek, set_step_range,
                                               shown_step_line, step_plot)
from cnnviz.timeline.health import HealthMonitor, HealthWarning, followed_layer

HINT = "Hover a plot to read each layer's figures; click to show that step's weights."
ZERO_FALLBACK = 1e-12  # where a ratio or norm of 0 is drawn when its plot has no other value
MAX_POINTS = 700  # blocks of records a curve is drawn as, 2 points each (about the plot's width)
MAX_LISTED = 200  # warnings listed; a figure that keeps crossing its limit for hours could give thousands
CAPTION = ("Healthy: update/weight ratio near 1e-3, gradient norms steady (neither falling to 0 nor soaring), "
           "no layer with most of its units dead or saturated.")
CAPTION_TIP = (
    "Update/weight ratio: how far one optimizer step moves a layer's weights, relative to their size. Around "
    "1e-3 is healthy; far below (1e-5) the layer learns too slowly, far above (1e-1) the learning rate is too "
    "high.\nGradient norm: the size of the layer's gradient on one batch. It falls as the model learns; a "
    "collapse to 0 (vanishing) or a jump by 100 times (exploding) is a problem.\nDead units: ReLU channels or "
    "neurons that output 0 for every example, so they no longer learn. Saturated units: sigmoid or tanh units "
    "stuck at their flat ends.")
KIND_TIPS = {
    "dead": "A dead ReLU unit outputs 0 for every input, so no gradient flows through it and it stops learning. "
            "Usual causes: a learning rate too high, or a bad start. Try a lower learning rate or leaky ReLU.",
    "saturated": "A saturated sigmoid or tanh unit sits on a flat end where its gradient is almost 0, so it "
                 "learns very slowly. Try normalised inputs, batch normalisation or ReLU.",
    "exploding": "The gradient is huge or not finite: the next steps can throw the weights far off (a NaN "
                 "loss). Try a lower learning rate.",
    "vanishing": "Almost no gradient reaches this layer, or one step barely moves its weights: it has stopped "
                 "learning.",
}
PLOTS = (  # name, y label, figures drawn, log axis
    ("unitsPlot", "dead / saturated", ("dead_fraction", "saturated_fraction"), False),
    ("ratioPlot", "update / weight", ("update_ratio",), True),
    ("gradientPlot", "gradient norm", ("grad_norm",), True),
)
FIGURES = tuple(f for _, _, figures, _ in PLOTS for f in figures)
# the y axes' own labels: the long ones (the readout's) overlap when three plots share a short dock
AXIS_LABELS = {"unitsPlot": "dead/sat.", "ratioPlot": "update", "gradientPlot": "grad"}
SHORT = {"dead_fraction": "dead", "saturated_fraction": "saturated", "update_ratio": "ratio",
         "grad_norm": "gradient norm"}


MISSING = -math.inf  # a record without the figure (not taken at that step): the curve goes straight on


class FigureColumns:
    """One column of values per (module, figure), aligned with the records' steps, grown as records arrive:
    NaN where the figure was not finite (the curve breaks), :data:`MISSING` where a record lacks it."""

    def __init__(self) -> None:
        self.rows = 0
        self.columns: dict[tuple[str, str], list[float]] = {}

    def add(self, records: list[dict]) -> None:
        for record in records:
            for module, figures in record["layers"].items():
                if not isinstance(figures, dict) or not isinstance(module, str):
                    continue
                for figure in FIGURES:
                    if figure in figures:
                        column = self.columns.setdefault((module, figure), [MISSING] * self.rows)
                        column.append(number(figures[figure]))
            self.rows += 1
            for column in self.columns.values():
                if len(column) < self.rows:
                    column.append(MISSING)


class HealthView(QWidget):
    """Per-layer health figures over the run, and the warnings found in them.

    Parameters
    ----------
    session : Session
        The window's session (its messages show a refused seek; its model names the layers' order).
    timeline_model : TimelineModel
        The run's timeline and the step on show.
    """

    layer_selected = Signal(str)  # a warning was clicked: the layer it concerns (e.g. "conv1")

    def __init__(self, session, timeline_model, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("healthView")
        self.session, self.model = session, timeline_model
        self.table = StatsTable()
        self._columns = FigureColumns()
        self._monitor = HealthMonitor()
        self._warnings: list[HealthWarning] = []
        self._curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        self._colours: dict[str, tuple[int, int, int]] = {}
        self._dirty = True
        self._throttle = Throttle(REDRAW_MS, self._redraw, self)
        self._build_ui()
        timeline_model.changed.connect(self._on_changed)
        timeline_model.shown_step_changed.connect(self._on_shown_step)
        self._redraw(force=True)

    def _build_ui(self) -> None:
        caption = QLabel(CAPTION)
        caption.setWordWrap(True)
        caption.setToolTip(CAPTION_TIP)
        caption.setStyleSheet("color: palette(placeholder-text);")
        self._legend = QLabel("")
        self._legend.setObjectName("healthLegend")
        self._legend.setWordWrap(True)
        self._readout = QLabel(HINT)
        self._readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._message = QLabel("")
        self._message.setObjectName("emptyMessage")
        self._message.setWordWrap(True)
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.hide()

        self.plots: dict[str, pg.PlotWidget] = {}
        self.lines: list[pg.InfiniteLine] = []
        plots = QWidget()
        column = QVBoxLayout(plots)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        for name, label, _, log in PLOTS:
            plot = step_plot(self, name, AXIS_LABELS.get(name, label))
            item = plot.getPlotItem()
            item.setLogMode(y=log)
            if name != PLOTS[-1][0]:
                item.getAxis("bottom").setStyle(showValues=False)  # the same steps as the plot below
            self.lines.append(shown_step_line(plot))
            plot.scene().sigMouseClicked.connect(self._on_click)
            column.addWidget(plot, 1)
            self.plots[name] = plot
        units = self.plots["unitsPlot"].getPlotItem()
        units.getViewBox().setYRange(0, 1, padding=0.1)  # room for the 0% and 100% labels inside the plot
        units.getAxis("left").setTicks([[(0.0, "0%"), (0.5, "50%"), (1.0, "100%")], []])
        self.plots["gradientPlot"].getPlotItem().setLabel("bottom", "step (batch)")
        warn_pen = pg.mkPen((214, 39, 40, 150), width=1, style=Qt.PenStyle.DashLine)
        self.plots["unitsPlot"].addItem(pg.InfiniteLine(0.5, angle=0, pen=warn_pen), ignoreBounds=True)
        good_pen = pg.mkPen((44, 160, 44, 170), width=2, style=Qt.PenStyle.DashLine)
        self.plots["ratioPlot"].addItem(pg.InfiniteLine(-3.0, angle=0, pen=good_pen))  # log10(1e-3)
        self.plots["unitsPlot"].setToolTip("Share of each activation's units that are dead (ReLU, solid) or "
                                           "saturated (sigmoid/tanh, dashed); above the dashed 50% line is a "
                                           "warning. Click to show that step's weights.")
        self.plots["ratioPlot"].setToolTip("How far one step moves each layer's weights, relative to their size "
                                           "(log scale); the green line is the healthy 1e-3.")
        self.plots["gradientPlot"].setToolTip("The norm of each layer's gradient on one batch (log scale).")
        self._proxies = [pg.SignalProxy(p.scene().sigMouseMoved, rateLimit=30, slot=self._on_hover)
                         for p in self.plots.values()]

        self._list = QListWidget()
        self._list.setObjectName("healthWarnings")
        self._list.setWordWrap(True)
        self._list.setToolTip("Problems found in the statistics. Click one to show the step where it started "
                              "and that layer's filters.")
        self._list.itemClicked.connect(self._on_item)
        self._list.itemActivated.connect(self._on_item)
        self._split = QSplitter(Qt.Orientation.Vertical)
        self._split.addWidget(plots)
        self._split.addWidget(self._list)
        self._split.setStretchFactor(0, 4)
        self._split.setStretchFactor(1, 1)
        self._split.setSizes([400, 110])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(3)
        layout.addWidget(caption)
        layout.addWidget(self._legend)
        layout.addWidget(self._readout)
        layout.addWidget(self._message, 1)
        layout.addWidget(self._split, 1)

    # -- the model's signals -------------------------------------------------------------------------------
    def _on_changed(self) -> None:
        if not on_screen(self):
            self._dirty = True  # drawn when shown
            return
        self._throttle.request()

    def _on_shown_step(self, step: int) -> None:
        for line in self.lines:
            place_line(line, self.model)

    # -- drawing -------------------------------------------------------------------------------------------
    def _redraw(self, force: bool = False) -> None:
        if not (force or on_screen(self)):
            self._dirty = True
            return
        self._dirty = False
        reset, new = self.table.sync(self.model.timeline)
        if reset:
            self._start_over()
            new = self.table.records
        self._columns.add(new)
        self._monitor.update(new)
        message = empty_text(self.model) or (None if self.table.records else NO_STATS)
        self._message.setText(message or "")
        self._message.setVisible(message is not None)
        self._split.setVisible(message is None)
        self._legend.setVisible(message is None)
        self._readout.setVisible(message is None)
        self._draw_curves()
        warnings = self._monitor.warnings()
        if warnings != self._warnings or reset:
            self._warnings = warnings
            self._fill_list()
        self._on_shown_step(self.model.shown_step)

    def _start_over(self) -> None:
        model = getattr(self.session, "model", None)
        order = model.layer_names() if hasattr(model, "layer_names") else None
        self._columns = FigureColumns()
        self._monitor = HealthMonitor(order)
        self._colours = {}
        for (_, figure), curve in self._curves.items():
            self._plot_for(figure).removeItem(curve)
        self._curves = {}

    def _colour(self, module: str) -> tuple[int, int, int]:
        layer = followed_layer(module, self._monitor.weighted, self._monitor.order)
        if layer not in self._colours:
            self._colours[layer] = LAYER_COLOURS[len(self._colours) % len(LAYER_COLOURS)]
        return self._colours[layer]

    def _draw_curves(self) -> None:
        steps = np.asarray(self.table.steps, np.float64)
        columns = {key: np.asarray(column, np.float64) for key, column in self._columns.columns.items()}
        # A ratio or norm of 0 (nothing moves) has no place on a log axis: it is drawn a decade under the
        # smallest value of its plot, at the bottom, where it reads as "far below everything else".
        floors = {}
        for figure in ("update_ratio", "grad_norm"):
            positive = [float(v[v > 0].min()) for (_, f), v in columns.items() if f == figure and (v > 0).any()]
            floors[figure] = min(positive) / 10 if positive else ZERO_FALLBACK
        # weighted layers first, so that they take the colours in the run's order of layers
        for module, figure in sorted(columns, key=lambda k: k[1] in ("dead_fraction", "saturated_fraction")):
            values = columns[(module, figure)]
            curve = self._curves.get((module, figure))
            if curve is None:
                curve = self._add_curve(module, figure)
            taken = values != MISSING
            values = values[taken]
            if figure in floors:
                values = np.where(values > 0, values, np.where(values == 0, floors[figure], np.nan))
            # An hour of training is ~14,000 records a curve: drawn as at most MAX_POINTS blocks, each keeping
            # its lowest and highest value (a spike stays visible). pyqtgraph's auto mode drew them all here.
            curve.setDownsampling(ds=max(1, len(values) // MAX_POINTS), method="peak")
            curve.setData(steps[taken], values, connect="finite")
        for plot in self.plots.values():
            if len(steps):
                set_step_range(plot, float(steps[0]), float(steps[-1]))
        self._legend.setText("   ".join(
            f'<span style="color: rgb{c}; font-weight: bold;">&#9632;</span>&nbsp;{name}'
            for name, c in self._colours.items()))

    def _add_curve(self, module: str, figure: str) -> pg.PlotDataItem:
        colour = self._colour(module)
        style = Qt.PenStyle.DashLine if figure == "saturated_fraction" else Qt.PenStyle.SolidLine
        curve = pg.PlotDataItem(pen=pg.mkPen(colour, width=1, style=style), name=f"{module} {SHORT[figure]}")
        self._plot_for(figure).addItem(curve)
        self._curves[(module, figure)] = curve
        return curve

    def _plot_for(self, figure: str) -> pg.PlotWidget:
        return next(self.plots[name] for name, _, figures, _ in PLOTS if figure in figures)

    def _fill_list(self) -> None:
        self._list.clear()
        style = self.style()
        if not self._warnings:
            item = QListWidgetItem(style.standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton),
                                   "No problems found: no layer dead, saturated, exploding or vanishing.")
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self._list.addItem(item)
            return
        for warning in self._warnings[:MAX_LISTED]:
            icon = QStyle.StandardPixmap.SP_MessageBoxCritical if warning.kind == "exploding" else \
                QStyle.StandardPixmap.SP_MessageBoxWarning
            item = QListWidgetItem(style.standardIcon(icon), warning.text)
            item.setData(Qt.ItemDataRole.UserRole, warning)
            item.setToolTip(f"{KIND_TIPS[warning.kind]}\nClick to show step {warning.start_step:,}, where it "
                            f"started, and the filters of {warning.layer}.")
            self._list.addItem(item)
        if len(self._warnings) > MAX_LISTED:
            more = QListWidgetItem(f"... and {len(self._warnings) - MAX_LISTED:,} more")
            more.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self._list.addItem(more)

    # -- the mouse -----------------------------------------------------------------------------------------
    def _on_item(self, item: QListWidgetItem) -> None:
        warning = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(warning, HealthWarning):
            self.open_warning(warning)

    def open_warning(self, warning: HealthWarning) -> None:
        """Show the step where `warning` started and ask the window to show its layer."""
        seek(self.model, self.session, warning.start_step)
        self.layer_selected.emit(warning.layer)

    def _on_click(self, event) -> None:
        for plot in self.plots.values():
            x = clicked_x(plot, event)
            if x is not None and self.table.steps:
                seek(self.model, self.session, round(x))
                return

    def _on_hover(self, event) -> None:
        pos = event[0]
        for name, label, figures, _ in PLOTS:
            box = self.plots[name].getPlotItem().getViewBox()
            if box.sceneBoundingRect().contains(pos):
                self.show_readout(name, box.mapSceneToView(pos).x())
                return

    def show_readout(self, plot: str, x: float) -> str:
        """Describe the record nearest step `x` in the figures of `plot` (a name in PLOTS); returns the text."""
        steps = self.table.steps
        if not steps:
            return ""
        i = self.table.index_at(x)
        if i + 1 < len(steps) and abs(steps[i + 1] - x) < abs(steps[i] - x):
            i += 1  # the nearer of the records on either side
        figures = next(f for name, _, f, _ in PLOTS if name == plot)
        parts = []
        for (module, figure), column in self._columns.columns.items():
            if figure in figures and column[i] != MISSING:
                value = "not finite" if math.isnan(column[i]) else \
                    f"{100 * column[i]:.0f}%" if figure.endswith("fraction") else f"{column[i]:.2g}"
                parts.append(f"{module} {value}")
        label = next(lab for name, lab, _, _ in PLOTS if name == plot)
        text = f"step {steps[i]:,} · {label}: " + (", ".join(parts) or "not recorded")
        self._readout.setText(text)
        return text

    # -- for the window and tests --------------------------------------------------------------------------
    def warnings(self) -> list[HealthWarning]:
        """The warnings found so far (all of them; the list shows the first :data:`MAX_LISTED`)."""
        if self._dirty:
            self._redraw(force=True)
        return list(self._warnings)

    def warning_list(self) -> QListWidget:
        return self._list

    def curve(self, module: str, figure: str) -> pg.PlotDataItem | None:
        """The curve of `module`'s `figure` (e.g. ``("conv1", "update_ratio")``), None when not drawn."""
        return self._curves.get((module, figure))

    def empty_message(self) -> str | None:
        """The message shown instead of the plots, if any."""
        return self._message.text() if not self._message.isHidden() else None

    def readout_text(self) -> str:
        return self._readout.text()

    # -- Qt overrides --------------------------------------------------------------------------------------
    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if self._dirty:
            self._throttle.request()
