"""Two runs side by side at the same step: their filters, their feature maps of the same input, their answers
to the drawing (and where they differ), their per-class accuracy and confusion matrices (and the
difference), their distributions and health.

Run A is the window's run, B the compared one (`gui/compare_controller.py`). The side-by-side tabs reuse the
window's own views, one per session; the "Answers" and "Evaluation" tabs draw what only a comparison has:
the two runs' probabilities for the input and B - A.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget

from cnnviz.gui.visibility import on_screen
from cnnviz.errors import CnnvizError
from cnnviz.gui.widgets.colormaps import diverging_lut, sequential_lut
from cnnviz.gui.widgets.feature_maps_view import FeatureMapsView
from cnnviz.gui.widgets.filters_view import FiltersView

_A, _B = (31, 119, 180), (217, 95, 2)


def _side_by_side(left: QWidget, right: QWidget, a_title: QLabel, b_title: QLabel) -> QWidget:
    split = QSplitter(Qt.Orientation.Horizontal)
    for title, view in ((a_title, left), (b_title, right)):
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(title)
        column.addWidget(view, 1)
        split.addWidget(box)
    return split


def _bar_plot(title: str, ylabel: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background="w")
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.setTitle(title, size="9pt")
    plot.setLabel("left", ylabel)
    plot.addLegend(offset=(-8, 8), brush=(255, 255, 255, 200), labelTextColor=(20, 20, 20))
    return plot


class CompareView(QWidget):
    """The compare dock: A | B at the same step."""

    def __init__(self, session_a, session_b, extra_tabs=(), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.a, self.b = session_a, session_b
        self.header = QLabel("Compare two runs: File -> Compare with run…, or Compare in the Experiment panel "
                             "to train a variant beside this run on the same batches.")
        self.header.setObjectName("compareHeader")
        self.header.setWordWrap(True)
        self.tabs = QTabWidget()
        self.tabs.setElideMode(Qt.TextElideMode.ElideNone)
        self.tabs.setUsesScrollButtons(True)
        self._titles: list[tuple[QLabel, QLabel]] = []
        self.filters = (FiltersView(session_a), FiltersView(session_b))
        self.maps = (FeatureMapsView(session_a), FeatureMapsView(session_b))
        self.tabs.addTab(self._pair(*self.filters), "Filters")
        self.tabs.addTab(self._pair(*self.maps), "Feature maps")
        self.tabs.addTab(self._answers_tab(), "Answers")
        self.tabs.addTab(self._evaluation_tab(), "Evaluation")
        for title, make in extra_tabs:  # e.g. distributions and health: make(session, which) -> widget
            self.tabs.addTab(self._pair(make(session_a, "A"), make(session_b, "B")), title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.tabs, 1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._refresh_shown)
        self.tabs.currentChanged.connect(self._schedule)
        for s in (session_a, session_b):
            for signal in (s.weights_changed, s.input_changed, s.evaluation_ready, s.spec_changed):
                signal.connect(self._schedule)
        self.set_names("A", "B")

    def _pair(self, left: QWidget, right: QWidget) -> QWidget:
        titles = (QLabel(), QLabel())
        self._titles.append(titles)
        return _side_by_side(left, right, *titles)

    def _answers_tab(self) -> QWidget:
        self.answers_plot = _bar_plot("The two runs' probabilities for the input shown", "probability")
        self.difference_plot = _bar_plot("B - A", "difference")
        self.difference_plot.getPlotItem().legend.hide()
        self.saliency_images = (pg.ImageItem(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major"))
        pictures = QHBoxLayout()
        self.saliency_titles = (QLabel("A: saliency"), QLabel("B: saliency"))
        for image, title in zip(self.saliency_images, self.saliency_titles):
            view = pg.GraphicsLayoutWidget()
            box = view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
            box.addItem(image)
            view.setFixedSize(150, 150)
            column = QVBoxLayout()
            column.addWidget(title)
            column.addWidget(view)
            pictures.addLayout(column)
        pictures.addStretch(1)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(self.answers_plot, 3)
        layout.addWidget(self.difference_plot, 2)
        layout.addLayout(pictures)
        self._answer_bars = None
        return page

    def _evaluation_tab(self) -> QWidget:
        self.accuracy_plot = _bar_plot("Per-class test accuracy", "accuracy")
        self.confusion_plot = pg.PlotWidget(background="w", title="Confusion matrix, B - A (blue: B fewer, red: B more)")
        self.confusion_plot.setMouseEnabled(x=False, y=False)
        self.confusion_plot.hideButtons()
        self.confusion_plot.invertY(True)
        self.confusion_plot.setLabel("left", "true class")
        self.confusion_plot.setLabel("bottom", "predicted class")
        self.confusion_image = pg.ImageItem(axisOrder="row-major")
        self.confusion_plot.addItem(self.confusion_image)
        self.evaluation_note = QLabel("")
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(self.evaluation_note)
        row = QHBoxLayout()
        row.addWidget(self.accuracy_plot, 3)
        row.addWidget(self.confusion_plot, 2)
        layout.addLayout(row, 1)
        return page

    # -- what the window tells it ------------------------------------------------------------------------
    def set_names(self, a: str, b: str, label: str = "") -> None:
        self.names = (a, b)
        for left, right in self._titles:
            left.setText(f"<b style='color:rgb{_A}'>A</b>: {a}")
            right.setText(f"<b style='color:rgb{_B}'>B</b>: {b}")
        if label:
            self.header.setText(f"A: {a}   vs   B: {b}   ({label}); both at the step the timeline shows.")
        self._schedule()

    def _schedule(self, *_args) -> None:
        if on_screen(self) and not self._timer.isActive():
            self._timer.start(60)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        self._schedule()

    # -- drawing -----------------------------------------------------------------------------------------
    def answers(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(A's, B's) class probabilities for the input shown (None without an input or a model for it)."""
        image = self.a.selected_input
        if image is None:
            return None
        try:
            return self.a.predict(image.pixels), self.b.predict(image.pixels)
        except CnnvizError:
            return None

    def refresh(self) -> None:
        """Redraw the answers and evaluation pages now (shown or not)."""
        self._draw_answers()
        self._draw_evaluation()

    def _refresh_shown(self) -> None:
        """Redraw the page on show only (the side-by-side views redraw themselves): two predictions, two
        saliency maps and the bar plots cost ~40 ms, five times a second while both runs train, which the
        event loop cannot spare when the answers are not even on screen. A page is drawn when it is shown."""
        page = self.tabs.tabText(self.tabs.currentIndex())
        if page == "Answers":
            self._draw_answers()
        elif page == "Evaluation":
            self._draw_evaluation()

    def _draw_answers(self) -> None:
        from cnnviz.inspect.saliency import saliency

        found = self.answers()
        for plot in (self.answers_plot, self.difference_plot):
            plot.clear()
        if found is None:
            return
        pa, pb = found
        if len(pa) != len(pb):
            self.answers_plot.setTitle("The runs have different classes: their answers cannot be compared")
            return
        x = np.arange(len(pa))
        self.answers_plot.addItem(pg.BarGraphItem(x=x - 0.2, height=pa, width=0.38, brush=_A, name="A"))
        self.answers_plot.addItem(pg.BarGraphItem(x=x + 0.2, height=pb, width=0.38, brush=_B, name="B"))
        diff = pb - pa
        brushes = [pg.mkBrush(_B) if d >= 0 else pg.mkBrush(_A) for d in diff]
        self.difference_plot.addItem(pg.BarGraphItem(x=x, height=diff, width=0.6, brushes=brushes))
        names = self.a.class_names
        ticks = [[(i, str(names[i]) if i < len(names) else str(i)) for i in x]]
        for plot in (self.answers_plot, self.difference_plot):
            plot.getAxis("bottom").setTicks(ticks)
        self.answers_plot.setYRange(0, 1)
        top = max(0.05, float(np.abs(diff).max()))
        self.difference_plot.setYRange(-top, top)
        lut = sequential_lut("inferno")
        for session, image, title, which in zip((self.a, self.b), self.saliency_images, self.saliency_titles, "AB"):
            try:
                x_in = session.to_tensor(self.a.selected_input.pixels)
                image.setImage(saliency(session.model, x_in), levels=(0.0, 1.0), lut=lut)
                title.setText(f"{which}: saliency ({self.names['AB'.index(which)]})")
            except CnnvizError:
                image.clear()

    def _draw_evaluation(self) -> None:
        self.accuracy_plot.clear()
        ea, eb = self.a.evaluation, self.b.evaluation
        if ea is None or eb is None or len(ea.per_class_accuracy) != len(eb.per_class_accuracy):
            self.evaluation_note.setText("Both runs need a test evaluation at this step (Evaluate on the timeline).")
            self.confusion_image.clear()
            return
        self.evaluation_note.setText(f"Test accuracy: A {ea.accuracy * 100:.2f}% (step {ea.step:,}), "
                                     f"B {eb.accuracy * 100:.2f}% (step {eb.step:,}); B - A "
                                     f"{(eb.accuracy - ea.accuracy) * 100:+.2f} points")
        x = np.arange(len(ea.per_class_accuracy))
        self.accuracy_plot.addItem(pg.BarGraphItem(x=x - 0.2, height=ea.per_class_accuracy, width=0.38, brush=_A,
                                                   name="A"))
        self.accuracy_plot.addItem(pg.BarGraphItem(x=x + 0.2, height=eb.per_class_accuracy, width=0.38, brush=_B,
                                                   name="B"))
        self.accuracy_plot.setYRange(0, 1)
        diff = self.confusion_difference()
        top = max(1.0, float(np.abs(diff).max()))
        self.confusion_image.setImage(diff.astype(np.float32), levels=(-top, top), lut=diverging_lut())

    def confusion_difference(self) -> np.ndarray | None:
        """B's confusion matrix minus A's, as rates per true class (the runs may be evaluated on as many
        images, or not)."""
        ea, eb = self.a.evaluation, self.b.evaluation
        if ea is None or eb is None or ea.confusion.shape != eb.confusion.shape:
            return None

        def rates(c):
            rows = c.sum(1, keepdims=True)
            return np.divide(c, rows, out=np.zeros(c.shape), where=rows > 0)

        return (rates(eb.confusion) - rates(ea.confusion)) * 100
