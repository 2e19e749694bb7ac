""""What would make it a 3?": the smallest change of the input that makes the model answer a chosen class.

The input is the drawing or the feature maps' input (a test image). For it, every other class's counterfactual
(:mod:`cnnviz.inspect.counterfactual`, all classes in one batch) is worked out in the background on a copy of
the weights on show; the chosen class's changed image and its difference from the input are shown with the
size of the change (L2, in pixel units), and the robustness row lists that size for every class: a small
number is a class the input is close to. "Send to canvas" puts the changed image on the drawing canvas.
"""
from __future__ import annotations

import copy

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from cnnviz.gui.visibility import on_screen
from cnnviz.gui.background_job import BackgroundJob
from cnnviz.gui.throttle import Throttle
from cnnviz.gui.widgets.colormaps import color_at, diverging_lut, ink_for
from cnnviz.inspect.counterfactual import Counterfactual, counterfactuals

SOURCES = ("Feature-map input", "Drawing")
_SCALE = 5  # screen pixels per image pixel (140 px for 28 x 28)
_DIFF_LEVELS = (-1.0, 1.0)


def _gray_pixmap(pixels: np.ndarray, scale: int = _SCALE) -> QPixmap:
    a = np.ascontiguousarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8))
    h, w = a.shape
    image = QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(image.scaled(w * scale, h * scale, Qt.AspectRatioMode.IgnoreAspectRatio,
                                          Qt.TransformationMode.FastTransformation))


def _diff_pixmap(diff: np.ndarray, scale: int = _SCALE) -> QPixmap:
    """Blue where ink was taken away, red where it was added, white unchanged (one fixed scale: +-1)."""
    lut = diverging_lut()
    idx = np.clip(((np.clip(diff, -1, 1) + 1) / 2 * (len(lut) - 1)).round().astype(int), 0, len(lut) - 1)
    rgb = np.ascontiguousarray(lut[idx][..., :3].astype(np.uint8))
    h, w = diff.shape
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image.scaled(w * scale, h * scale, Qt.AspectRatioMode.IgnoreAspectRatio,
                                          Qt.TransformationMode.FastTransformation))


class CounterfactualView(QWidget):
    """The changed image for a target class, its difference, its size, and the size for every class.

    Signals
    -------
    send_to_canvas(numpy.ndarray)
        The changed image (the model's H x W in [0, 1]) when "Send to canvas" is pressed.
    """

    send_to_canvas = Signal(object)

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("counterfactualView")
        self.session = session
        self.drawing = lambda: None  # set by the window: the draw panel's image (H x W) or None
        self._pixels: np.ndarray | None = None
        self._results: dict[int, Counterfactual] = {}
        self._prediction: int | None = None
        self._key = None  # (input bytes, step) of the results on show
        self._dirty = True
        self.runner = BackgroundJob()  # no parent: see BackgroundJob
        self.runner.done.connect(self._on_done)
        self.runner.failed.connect(self._on_failed)
        self._throttle = Throttle(250, self._update, self)
        self._build()
        session.weights_changed.connect(self._schedule)
        session.input_changed.connect(self._schedule)
        session.spec_changed.connect(self._on_model_changed)
        session.data_changed.connect(self._on_model_changed)
        self._on_model_changed(None)

    def _build(self) -> None:
        self.source_combo = QComboBox()
        self.source_combo.setObjectName("counterfactualSourceCombo")
        self.source_combo.addItems(SOURCES)
        self.source_combo.setToolTip("Explain the image the feature maps show (a test image, or your drawing "
                                     "when it is shown there), or the drawing on the canvas")
        self.source_combo.currentIndexChanged.connect(self._schedule)
        self.target_combo = QComboBox()
        self.target_combo.setObjectName("counterfactualTargetCombo")
        self.target_combo.setToolTip("The class the changed image should be read as")
        self.target_combo.currentIndexChanged.connect(self._show_target)
        self.send_button = QPushButton("Send to canvas")
        self.send_button.setObjectName("sendToCanvasButton")
        self.send_button.setToolTip("Put the changed image on the drawing canvas, to draw over it or watch the "
                                    "network read it")
        self.send_button.setEnabled(False)
        self.send_button.clicked.connect(self._send)
        top = QHBoxLayout()
        top.addWidget(QLabel("Input"))
        top.addWidget(self.source_combo)
        top.addSpacing(12)
        top.addWidget(QLabel("Make it a"))
        top.addWidget(self.target_combo)
        top.addWidget(self.send_button)
        top.addStretch(1)
        grid = QGridLayout()
        self.images: dict[str, QLabel] = {}
        tips = {"input": "The input as the network sees it",
                "changed": "The smallest change found that makes the network answer the chosen class "
                           "(pixels kept in [0, 1])",
                "difference": "Changed minus input: red where ink was added, blue where it was taken away"}
        for col, (name, title) in enumerate((("input", "Input"), ("changed", "Changed"),
                                             ("difference", "Difference"))):
            caption = QLabel(title)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            image = QLabel()
            image.setObjectName(f"counterfactual{title}Image")
            image.setFixedSize(28 * _SCALE + 2, 28 * _SCALE + 2)
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            image.setStyleSheet("QLabel { background: black; }")
            image.setToolTip(tips[name])
            grid.addWidget(caption, 0, col)
            grid.addWidget(image, 1, col)
            self.images[name] = image
        grid.setColumnStretch(3, 1)
        self.summary = QLabel()
        self.summary.setObjectName("counterfactualSummary")
        self.summary.setWordWrap(True)
        bold = self.summary.font()
        bold.setBold(True)
        self.summary.setFont(bold)
        self.robustness = QTableWidget(1, 0)
        self.robustness.setObjectName("robustnessTable")
        self.robustness.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.robustness.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.robustness.setVerticalHeaderLabels(["L2"])
        self.robustness.setToolTip("Robustness: the size (L2, pixel units) of the smallest change that makes the "
                                   "network answer each class. Small: the input is close to that class. Click a "
                                   "class to show its change.")
        self.robustness.cellClicked.connect(self._on_cell_clicked)
        self.robustness.verticalHeader().setDefaultSectionSize(28)
        self.robustness.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.robustness.horizontalHeader().setMinimumSectionSize(34)
        self.robustness.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.robustness.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.robustness.setFixedHeight(self.robustness.horizontalHeader().sizeHint().height() + 28
                                       + 2 * self.robustness.frameWidth()
                                       + self.robustness.horizontalScrollBar().sizeHint().height())
        caption = QLabel("Robustness: size of the smallest change to each class")
        caption.setToolTip(self.robustness.toolTip())
        self.status = QLabel()
        self.status.setObjectName("counterfactualStatus")
        self.status.setWordWrap(True)
        self.status.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(grid)
        layout.addWidget(self.summary)
        layout.addWidget(caption)
        layout.addWidget(self.robustness)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # -- automation surface ----------------------------------------------------------------------------
    def set_source(self, name: str) -> None:
        self.source_combo.setCurrentIndex(SOURCES.index(name))

    def _on_cell_clicked(self, _row: int, col: int) -> None:
        self.set_target(col)

    def set_target(self, target: int) -> None:
        self.target_combo.setCurrentIndex(int(target))

    def target(self) -> int:
        return self.target_combo.currentIndex()

    def result(self, target: int | None = None) -> Counterfactual | None:
        """The counterfactual on show for ``target`` (default the chosen one); None if none (yet)."""
        return self._results.get(self.target() if target is None else int(target))

    def robustness_row(self) -> dict[int, float]:
        """Class -> the L2 of its counterfactual (classes without a successful one left out)."""
        return {t: r.l2 for t, r in self._results.items() if r.success}

    def input_pixels(self) -> np.ndarray | None:
        return None if self._pixels is None else self._pixels.copy()

    def drawing_changed(self) -> None:
        """The drawing changed (the window calls this): worked out again when it is the input."""
        if self.source_combo.currentText() == "Drawing":
            self._schedule()

    def refresh(self) -> None:
        """Work out the counterfactuals of the current input for the weights on show (in the background)."""
        self._update()

    # -- work ------------------------------------------------------------------------------------------
    def _on_model_changed(self, _value) -> None:
        names = self.session.class_names
        current = self.target_combo.currentIndex()
        self.target_combo.blockSignals(True)
        self.target_combo.clear()
        self.target_combo.addItems(list(names))
        self.target_combo.setCurrentIndex(current if 0 <= current < len(names) else min(3, len(names) - 1))
        self.target_combo.blockSignals(False)
        self.robustness.setColumnCount(len(names))
        self.robustness.setHorizontalHeaderLabels(list(names))
        self._results, self._key = {}, None
        self._schedule()

    def _schedule(self, *_args) -> None:
        if not on_screen(self):
            self._dirty = True
            return
        self._throttle.request()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._dirty:
            self._dirty = False
            self._throttle.request()

    def _current_input(self) -> np.ndarray | None:
        if self.source_combo.currentText() == "Drawing":
            return self.drawing()
        chosen = self.session.selected_input
        return None if chosen is None else chosen.pixels

    def _update(self) -> None:
        if not on_screen(self):  # hidden since it was asked for (a tab behind another): catch up when shown
            self._dirty = True
            return
        pixels = self._current_input()
        if pixels is None or tuple(pixels.shape) != self.session.input_size:
            self._pixels, self._results, self._key = None, {}, None
            self._render()
            self.status.setText("Draw a digit first." if self.source_combo.currentText() == "Drawing"
                                else "Choose an input (a test image) in the feature maps or the evaluation.")
            return
        pixels = np.asarray(pixels, np.float32)
        key = (pixels.tobytes(), self.session.weights_step, id(self.session.model))
        if key == self._key:
            return
        self._pixels = pixels
        self.images["input"].setPixmap(_gray_pixmap(pixels))
        model = copy.deepcopy(self.session.model)
        normalization = self.session.inference.normalization
        classes = len(self.session.class_names)
        step = self.session.weights_step

        def work(progress, cancel):
            probs = _probabilities(model, normalization, pixels)
            best = int(np.argmax(probs))
            results = counterfactuals(model, normalization, pixels, [t for t in range(classes) if t != best])
            return key, best, {r.target: r for r in results}

        self.status.setText(f"Looking for the smallest changes (step {step:,})…")
        self.runner.submit(work, restart=True)

    def _on_done(self, result) -> None:
        key, best, results = result
        if key[0] != (None if self._pixels is None else self._pixels.tobytes()):
            return  # the input has changed since: its own job follows
        self._key, self._prediction, self._results = key, best, results
        names = self.session.class_names
        found = sum(r.success for r in results.values())
        self.status.setText(f"Step {key[1]:,}: the network reads the input as {names[best]}; changes found for "
                            f"{found} of {len(results)} other classes.")
        self._render()

    def _on_failed(self, text: str) -> None:
        self.status.setText(text)

    def _render(self) -> None:
        self._show_target()
        lut = diverging_lut()
        sizes = [r.l2 for r in self._results.values() if r.success]
        top = max(sizes) if sizes else 1.0
        for col in range(self.robustness.columnCount()):
            r = self._results.get(col)
            if col == self._prediction:
                item = QTableWidgetItem("·")
                item.setToolTip("The class the network answers now")
            elif r is None:
                item = QTableWidgetItem("")
            elif not r.success:
                item = QTableWidgetItem("–")
                item.setToolTip("No change found within the search's steps")
            else:
                item = QTableWidgetItem(f"{r.l2:.2f}")
                rgb = color_at(lut, -(1 - r.l2 / top) * 0.8, _DIFF_LEVELS)  # blue: close to that class
                item.setBackground(QColor(*rgb))
                item.setForeground(QColor(*ink_for(rgb)))
                item.setToolTip(f"{r.l2:.3f}: the smallest change found that makes the network answer "
                                f"{self.session.class_names[col]} ({r.probability * 100:.0f}%)")
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.robustness.setItem(0, col, item)

    def _show_target(self) -> None:
        r = self.result()
        names = self.session.class_names
        if self._pixels is None:
            for label in self.images.values():
                label.clear()
        self.send_button.setEnabled(r is not None and r.success)
        if r is None:
            self.images["changed"].clear()
            self.images["difference"].clear()
            t = self.target()
            self.summary.setText(f"It is already a {names[t]}." if t == self._prediction and self._results
                                 else "")
            return
        self.images["changed"].setPixmap(_gray_pixmap(r.image))
        self.images["difference"].setPixmap(_diff_pixmap(r.difference))
        if r.success:
            self.summary.setText(f"Changed by L2 {r.l2:.2f} (pixel units): the network answers "
                                 f"{names[r.target]} ({r.probability * 100:.0f}%).")
        else:
            self.summary.setText(f"No change found that makes it a {names[r.target]} (the last try answers "
                                 f"{names[r.prediction]}).")

    def _send(self) -> None:
        r = self.result()
        if r is not None and r.success:
            self.send_to_canvas.emit(r.image.copy())


def _probabilities(model, normalization, pixels: np.ndarray) -> np.ndarray:
    from cnnviz.inspect.activations import predict_proba

    return np.asarray(predict_proba(model, normalization.apply(pixels[None]))).reshape(-1)
