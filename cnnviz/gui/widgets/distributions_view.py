"""How one layer's weights and gradients spread over time: two heatmaps of histograms (TensorBoard's
"distributions"), step across, value up, colour the share of the layer's values in each bin.

Records of statistics come about 4 times a second of training, so they are not evenly spaced in steps. The
heatmaps resample them onto an even grid of steps (at most :data:`MAX_COLUMNS` columns), each column showing
the record at or before its step: one ImageItem draws that (one texture, however long the run), and a column
that holds the last record until the next one says what is true: that distribution was the latest known.
The colour scale is logarithmic (the tails of a distribution hold a thousandth of its values yet show where it
reaches), from the smallest share shown, at most 3 decades under the largest, to the largest; a bin with no
values is left empty. Hover for a bin's step, value range and share; click to show that step's weights.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSplitter, QVBoxLayout, QWidget

from cnnviz.gui.visibility import on_screen
from cnnviz.gui.throttle import Throttle
from cnnviz.gui.widgets.colormaps import sequential_lut
from cnnviz.gui.widgets.timeline_plots import (NO_STATS, REDRAW_MS, StatsTable, clicked_x, empty_text, place_line,
                                               seek, set_step_range, shown_step_line, step_plot)
from cnnviz.inspect.distributions import spread, valid_histogram

MAX_COLUMNS = 720  # step columns of a heatmap: finer than this is finer than the plot is wide
BINS = 64  # value rows of a heatmap
DECADES = 3.0  # the colour scale spans at most this many powers of ten below the largest share
HINT = "Hover the heatmaps to read a bin; click to show that step's weights."
WHICH = (("weight_hist", "weights", "weight value"), ("grad_hist", "gradients", "gradient value"))


def _lut() -> np.ndarray:
    """viridis with its first entry transparent: a bin holding no values shows the plot's background."""
    lut = np.array(sequential_lut("viridis"))
    lut[0, 3] = 0
    return lut


class Heatmap:
    """One histogram-over-time plot: its image, the matrix it shows, and where that lies in step and value."""

    def __init__(self, plot: pg.PlotWidget, which: str, noun: str) -> None:
        self.plot, self.which, self.noun = plot, which, noun
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(_lut())
        plot.addItem(self.image)
        self.bar = pg.ColorBarItem(values=(-DECADES, 0.0), colorMap=pg.colormap.get("viridis"), width=10,
                                   interactive=False, colorMapMenu=False)
        axis = self.bar.getAxis("right")
        axis.enableAutoSIPrefix(False)
        fg = plot.palette().text().color()
        axis.setPen(fg)
        axis.setTextPen(fg)
        axis.setLabel("share of the values", color=fg.name())
        axis.setWidth(62)  # room for "0.01%" and the label beside it, whatever the ticks
        plot.getPlotItem().layout.addItem(self.bar, 2, 5)
        self.line = shown_step_line(plot)
        self.clear()

    def clear(self) -> None:
        self.shares = np.zeros((0, BINS), np.float32)  # [column, bin]: share of the values
        self.record_steps = np.zeros(0, np.int64)  # [column]: the step of the record it shows
        self.first, self.width, self.low, self.high = 0.0, 1.0, 0.0, 1.0
        self.levels = (-DECADES, 0.0)
        self.image.clear()

    def show(self, records: list[dict], rows: list[int], steps: np.ndarray, layer: str) -> None:
        """Draw `layer`'s histograms of ``records[i] for i in rows`` (well-formed, at `steps`, in step order)."""
        if not len(rows):
            self.clear()
            return
        first, last = int(steps[0]), int(steps[-1])
        columns = min(last - first + 1, MAX_COLUMNS)
        width = (last - first + 1) / columns
        edges = first + width * np.arange(columns)
        index = np.clip(np.searchsorted(steps, edges, side="right") - 1, 0, len(steps) - 1)
        used, column_of = np.unique(index, return_inverse=True)
        matrix, low, high = spread([records[rows[i]]["layers"][layer][self.which] for i in used], BINS)
        self.shares = matrix[column_of]
        self.record_steps = steps[index]
        self.first, self.width, self.low, self.high = float(first), float(width), float(low), float(high)
        shown = self.shares[self.shares > 0]
        top = math.log10(float(shown.max())) if shown.size else 0.0
        bottom = max(math.log10(float(shown.min())), top - DECADES) if shown.size else top - DECADES
        if bottom >= top:
            bottom = top - 1.0
        # below `bottom` is the lookup table's transparent first entry: lift every non-empty bin above it
        floor = bottom - 2 * (top - bottom)
        logs = np.full(self.shares.shape, floor, np.float32)
        np.log10(self.shares, out=logs, where=self.shares > 0)
        np.maximum(logs, np.where(self.shares > 0, bottom + (top - bottom) / 255, floor), out=logs)
        self.levels = (bottom, top)
        self.image.setImage(np.ascontiguousarray(logs.T), autoLevels=False, levels=self.levels)
        self.image.setRect(QRectF(first, low, width * columns, high - low))
        set_step_range(self.plot, first, last + 1)
        self.plot.getPlotItem().getViewBox().setYRange(low, high, padding=0.02)
        self.bar.setLevels(self.levels)
        self._label_bar(bottom, top)

    def _label_bar(self, bottom: float, top: float) -> None:
        """Ticks at 1, 2 and 5 times the powers of ten on the bar's log scale, as percentages."""
        ticks = [(math.log10(m * 10.0 ** p), m) for p in range(math.floor(bottom), math.ceil(top) + 1)
                 for m in (1, 2, 5)]
        margin = 0.03 * (top - bottom)  # a label on the bar's very end would be cut in half
        ticks = [(at, m) for at, m in ticks if bottom + margin <= at <= top - margin]
        if len(ticks) > 6:  # several decades: label the powers of ten only
            ticks = [(at, m) for at, m in ticks if m == 1]
        self.bar.getAxis("right").setTicks([[(at, _percent(10.0 ** at)) for at, _ in ticks], []])

    def bin_at(self, x: float, y: float) -> tuple[int, int] | None:
        """``(column, bin)`` under the point (step x, value y), or None outside the heatmap."""
        if not len(self.shares):
            return None
        column = math.floor((x - self.first) / self.width)
        row = math.floor((y - self.low) / (self.high - self.low) * BINS)
        if not (0 <= column < len(self.shares) and 0 <= row < BINS):
            return None
        return column, row

    def describe(self, layer: str, x: float, y: float) -> str | None:
        """What the hover readout says of the point (step x, value y)."""
        found = self.bin_at(x, y)
        if found is None:
            return None
        column, row = found
        size = (self.high - self.low) / BINS
        low = self.low + row * size
        return (f"{layer} {self.noun} at step {int(self.record_steps[column]):,}: {_percent(self.shares[column, row])}"
                f" of the values between {low:.4g} and {low + size:.4g}")


def _percent(share: float) -> str:
    share = float(share)
    if share <= 0:
        return "none"
    return f"{100 * share:.3g}%"


class DistributionsView(QWidget):
    """A layer's weight and gradient histograms over the run, tied to the step on show.

    Parameters
    ----------
    session : Session
        The window's session (its messages show a refused seek).
    timeline_model : TimelineModel
        The run's timeline and the step on show.
    """

    layer_changed = Signal(str)  # the layer whose distributions are shown

    def __init__(self, session, timeline_model, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("distributionsView")
        self.session, self.model = session, timeline_model
        self.table = StatsTable()
        self._layers: list[str] = []  # in the combo
        self._found: dict[str, None] = {}  # layers with weight histograms, in the order first recorded
        self._valid: dict[tuple[str, str], tuple[list[int], int]] = {}  # see _valid_rows
        self._dirty = True
        self._throttle = Throttle(REDRAW_MS, self._redraw, self)
        self._build_ui()
        timeline_model.changed.connect(self._on_changed)
        timeline_model.shown_step_changed.connect(self._on_shown_step)
        self._redraw(force=True)

    def _build_ui(self) -> None:
        self._combo = QComboBox()
        self._combo.setObjectName("distributionsLayer")
        self._combo.setToolTip("The layer whose weights and gradients are shown")
        self._combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self._combo.currentTextChanged.connect(self._on_layer_chosen)
        self._readout = QLabel(HINT)
        self._readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._top = QWidget()  # hidden with the heatmaps when there is nothing to show
        top = QHBoxLayout(self._top)
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Layer"))
        top.addWidget(self._combo)
        top.addSpacing(12)
        top.addWidget(self._readout, 1)
        self._message = QLabel("")
        self._message.setObjectName("emptyMessage")
        self._message.setWordWrap(True)
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.hide()
        self.maps: dict[str, Heatmap] = {}
        self._split = QSplitter(Qt.Orientation.Vertical)
        for which, noun, label in WHICH:
            plot = step_plot(self, f"{noun}Distribution", label)
            self.maps[which] = Heatmap(plot, which, noun)
            plot.scene().sigMouseClicked.connect(self._on_click)
            self._split.addWidget(plot)
        weights, grads = (self.maps[w].plot for w, _, _ in WHICH)
        weights.getPlotItem().getAxis("bottom").setStyle(showValues=False)  # the same steps as below
        grads.getPlotItem().setLabel("bottom", "step (batch)")
        weights.setToolTip("How the layer's weights spread at each step: colour is the share of the weights in "
                           "each value bin (log scale). Click to show that step's weights.")
        grads.setToolTip("How the layer's gradients spread (one batch's, at each recorded step). Click to show "
                         "that step's weights.")
        self._proxies = [pg.SignalProxy(m.plot.scene().sigMouseMoved, rateLimit=30, slot=self._on_hover)
                         for m in self.maps.values()]
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._top)
        layout.addWidget(self._message, 1)
        layout.addWidget(self._split, 1)

    # -- the model's signals -------------------------------------------------------------------------------
    def _on_changed(self) -> None:
        if not on_screen(self):
            self._dirty = True  # drawn when shown
            return
        self._throttle.request()

    def _on_shown_step(self, step: int) -> None:
        for heatmap in self.maps.values():
            place_line(heatmap.line, self.model)

    def _on_layer_chosen(self, name: str) -> None:
        if name:
            self._draw_layer()
            self.layer_changed.emit(name)

    # -- drawing -------------------------------------------------------------------------------------------
    def _redraw(self, force: bool = False) -> None:
        if not (force or on_screen(self)):
            self._dirty = True
            return
        self._dirty = False
        reset, new = self.table.sync(self.model.timeline)
        if reset:
            self._found, self._valid = {}, {}
        for record in self.table.records if reset else new:
            for name, figures in record["layers"].items():
                if isinstance(figures, dict) and "weight_hist" in figures:
                    self._found.setdefault(name)
        self._update_combo()
        message = empty_text(self.model) or (None if self._layers else NO_STATS)
        self._message.setText(message or "")
        self._message.setVisible(message is not None)
        self._split.setVisible(message is None)
        self._top.setVisible(message is None)
        self._draw_layer()
        self._on_shown_step(self.model.shown_step)

    def _update_combo(self) -> None:
        layers = list(self._found)
        if layers == self._layers:
            return
        current = self._combo.currentText()
        self._layers = layers
        self._combo.blockSignals(True)
        self._combo.clear()
        self._combo.addItems(layers)
        self._combo.setCurrentIndex(layers.index(current) if current in layers else 0 if layers else -1)
        self._combo.blockSignals(False)

    def _valid_rows(self, layer: str, which: str) -> list[int]:
        """The indices of the table's records with a well-formed `which` histogram of `layer` (checked once)."""
        rows, checked = self._valid.get((layer, which), ([], 0))
        records = self.table.records
        for i in range(checked, len(records)):
            figures = records[i]["layers"].get(layer)
            if isinstance(figures, dict) and valid_histogram(figures.get(which)):
                rows.append(i)
        self._valid[(layer, which)] = (rows, len(records))
        return rows

    def _draw_layer(self) -> None:
        layer = self.current_layer()
        steps = np.asarray(self.table.steps, np.int64)
        for which, heatmap in self.maps.items():
            if layer is None:
                heatmap.clear()
                continue
            rows = self._valid_rows(layer, which)
            heatmap.show(self.table.records, rows, steps[rows], layer)

    # -- the mouse -----------------------------------------------------------------------------------------
    def _on_hover(self, event) -> None:
        pos = event[0]
        for heatmap in self.maps.values():
            box = heatmap.plot.getPlotItem().getViewBox()
            if heatmap.plot.isVisible() and box.sceneBoundingRect().contains(pos):
                point = box.mapSceneToView(pos)
                self.show_readout(heatmap.which, point.x(), point.y())
                return

    def show_readout(self, which: str, x: float, y: float) -> str:
        """Describe the bin at (step x, value y) of the `which` heatmap in the readout; returns the text."""
        layer = self.current_layer()
        text = (self.maps[which].describe(layer, x, y) if layer else None) or ""
        self._readout.setText(text)
        return text

    def _on_click(self, event) -> None:
        for heatmap in self.maps.values():
            x = clicked_x(heatmap.plot, event)
            if x is not None:
                self.seek_at(x)
                return

    def seek_at(self, x: float) -> None:
        """Show the stored weights at or before step `x` (what a click on the heatmaps does)."""
        if self.table.steps:
            seek(self.model, self.session, math.floor(x))

    # -- for the window and tests --------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """The layers in the combo (those with weight histograms), in the run's order."""
        return list(self._layers)

    def current_layer(self) -> str | None:
        return self._combo.currentText() or None

    def select_layer(self, name: str) -> bool:
        """Show the distributions of layer `name`; False when it has none."""
        if self._dirty:
            self._redraw(force=True)
        if name not in self._layers:
            return False
        self._combo.setCurrentText(name)
        return True

    def empty_message(self) -> str | None:
        """The message shown instead of the heatmaps, if any."""
        return self._message.text() if not self._message.isHidden() else None

    def readout_text(self) -> str:
        return self._readout.text()

    # -- Qt overrides --------------------------------------------------------------------------------------
    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if self._dirty:
            self._throttle.request()
