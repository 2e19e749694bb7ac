"""The test-set evaluation: accuracy, per-class accuracy, the confusion matrix and galleries of images.

Fed by ``session.evaluation_ready`` (after each epoch); the galleries show ``session.data.test.raw``, so an
evaluation is only shown for the test split whose images are loaded. Clicking a confusion cell opens the
images of that cell; clicking a thumbnail makes that image the input of the feature maps.
"""
from __future__ import annotations

import csv

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnnviz.gui.visibility import on_screen
from cnnviz.errors import CnnvizError
from cnnviz.gui.widgets.confusion_view import ConfusionView
from cnnviz.gui.widgets.image_gallery import ImageGallery
from cnnviz.inspect.mistakes import cell_examples, most_confident_mistakes, most_confused_pairs
from cnnviz.training.messages import Evaluation

EMPTY_TEXT = "Evaluate the model by training at least one epoch"


class EvaluationView(QWidget):
    """Test accuracy and loss, per-class accuracy bars, a clickable confusion matrix and image galleries."""

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._evaluation: Evaluation | None = None
        self._cell: tuple[int, int] | None = None
        self._stale_tabs: set[int] = set()  # galleries to refill when they are next seen

        self._build()
        session.evaluation_ready.connect(self._on_evaluation)
        session.data_changed.connect(self._on_reset)
        session.spec_changed.connect(self._on_reset)
        session.history_reset.connect(self._on_reset)
        if session.evaluation is not None:
            self._on_evaluation(session.evaluation)
        else:
            self._on_reset()

    # -- layout ------------------------------------------------------------------------------------
    def _build(self) -> None:
        self._accuracy = QLabel()
        self._accuracy.setObjectName("testAccuracy")
        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 2.2)
        big.setBold(True)
        self._accuracy.setFont(big)
        self._accuracy.setToolTip("Share of the test images the model classifies correctly")
        self._details = QLabel()
        self._details.setObjectName("testDetails")
        self._details.setTextFormat(Qt.TextFormat.PlainText)
        self._details.setWordWrap(True)

        export = QToolButton()
        export.setText("Export")
        export.setToolTip("Save the confusion matrix as CSV or this view as a PNG image")
        export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(export)
        menu.addAction("Confusion matrix as CSV...", self._ask_export_csv)
        menu.addAction("View as PNG...", self._ask_export_png)
        export.setMenu(menu)
        self._export = export

        header = QHBoxLayout()
        header.addWidget(self._accuracy)
        header.addSpacing(12)
        header.addWidget(self._details, 1)
        header.addWidget(export, 0, Qt.AlignmentFlag.AlignTop)

        self.confusion_view = ConfusionView()
        self.confusion_view.cell_clicked.connect(self.click_cell)
        confusion_title = QLabel("Confusion matrix: click a cell to see its images")
        confusion_title.setObjectName("sectionTitle")

        self._bars_plot = pg.PlotWidget()
        self._bars_plot.setObjectName("perClassAccuracy")
        self._bars_plot.setBackground(self.palette().base().color())
        self._bars_plot.setMouseEnabled(x=False, y=False)
        self._bars_plot.setMenuEnabled(False)
        self._bars_plot.hideButtons()
        self._bars_plot.setTitle("Per-class accuracy", size="9pt")
        self._bars_plot.setMinimumHeight(110)
        left_axis = self._bars_plot.getAxis("left")
        left_axis.setTicks([[(0.0, "0%"), (0.5, "50%"), (1.0, "100%")]])
        left_axis.setStyle(hideOverlappingLabels=False)  # the 100% label sits at the top edge
        self._bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=pg.mkBrush(33, 102, 172))
        self._bars_plot.addItem(self._bars)
        self._mean_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((214, 47, 39), width=1, style=Qt.PenStyle.DashLine))
        self._bars_plot.addItem(self._mean_line)

        left = QSplitter(Qt.Orientation.Vertical)
        top_box = QWidget()
        top_layout = QVBoxLayout(top_box)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(confusion_title)
        top_layout.addWidget(self.confusion_view, 1)
        left.addWidget(top_box)
        left.addWidget(self._bars_plot)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 1)

        self.predictions_gallery = ImageGallery("No test images loaded")
        self.mistakes_gallery = ImageGallery("No mistakes: every test image is classified correctly")
        self.cell_gallery = ImageGallery("Click a cell of the confusion matrix to see its images")
        self._cell_title = QLabel()
        self._cell_title.setObjectName("cellTitle")
        cell_page = QWidget()
        cell_layout = QVBoxLayout(cell_page)
        cell_layout.setContentsMargins(4, 4, 4, 4)
        cell_layout.addWidget(self._cell_title)
        cell_layout.addWidget(self.cell_gallery, 1)
        self.tabs = QTabWidget()
        # short titles, always whole: a cut title ("Most confident mist...") reads as a bug; arrows if the room
        # is ever too short for all three (the body below also stacks the two halves when the panel is narrow)
        self.tabs.setElideMode(Qt.TextElideMode.ElideNone)
        self.tabs.setUsesScrollButtons(True)
        for page, title, tip in (
                (self.predictions_gallery, "Predictions", "The test images in order, labelled with the model's "
                                                          "prediction (true class)"),
                (self.mistakes_gallery, "Mistakes", "The wrong predictions the model was surest of, with its "
                                                    "confidence"),
                (cell_page, "Cell", "The test images of the confusion-matrix cell you clicked")):
            self.tabs.setTabToolTip(self.tabs.addTab(page, title), tip)
        self.tabs.currentChanged.connect(self._refresh_current_tab)
        for gallery in (self.predictions_gallery, self.mistakes_gallery, self.cell_gallery):
            gallery.image_clicked.connect(self._on_image_clicked)

        body = self._body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(self.tabs)
        body.setStretchFactor(0, 1)
        body.setStretchFactor(1, 1)
        body.setSizes([500, 500])  # half and half: the galleries need the width as much as the matrix

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.addLayout(header)
        content_layout.addWidget(body, 1)

        self._empty = QLabel(EMPTY_TEXT + ".\n\nThe test accuracy, the confusion matrix and the model's "
                             "mistakes appear here after each epoch.")
        self._empty.setObjectName("evaluationEmpty")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._empty.setEnabled(False)
        self._stack = QStackedWidget()
        self._stack.addWidget(self._empty)
        self._stack.addWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self._stack)

    # -- session -----------------------------------------------------------------------------------
    def _on_evaluation(self, evaluation: Evaluation) -> None:
        if evaluation.split != "test":
            return  # the galleries show test images; a validation evaluation has other indices
        self._evaluation = evaluation
        names = self._names()
        pct = f"{100.0 * evaluation.accuracy:.2f}%"
        self._accuracy.setText(pct)
        n = int(evaluation.labels.size)
        lines = [f"test accuracy on {n:,} images · loss {evaluation.loss:.4f} · weights from step "
                 f"{evaluation.step:,}"]
        pairs = most_confused_pairs(evaluation.confusion, 3)
        if pairs:
            lines.append("Most confused: " + ", ".join(f"{names[t]} as {names[p]} ({c})" for t, p, c in pairs))
        self._details.setText("\n".join(lines))
        self._export.setEnabled(True)
        self.confusion_view.set_matrix(evaluation.confusion, names)
        self._update_bars(evaluation, names)
        self._stack.setCurrentIndex(1)
        self._stale_tabs = {0, 1, 2}
        if self._cell is not None and self._cell[0] < len(names) and self._cell[1] < len(names):
            self.confusion_view.set_selected(self._cell)
        else:
            self._cell = None
        self._refresh_current_tab()

    def _on_reset(self, *_args) -> None:
        self._evaluation = None
        self._cell = None
        self._accuracy.setText("")
        self._details.setText("")
        self._export.setEnabled(False)
        self.confusion_view.set_matrix(None)
        self._bars.setOpts(x=[], height=[])
        for gallery in (self.predictions_gallery, self.mistakes_gallery, self.cell_gallery):
            gallery.clear()
        self.cell_gallery.clear("Click a cell of the confusion matrix to see its images")
        self._cell_title.setText("")
        self._stale_tabs = set()
        self._stack.setCurrentIndex(0)

    def _names(self) -> tuple[str, ...]:
        names = tuple(self.session.class_names)
        n = 0 if self._evaluation is None else self._evaluation.confusion.shape[0]
        return names if len(names) == n else tuple(str(i) for i in range(n))

    def _update_bars(self, evaluation: Evaluation, names: tuple[str, ...]) -> None:
        acc = np.asarray(evaluation.per_class_accuracy, dtype=np.float64)
        x = np.arange(acc.size)
        self._bars.setOpts(x=x, height=acc, width=0.7)
        self._mean_line.setPos(evaluation.accuracy)
        self._bars_plot.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(names)]])
        self._bars_plot.setXRange(-0.6, acc.size - 0.4, padding=0)
        self._bars_plot.setYRange(0, 1.06, padding=0)  # keeps the 100% tick in view
        totals = evaluation.confusion.sum(axis=1)
        rows = [f"{names[i]}: {100 * a:.1f}% of {int(totals[i]):,}" for i, a in enumerate(acc)]
        self._bars_plot.setToolTip("Per-class test accuracy (dashed: overall)\n" + "\n".join(rows))

    def _test_images(self) -> np.ndarray | None:
        data = self.session.data
        ev = self._evaluation
        if data is None or ev is None or len(data.test) != ev.labels.size:
            return None
        return data.test.raw

    # -- galleries ---------------------------------------------------------------------------------
    def _refresh_current_tab(self, *_args) -> None:
        """Fill the visible gallery if it is out of date (hidden galleries wait, they cost pixmaps)."""
        tab = self.tabs.currentIndex()
        if tab not in self._stale_tabs or not on_screen(self):
            return
        self._stale_tabs.discard(tab)
        self._fill_tab(tab)

    def _fill_tab(self, tab: int) -> None:
        ev, raw, names = self._evaluation, self._test_images(), self._names()
        gallery = (self.predictions_gallery, self.mistakes_gallery, self.cell_gallery)[tab]
        if ev is None:
            return
        if raw is None:
            gallery.clear("The test images of this evaluation are not loaded")
            return
        if tab == 0:
            gallery.show_images(raw, np.arange(ev.labels.size), ev.labels, ev.predicted, names,
                                note="Test images in order")
        elif tab == 1:
            wrong = most_confident_mistakes(ev.probabilities, ev.labels, k=ev.labels.size)
            gallery.show_images(raw, wrong, ev.labels, ev.predicted, names, ev.probabilities,
                                note="Mistakes, surest first")
        elif self._cell is None:
            gallery.clear("Click a cell of the confusion matrix to see its images")
        else:
            t, p = self._cell
            idx = cell_examples(ev.predicted, ev.labels, t, p, ev.probabilities)
            gallery.show_images(raw, idx, ev.labels, ev.predicted, names, ev.probabilities,
                                note="Surest first")
            if idx.size == 0:
                gallery.clear(f"No test image of class {names[t]} was predicted as {names[p]}")

    def click_cell(self, true: int, predicted: int) -> None:
        """Open the gallery of the test images in confusion cell (true, predicted)."""
        if self._evaluation is None:
            return
        names = self._names()
        self._cell = (int(true), int(predicted))
        self.confusion_view.set_selected(self._cell)
        count = int(self._evaluation.confusion[true, predicted])
        noun = "image" if count == 1 else "images"
        self._cell_title.setText(f"true {names[true]} predicted as {names[predicted]} ({count:,} {noun})")
        self._stale_tabs.discard(2)
        self._fill_tab(2)  # now, even when hidden: the user (or a test) asked for exactly these
        self.tabs.setCurrentIndex(2)

    def _on_image_clicked(self, index: int) -> None:
        self.session.select_test_image(index)
        ev, names = self._evaluation, self._names()
        text = f"Test image #{index} is now the input of the feature maps"
        if ev is not None and 0 <= index < ev.labels.size:
            text += f" (true {names[int(ev.labels[index])]}, predicted {names[int(ev.predicted[index])]})"
        self.session.message.emit("info", text)

    STACK_BELOW_WIDTH = 620  # narrower than this, the galleries go under the matrix instead of beside it

    def resizeEvent(self, e) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(e)
        stacked = e.size().width() < self.STACK_BELOW_WIDTH
        orientation = Qt.Orientation.Vertical if stacked else Qt.Orientation.Horizontal
        if self._body.orientation() != orientation:
            self._body.setOrientation(orientation)

    def showEvent(self, e) -> None:
        super().showEvent(e)
        self._refresh_current_tab()

    # -- for tests and the main window -------------------------------------------------------------
    def accuracy_text(self) -> str:
        """The big test-accuracy text ("97.30%"), "" before an evaluation."""
        return self._accuracy.text()

    def confusion(self) -> np.ndarray | None:
        """The confusion matrix shown, or None."""
        return self.confusion_view.matrix()

    def gallery_indices(self) -> list[int]:
        """The test indices shown in the confusion-cell gallery."""
        return self.cell_gallery.indices()

    def export_confusion_csv(self, path: str) -> None:
        """Write the confusion matrix as CSV: a header of class names, then one row of counts per true class."""
        if self._evaluation is None:
            raise CnnvizError("there is no evaluation to export yet; train at least one epoch")
        names, m = self._names(), self._evaluation.confusion
        try:
            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["true \\ predicted", *names])
                for t, name in enumerate(names):
                    writer.writerow([name, *(int(v) for v in m[t])])
        except OSError as exc:
            raise CnnvizError(f"could not write {path}: {exc.strerror or exc}") from None

    def export_png(self, path: str) -> None:
        """Save an image of the whole view."""
        if not self.grab().save(path):
            raise CnnvizError(f"could not save {path} as an image; check the folder and the file extension")

    def _ask_export_csv(self) -> None:
        self._ask_export("Save the confusion matrix", "confusion.csv", "CSV files (*.csv)", self.export_confusion_csv)

    def _ask_export_png(self) -> None:
        self._ask_export("Save the evaluation view", "evaluation.png", "PNG images (*.png)", self.export_png)

    def _ask_export(self, title: str, name: str, filter_: str, write) -> None:
        path, _ = QFileDialog.getSaveFileName(self, title, name, filter_)
        if not path:
            return
        try:
            write(path)
        except CnnvizError as exc:
            self.session.message.emit("error", str(exc))
        else:
            self.session.message.emit("info", f"Saved {path}")
