"""Training curves: loss, accuracy and learning rate per step, with moving averages and epoch figures.

The curves draw the session's one History (its per-step series are numpy arrays that double when full;
each step's moving average is computed once, at the first redraw after it arrived). Each per-step curve is a :class:`StepCurve` that keeps a min/max
envelope of its series up to date as steps arrive, so a redraw costs the same for a million steps as
for a few thousand (pyqtgraph then clips and peak-downsamples those points to the plot's width). Epoch
markers are redrawn only when an epoch or evaluation arrived. Redraws are coalesced to about 10 per
second (the curves are most of the window's work while training) and skipped while the view is hidden.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QGraphicsItem, QHBoxLayout, QLabel, QSizePolicy, QSplitter, QVBoxLayout, QWidget

from cnnviz.gui.visibility import on_screen
from cnnviz.errors import CnnvizError
from cnnviz.gui.widgets.curve_items import GridAxis, StepCurve, SteppedViewBox
from cnnviz.gui.widgets.run_overlays import RunList, RunOverlays
from cnnviz.training.history import WINDOW, History, Series, trailing_mean  # noqa: F401 (re-exported)
from cnnviz.training.surgery import ACTION_WORDS

__all__ = ["CurvesView", "HistoryColumns", "WINDOW", "trailing_mean"]

_REDRAW_MS = 100  # at most ~10 redraws per second: at 20 the window took ~5% more of a core, which training felt
_BLUE, _ORANGE, _GREEN = (31, 119, 180), (255, 127, 14), (44, 160, 44)
_PURPLE, _GREY = (148, 103, 189), (110, 110, 110)


class HistoryColumns:
    """The session's :class:`~cnnviz.training.history.History` as the curves read it: columns by name (step,
    loss, accuracy, lr and the moving averages), views of the history's own arrays, never a copy of them.

    What a redraw needs beyond the values is kept up to date for the new steps only: the step numbers, whether
    everything so far is finite (then the curves skip their own checks), the highest learning rate."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._steps = Series()
        self._checked = 0
        self.finite = True
        self.lr_max = 0.0

    @property
    def n(self) -> int:
        h = self.history
        return min(len(h.step_loss), len(h.step_accuracy), len(h.step_lr))

    def update(self) -> None:
        """Take in the steps the history gained since the last call."""
        n, h = self.n, self.history
        if len(self._steps) < n:
            self._steps.extend(np.arange(len(self._steps) + 1, n + 1, dtype=np.float64))
        if self._checked < n:
            new = slice(self._checked, n)
            lrs = h.step_lr.values[new]
            finite_lrs = lrs[np.isfinite(lrs)]
            if finite_lrs.size:
                self.lr_max = max(self.lr_max, float(finite_lrs.max()))
            self.finite = self.finite and all(bool(np.isfinite(getattr(h, f).values[new]).all())
                                              for f in ("step_loss", "step_accuracy", "step_lr"))
            self._checked = n

    def __getitem__(self, name: str) -> np.ndarray:
        self.update()
        n, h = self.n, self.history
        if name == "step":
            return self._steps.values[:n]
        if name.endswith("_ma"):
            return h.moving_average("step_" + name[:-3])[:n]
        return getattr(h, "step_" + name).values[:n]


def surgery_label(operations) -> str:
    """What was done at one step, short: "zeroed conv1 #3", or "5 zeroed, 1 froze" for several (the line's
    tooltip lists them all)."""
    if len(operations) == 1:
        return operations[0].describe().split(" at step")[0]
    counts: dict[str, int] = {}
    for op in operations:
        counts[op.action] = counts.get(op.action, 0) + 1
    return ", ".join(f"{n} {ACTION_WORDS.get(action, action)}" for action, n in counts.items())


def _pen(colour, width=1.0, alpha=255):
    return pg.mkPen((*colour, alpha), width=width)


class CurvesView(QWidget):
    """Loss, accuracy and learning-rate curves of the session's run, updated as steps arrive."""

    step_clicked = Signal(int)  # a click on a curve: show the network at that step

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("curvesView")
        self.session = session
        self.buffers = HistoryColumns(session.history)
        self._tests: list[tuple[int, float]] = []  # (step, test accuracy)
        self._dirty = True
        self._markers_dirty = True  # epoch / test markers changed since they were last drawn
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._redraw)
        self._build_ui()
        s = session
        s.steps_added.connect(self._on_steps_added)
        s.epoch_ended.connect(self._on_epoch_ended)
        s.evaluation_ready.connect(self._on_evaluation)
        s.history_reset.connect(self._on_history_reset)
        s.surgery_changed.connect(self._draw_surgeries)
        self._surgery_lines: list[tuple[pg.PlotWidget, pg.InfiniteLine]] = []
        self._on_history_reset(s.history)
        self._draw_surgeries(s.surgeries)

    # -- layout ----------------------------------------------------------------------------------------
    def _plot(self, name: str, ylabel: str) -> pg.PlotWidget:
        pal = self.palette()
        bg, fg = pal.base().color(), pal.text().color()
        plot = pg.PlotWidget(background=bg, viewBox=SteppedViewBox(),
                             axisItems={side: GridAxis(side, bg) for side in ("left", "bottom")})
        plot.setObjectName(name)
        item = plot.getPlotItem()
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setMenuEnabled(True)
        for side in ("left", "bottom"):
            axis = item.getAxis(side)
            axis.setPen(fg)
            axis.setTextPen(fg)
            # Grid lines at the major and minor ticks only: the third, finest level is barely visible
            # at alpha 0.15 but cost ~3 ms per plot on every redraw of a growing run.
            axis.setStyle(maxTickLevel=1)
            # No SI prefix: the labels have no units, and every range change would re-set their HTML.
            axis.enableAutoSIPrefix(False)
        item.getAxis("left").setWidth(58)  # same width on all three, so the linked x axes line up
        item.setLabel("left", ylabel)
        return plot

    def _curve(self, plot: pg.PlotWidget, name: str | None, pen, **kw) -> pg.PlotDataItem:
        item = pg.PlotDataItem(pen=pen, name=name, skipFiniteCheck=True, **kw)
        plot.addItem(item)
        return item

    def _step_curve(self, plot: pg.PlotWidget, name: str | None, pen) -> StepCurve:
        item = StepCurve(pen=pen, name=name, skipFiniteCheck=True)
        plot.addItem(item)
        return item

    def _markers(self, plot, name, colour, symbol) -> pg.PlotDataItem:
        item = self._curve(plot, name, _pen(colour, 1.5), symbol=symbol, symbolSize=8,
                           symbolBrush=colour, symbolPen=_pen((255, 255, 255), 1))
        # A few points: clipping and downsampling them would only rebuild their symbols at every
        # x-range change, i.e. at every redraw of a growing run.
        item.setClipToView(False)
        item.setDownsampling(auto=False)
        return item

    def _build_ui(self) -> None:
        self._log = QCheckBox("Log loss")
        self._log.setToolTip("Show the loss on a logarithmic scale (small late-training losses become visible)")
        self._log.toggled.connect(self.set_log_loss)
        self._readout = QLabel("")
        self._readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # a long readout is cut at the panel's edge rather than widening the panel (and the window)
        self._readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top = QHBoxLayout()
        top.addWidget(self._log)
        top.addSpacing(12)
        top.addWidget(self._readout, 1)

        self.loss_plot = self._plot("lossPlot", "loss")
        self.accuracy_plot = self._plot("accuracyPlot", "accuracy (%)")
        self.lr_plot = self._plot("lrPlot", "lr")
        acc_axis = self.accuracy_plot.getPlotItem().getAxis("left")
        acc_axis.setScale(100.0)  # accuracies are fractions; ticks read as percent
        self.lr_plot.getPlotItem().setLabel("bottom", "step (batch)")
        # The lr plot is a strip: auto-range would pad a constant lr to a meaningless +-0.x span and crowd
        # the axis with overlapping labels. It shows 0 to above the highest lr, which is labelled.
        self.lr_plot.getPlotItem().getViewBox().enableAutoRange(y=False)
        self.lr_plot.getPlotItem().getAxis("left").setStyle(hideOverlappingLabels=False)
        self._lr_top: float | None = None
        for plot in (self.accuracy_plot, self.lr_plot):
            plot.setXLink(self.loss_plot)
        self.loss_plot.setToolTip("Loss per batch (light), its moving average over the last "
                                  f"{WINDOW} steps (bold) and per-epoch train and validation loss")
        self.accuracy_plot.setToolTip("Accuracy per batch, its moving average, and per-epoch train, "
                                      "validation and test accuracy")
        self.lr_plot.setToolTip("Learning rate at each step")

        # Legends in the corner the curves leave empty: loss falls (top right), accuracy rises (bottom right);
        # two columns, so that they stay out of the way in short plots.
        legend = dict(brush=(255, 255, 255, 200), labelTextColor=(20, 20, 20), verSpacing=-4, colCount=2)
        self.loss_plot.addLegend(offset=(-8, 8), **legend)
        self.accuracy_plot.addLegend(offset=(-8, -8), **legend)
        light = 110
        self._loss = self._step_curve(self.loss_plot, "loss per batch", _pen(_BLUE, 1, light))
        self._loss_ma = self._step_curve(self.loss_plot, f"moving average ({WINDOW})", _pen(_BLUE, 2.5))
        self._train_loss = self._markers(self.loss_plot, "train (epoch)", _ORANGE, "o")
        self._val_loss = self._markers(self.loss_plot, "validation (epoch)", _GREEN, "s")
        self._acc = self._step_curve(self.accuracy_plot, "accuracy per batch", _pen(_BLUE, 1, light))
        self._acc_ma = self._step_curve(self.accuracy_plot, f"moving average ({WINDOW})", _pen(_BLUE, 2.5))
        self._train_acc = self._markers(self.accuracy_plot, "train (epoch)", _ORANGE, "o")
        self._val_acc = self._markers(self.accuracy_plot, "validation (epoch)", _GREEN, "s")
        self._test_acc = self._markers(self.accuracy_plot, "test", _PURPLE, "t")
        self._lr = self._step_curve(self.lr_plot, None, _pen(_GREY, 1.5))
        self._step_items = ((self._loss, "loss"), (self._loss_ma, "loss_ma"), (self._acc, "accuracy"),
                            (self._acc_ma, "accuracy_ma"), (self._lr, "lr"))

        # the step every view shows, when it is not the newest (the timeline); a click on a plot seeks there
        self._shown = []
        for plot in (self.loss_plot, self.accuracy_plot, self.lr_plot):
            line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((214, 120, 0), width=2))
            line.hide()
            plot.addItem(line, ignoreBounds=True)
            self._shown.append(line)
            plot.scene().sigMouseClicked.connect(self._on_click)
        self._cursors = []
        for plot in (self.loss_plot, self.accuracy_plot, self.lr_plot):
            line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((120, 120, 120), style=Qt.PenStyle.DashLine))
            line.hide()
            plot.addItem(line, ignoreBounds=True)
            self._cursors.append(line)
        # Hover readout at most 30 times a second, whichever plot the mouse is over.
        # Bound methods, not lambdas: a lambda holding `self` would keep a closed view alive forever.
        self._proxies = [
            pg.SignalProxy(plot.scene().sigMouseMoved, rateLimit=30, slot=slot)
            for plot, slot in ((self.loss_plot, self._hover_loss), (self.accuracy_plot, self._hover_accuracy),
                               (self.lr_plot, self._hover_lr))
        ]

        split = QSplitter(Qt.Orientation.Vertical)
        for plot, stretch in ((self.loss_plot, 5), (self.accuracy_plot, 4), (self.lr_plot, 2)):
            split.addWidget(plot)
            split.setStretchFactor(split.count() - 1, stretch)
        split.setSizes([500, 400, 200])
        self.overlays = RunOverlays(self)  # other runs drawn over this one (compare, "Add run")
        self.run_list = RunList(self.overlays)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.run_list)
        layout.addWidget(split, 1)

    # -- session signals -------------------------------------------------------------------------------
    def _schedule(self) -> None:
        if not on_screen(self):
            self._dirty = True
            return
        if not self._timer.isActive():
            self._timer.start(_REDRAW_MS)

    def _on_steps_added(self, batch) -> None:
        self._schedule()  # the steps are in the session's history already

    def overlays_changed(self) -> None:
        """An overlaid run gained steps: redraw with the next coalesced redraw."""
        self._schedule()

    def _on_epoch_ended(self, metrics) -> None:
        self._markers_dirty = True
        self._schedule()

    def _on_evaluation(self, evaluation) -> None:
        step = int(evaluation.step)
        if evaluation.split == "test" and all(s != step for s, _ in self._tests):  # (a seek shows one again)
            self._tests.append((step, float(evaluation.accuracy)))
            self._markers_dirty = True
            self._schedule()

    def _on_history_reset(self, history) -> None:
        self.buffers = HistoryColumns(history)
        self.buffers.update()
        for item, _ in self._step_items:
            item.reset()
        self._markers_dirty = True
        self._tests = [(e.step, float(acc)) for e, acc in zip(history.epochs, history.test_accuracy)]
        # A new history (a new run, an opened one) is usually much shorter than the last: move the x
        # range to it now, or pyqtgraph would downsample the new points for the old, far wider range
        # (down to nothing, leaving auto-range nothing to fit).
        # Redrawn at once (not coalesced): auto-range must not fit the old curves to the new range.
        box = self.loss_plot.getPlotItem().getViewBox()
        if box.autoRangeEnabled()[0]:
            box.setRange(xRange=(1, max(2, self.buffers.n)), disableAutoRange=False)
        self._redraw()

    def _draw_surgeries(self, operations) -> None:
        """A dotted line on every plot at each step with filter operations, labelled in the learning-rate strip
        (which has no legend to hide it) with what was done; the tooltip lists the operations."""
        for plot, line in self._surgery_lines:
            plot.removeItem(line)
        self._surgery_lines = []
        by_step: dict[int, list] = {}
        for op in operations:
            by_step.setdefault(op.step, []).append(op)
        pen = pg.mkPen((0, 140, 230), width=1.5, style=Qt.PenStyle.DotLine)
        for step, ops in by_step.items():
            for plot in (self.loss_plot, self.accuracy_plot, self.lr_plot):
                labelled = plot is self.lr_plot
                line = pg.InfiniteLine(pos=step + 0.5, angle=90, movable=False, pen=pen,
                                       label=surgery_label(ops) if labelled else None,
                                       labelOpts={"position": 0.5, "color": (0, 90, 170),
                                                  "anchors": [(0, 0.5), (0, 0.5)]})
                line.setToolTip("\n".join(op.describe() for op in ops))
                plot.addItem(line, ignoreBounds=True)
                self._surgery_lines.append((plot, line))

    @property
    def surgery_marks(self) -> list[tuple[float, str]]:
        """(x, label) of the filter-operation lines (for tests)."""
        return [(line.value(), line.label.format) for plot, line in self._surgery_lines if plot is self.lr_plot]

    # -- drawing ---------------------------------------------------------------------------------------
    def _redraw(self, force: bool = False) -> None:
        if not (force or on_screen(self)):
            self._dirty = True
            return
        self._dirty = False
        self.buffers.update()
        b, finite = self.buffers, self.buffers.finite
        x = b["step"]
        for item, name in self._step_items:
            item.set_series(x, b[name], finite)
        if self._markers_dirty:
            self._markers_dirty = False
            self._draw_markers()
        self.overlays.redraw()
        # Fit the auto-ranges now: fitted when the scene prepares to paint (pyqtgraph's default), the
        # new range changes the items again and every plot is painted twice per redraw. The loss plot
        # goes last again: fitting the x-linked plots echoes their x range back to it.
        self._fit_lr_range()
        for plot in (self.loss_plot, self.accuracy_plot, self.lr_plot, self.loss_plot):
            plot.getPlotItem().getViewBox().updateAutoRange()
        if b.n == 0:
            self._readout.setText("No training steps yet: start training to see the loss and accuracy curves.")
            for line in self._cursors:
                line.hide()
        elif not self._cursors[0].isVisible():
            self._readout.setText(self._summary(b.n - 1, "latest"))

    def _fit_lr_range(self) -> None:
        """The lr strip spans 0 to above the highest learning rate, which is its one labelled tick."""
        top = self.buffers.lr_max if self.buffers.n and self.buffers.lr_max > 0 else 1.0
        if top == self._lr_top:
            return
        self._lr_top = top
        self.lr_plot.setYRange(-0.1 * top, 1.6 * top, padding=0)  # room above for the label (a 30 px strip)
        ticks = [(top, f"{top:.3g}")] if self.buffers.n else []
        self.lr_plot.getPlotItem().getAxis("left").setTicks([ticks, []])

    def _draw_markers(self) -> None:
        epochs = self.session.history.epochs
        steps = np.array([m.step for m in epochs], dtype=np.float64)

        def epoch_series(item, field):
            vals = [getattr(m, field) for m in epochs]
            keep = np.array([v is not None for v in vals], dtype=bool)
            y = np.array([v for v in vals if v is not None], dtype=np.float64)
            item.setData(steps[keep], y)

        epoch_series(self._train_loss, "train_loss")
        epoch_series(self._val_loss, "val_loss")
        epoch_series(self._train_acc, "train_accuracy")
        epoch_series(self._val_acc, "val_accuracy")
        self._test_acc.setData(np.array([s for s, _ in self._tests], dtype=np.float64),
                               np.array([a for _, a in self._tests], dtype=np.float64))

    def _summary(self, i: int, prefix: str = "") -> str:
        b = self.buffers
        lead = f"{prefix} " if prefix else ""
        return (f"{lead}step {int(b['step'][i]):,}   loss {b['loss'][i]:.4g} (avg {b['loss_ma'][i]:.4g})   "
                f"accuracy {100 * b['accuracy'][i]:.1f}% (avg {100 * b['accuracy_ma'][i]:.1f}%)   "
                f"lr {b['lr'][i]:.3g}")

    def _hover_loss(self, event) -> None:
        self._on_hover(self.loss_plot, event[0])

    def _hover_accuracy(self, event) -> None:
        self._on_hover(self.accuracy_plot, event[0])

    def _hover_lr(self, event) -> None:
        self._on_hover(self.lr_plot, event[0])

    def _on_hover(self, plot: pg.PlotWidget, pos) -> None:
        if self.buffers.n == 0 or not plot.sceneBoundingRect().contains(pos):
            return
        x = plot.getPlotItem().vb.mapSceneToView(pos).x()
        self.show_step_at(x)

    def show_step_at(self, x: float) -> int | None:
        """Move the crosshair to the step nearest ``x`` and describe it in the readout; its index."""
        steps = self.buffers["step"]
        if not len(steps):
            return None
        i = int(np.clip(np.searchsorted(steps, x), 0, len(steps) - 1))
        if i > 0 and abs(steps[i - 1] - x) < abs(steps[i] - x):
            i -= 1
        for line in self._cursors:
            line.setValue(float(steps[i]))
            line.show()
        self._readout.setText(self._summary(i))
        return i

    def show_step(self, step: int | None) -> None:
        """Mark the step every view shows (None: the newest, unmarked).

        While a past step is shown (scrubbing, Play) the curves are cached as images, so moving the marker
        repaints the plots from those images instead of drawing every curve again (measured: most of the
        curves' share of a Play frame); live, where the curves change at every redraw, they are drawn directly."""
        mode = (QGraphicsItem.CacheMode.NoCache if step is None
                else QGraphicsItem.CacheMode.DeviceCoordinateCache)
        for plot in (self.loss_plot, self.accuracy_plot, self.lr_plot):
            for item in plot.getPlotItem().listDataItems():
                for part in (item.curve, item.scatter):
                    if part.cacheMode() != mode:  # setting it again, even unchanged, empties the cache
                        part.setCacheMode(mode)
        for line in self._shown:
            line.setVisible(step is not None)
            if step is not None:
                line.setValue(float(step))

    def shown_step_marker(self) -> float | None:
        line = self._shown[0]
        return float(line.value()) if line.isVisible() else None

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.buffers.n == 0:
            return
        for plot in (self.loss_plot, self.accuracy_plot, self.lr_plot):
            if plot.sceneBoundingRect().contains(event.scenePos()):
                x = plot.getPlotItem().vb.mapSceneToView(event.scenePos()).x()
                self.step_clicked.emit(int(round(min(max(x, 0), self.buffers.n))))
                return

    def readout_text(self) -> str:
        return self._readout.text()

    # -- public ----------------------------------------------------------------------------------------
    def set_log_loss(self, on: bool) -> None:
        """Loss axis logarithmic (True) or linear."""
        if self._log.isChecked() != on:
            self._log.setChecked(on)  # re-enters through toggled
            return
        self.loss_plot.getPlotItem().setLogMode(y=on)

    def point_count(self) -> int:
        """Steps plotted."""
        self.buffers.update()
        return self.buffers.n

    def moving_average(self) -> np.ndarray:
        """Moving average of the loss over the last ``WINDOW`` steps, one value per step."""
        return self.buffers["loss_ma"]

    def epoch_markers(self) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, train losses)`` of the per-epoch train-loss markers as plotted."""
        x, y = self._train_loss.getOriginalDataset()
        return (np.array([]) if x is None else x), (np.array([]) if y is None else y)

    def export_png(self, path: str) -> None:
        """Save the curves as they are on screen."""
        if self._dirty:
            self._redraw(force=True)
        if not self.grab().save(str(path), "PNG"):
            raise CnnvizError(f"could not write the curves picture to {path}")

    def export_csv(self, path: str) -> list[Path]:
        """Write step,loss,moving_average,accuracy,lr for every step; and ``<name>_epochs.csv`` if any epochs.

        Returns the files written.
        """
        b, out = self.buffers, Path(path)
        table = np.column_stack([b["step"], b["loss"], b["loss_ma"], b["accuracy"], b["lr"]])
        written = [out]
        try:
            with open(out, "w", encoding="utf-8", newline="") as f:
                f.write("step,loss,moving_average,accuracy,lr\n")
                np.savetxt(f, table, fmt=["%d", "%.6g", "%.6g", "%.6g", "%.6g"], delimiter=",")
            if self.session.history.epochs:
                epochs = out.with_name(f"{out.stem}_epochs.csv")
                epochs.write_text(self.session.history.to_csv(), encoding="utf-8")
                written.append(epochs)
        except OSError as err:
            raise CnnvizError(f"could not write the curves to {err.filename or out}: {err.strerror}") from err
        return written

    # -- Qt overrides ----------------------------------------------------------------------------------
    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if self._dirty:
            self._schedule()
