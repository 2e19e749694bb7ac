"""Draw a digit and watch the network read it: the image it sees (28 x 28 for MNIST; always the model's
input size), live class probabilities and where it looks (saliency / Grad-CAM / occlusion).

Every update draws only the new pen segments (``StrokeRasterizer``), then one ``to_mnist`` and one forward
pass (a few ms), so predictions
follow the pen while drawing; weight updates from a running training are coalesced to <= 10 Hz. Occlusion (36
forward passes) is worked out off the GUI thread on a copy of the weights, so it never delays the answer: the
map follows a moment later (the newest drawing's), the previous one staying on show meanwhile.
"""
from __future__ import annotations

import copy

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeySequence, QPainter, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from cnnviz.errors import CnnvizError
from cnnviz.gui.background_job import BackgroundJob
from cnnviz.gui.session import InputImage
from cnnviz.gui.widgets.colormaps import sequential_lut
from cnnviz.gui.throttle import Throttle
from cnnviz.gui.widgets.draw_canvas import CANVAS_PIXELS, DEFAULT_STROKE_WIDTH, DrawCanvas
from cnnviz.gui.widgets.nearest_digits import NearestDigits
from cnnviz.inspect.canvas import StrokeRasterizer, digit_box, to_mnist
from cnnviz.inspect.occlusion import DRAW_STRIDE, DRAW_WINDOW, occlusion
from cnnviz.inspect.saliency import grad_cam, saliency

OVERLAYS = ("None", "Saliency", "Grad-CAM", "Occlusion")
OCCLUSION_INTERVAL_MS = 120
_PREVIEW_SIDE = 168  # 6 screen pixels per MNIST pixel
_HEAT_LUT = sequential_lut("inferno")[:, :3].astype(np.float32)
_UNTRAINED = "The model is untrained: predictions are random until you train"
_COLOUR = ("This model was trained on colour images ({data}). The canvas draws in gray: your drawing is copied "
           "into the red, green and blue channels, which the model never saw, so its answers mean little.")


def _blend_heatmap(pixels: np.ndarray, heat: np.ndarray | None) -> np.ndarray:
    """The gray H x W image as RGB uint8, with ``heat`` (0..1, same size) laid over it in inferno colours."""
    gray = np.repeat((np.clip(pixels, 0, 1) * 255).astype(np.float32)[..., None], 3, axis=2)
    if heat is None:
        return gray.astype(np.uint8)
    h = np.clip(np.nan_to_num(heat), 0, 1)
    colour = _HEAT_LUT[(h * 255).astype(np.uint8)]
    alpha = (0.25 + 0.6 * h)[..., None]  # the whole map tinted a little, hot spots strongly
    return (gray * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)


class ProbabilityBars(QWidget):
    """One horizontal bar per class with its name and percentage; the most likely class highlighted."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("probabilityBars")
        self.setToolTip("How sure the network is of each class for your drawing (the bars sum to 100%).")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self._names: tuple[str, ...] = ()
        self._probs: list[float] = []

    def set_data(self, names: tuple[str, ...], probs: list[float]) -> None:
        self._names, self._probs = tuple(names), list(probs)
        self.updateGeometry()
        self.update()

    def names(self) -> tuple[str, ...]:
        return self._names

    def values(self) -> list[float]:
        return list(self._probs)

    def _row_height(self) -> int:
        return self.fontMetrics().height() + 6

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(240, max(1, len(self._names)) * self._row_height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(160, max(1, len(self._names)) * self._row_height())

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fm = self.fontMetrics()
        names = self._names
        if not names:
            return
        row = min(self._row_height() * 1.6, self.height() / len(names))
        name_w = max(fm.horizontalAdvance(n) for n in names) + 10
        pct_w = fm.horizontalAdvance("100.0%") + 8
        bar_w = max(10.0, self.width() - name_w - pct_w)
        top = int(np.argmax(self._probs)) if self._probs else -1
        text_col = self.palette().windowText().color()
        track = QColor(text_col)
        track.setAlpha(28)
        for i, name in enumerate(names):
            y = i * row
            prob = self._probs[i] if i < len(self._probs) else None
            font = QFont(self.font())
            font.setBold(i == top)
            p.setFont(font)
            p.setPen(text_col)
            p.drawText(QRectF(0, y, name_w - 6, row), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       name)
            bar = QRectF(name_w, y + row * 0.18, bar_w, row * 0.64)
            p.fillRect(bar, track)
            if prob is not None:
                colour = QColor(255, 140, 40) if i == top else QColor(70, 130, 200)
                p.fillRect(QRectF(bar.x(), bar.y(), bar_w * min(max(prob, 0.0), 1.0), bar.height()), colour)
                label = f"{prob * 100:.1f}%"
            else:
                label = "–"
            p.drawText(QRectF(name_w + bar_w + 6, y, pct_w, row),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, label)
        p.end()


class DrawPanel(QWidget):
    """The drawing canvas with the network's live reading of it.

    Signals
    -------
    prediction_changed(list)
        The class probabilities after each new prediction; an empty list when the canvas is cleared.
    drawing_embedded(object)
        The drawing's embedding (D,) after each new prediction (the projector places it); None when cleared.
    """

    prediction_changed = Signal(list)
    overlay_changed = Signal()  # an occlusion map worked out in the background is on show
    drawing_embedded = Signal(object)

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("drawPanel")
        self._session = session
        self._probs: list[float] = []
        self._pixels: np.ndarray | None = None
        self._heat: np.ndarray | None = None
        self._rasterizer = StrokeRasterizer(CANVAS_PIXELS)  # the drawing's raster, grown stroke by stroke
        self._dirty = False
        self._weights_throttle = Throttle(100, self._refresh, self)  # training sends weights at ~5 Hz
        # new weights are answered one event-loop turn later, not inside the code that loaded them (a seek, a
        # snapshot): the window gets a breath between that and the prediction (Play's frames were one block)
        self._weights_turn = QTimer(self)
        self._weights_turn.setSingleShot(True)
        self._weights_turn.setInterval(0)
        self._weights_turn.timeout.connect(self._weights_throttle.request)
        self._weights_version = 0  # counts weight changes: the occlusion worker's copy is renewed on one
        self._occlusion_model = None  # (version, model) the background occlusion runs on
        self.occlusion_runner = BackgroundJob()  # no parent: see BackgroundJob
        self.occlusion_runner.done.connect(self._on_occlusion)
        self._occlusion_wanted = None  # (pixels, input, target) of the newest drawing
        # at most ~8 maps a second while the pen moves, so the map's work leaves the answer's CPU alone
        self._occlusion_throttle = Throttle(OCCLUSION_INTERVAL_MS, self._submit_occlusion, self)
        self._build()
        self.canvas.strokes_changed.connect(self._on_strokes_changed)
        session.weights_changed.connect(self._on_weights_changed)
        session.spec_changed.connect(self._on_model_or_data_changed)
        session.data_changed.connect(self._on_model_or_data_changed)
        self._refresh()

    # -- layout ----------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.canvas = DrawCanvas(self)
        clear = QPushButton("Clear")
        clear.setObjectName("clearCanvasButton")
        clear.setToolTip("Erase the drawing (Delete or Ctrl+L)")
        clear.clicked.connect(self.canvas.clear)
        undo = QPushButton("Undo")
        undo.setObjectName("undoStrokeButton")
        undo.setToolTip("Remove the last stroke (Ctrl+Z)")
        undo.clicked.connect(self.canvas.undo)
        for keys, slot in ((QKeySequence.StandardKey.Delete, self.canvas.clear), ("Ctrl+L", self.canvas.clear),
                           (QKeySequence.StandardKey.Undo, self.canvas.undo)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)  # no clash with other views
            shortcut.activated.connect(slot)
        self.width_slider = QSlider(Qt.Orientation.Horizontal)
        self.width_slider.setObjectName("strokeWidthSlider")
        self.width_slider.setRange(6, 40)
        self.width_slider.setValue(int(DEFAULT_STROKE_WIDTH))
        self.width_slider.setToolTip("Pen thickness (on a 280-pixel canvas). About 18 looks like MNIST strokes.")
        self.width_slider.valueChanged.connect(self.canvas.set_stroke_width)
        guide = QCheckBox("Guide")
        guide.setChecked(True)
        guide.setToolTip("Show the 20 x 20 box and centre cross where MNIST digits sit")
        guide.toggled.connect(self.canvas.set_show_guide)
        self.feature_maps_check = QCheckBox("Show in feature maps")
        self.feature_maps_check.setObjectName("showInFeatureMapsCheck")
        self.feature_maps_check.setToolTip("Make your drawing the input of the feature-map view as you draw")
        self.feature_maps_check.toggled.connect(self._on_feature_maps_toggled)
        tools = QHBoxLayout()
        for widget in (clear, undo):
            tools.addWidget(widget)
        tools.addStretch(1)
        tools.addWidget(guide)
        width_label = QLabel(f"{int(DEFAULT_STROKE_WIDTH)} px")
        width_label.setMinimumWidth(width_label.fontMetrics().horizontalAdvance("00 px"))
        self.width_slider.valueChanged.connect(lambda v: width_label.setText(f"{v} px"))
        pen_row = QHBoxLayout()
        pen_row.addWidget(QLabel("Pen width"))
        pen_row.addWidget(self.width_slider, 1)
        pen_row.addWidget(width_label)
        left = QVBoxLayout()
        left.addLayout(tools)
        left.addWidget(self.canvas, 1)
        left.addLayout(pen_row)
        tip = QLabel("Tip: the network only knows MNIST-style digits: one digit, drawn big, with a steady "
                     "stroke. Watch the small image to see what it is given.")
        tip.setWordWrap(True)
        tip.setEnabled(False)  # the palette's muted text colour
        left.addWidget(tip)
        left.addWidget(self.feature_maps_check)
        left.addStretch(1)

        self.seen_label = seen = QLabel()
        seen.setObjectName("seenLabel")
        self._preview_view = pg.GraphicsView(background=QColor(0, 0, 0))
        self._preview_view.setObjectName("mnistPreview")
        self._preview_view.setFixedSize(_PREVIEW_SIDE, _PREVIEW_SIDE)
        box = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False, defaultPadding=0)
        self._preview_view.setCentralItem(box)
        self._preview_box = box
        self._preview = pg.ImageItem(axisOrder="row-major")
        box.addItem(self._preview)
        self._shown_size: tuple[int, int] | None = None
        self._show_input_size()
        self.overlay_combo = QComboBox()
        self.overlay_combo.setObjectName("overlayCombo")
        self.overlay_combo.addItems(OVERLAYS)
        self.overlay_combo.setToolTip(
            "Colour the pixels the prediction depends on:\n"
            "Saliency: how much a small change of each pixel moves the top class's score.\n"
            "Grad-CAM: which regions of the last convolution layer speak for the top class.\n"
            f"Occlusion: how much the top class's probability drops when a {DRAW_WINDOW} x {DRAW_WINDOW} square "
            "there is blanked out (what the network really uses, not a slope).")
        self.overlay_combo.currentIndexChanged.connect(self._refresh)
        overlay_row = QHBoxLayout()
        overlay_row.addWidget(QLabel("Overlay"))
        overlay_row.addWidget(self.overlay_combo, 1)

        self.headline = QLabel()
        self.headline.setObjectName("predictionLabel")
        font = QFont(self.headline.font())
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.headline.setFont(font)
        self.headline.setWordWrap(True)  # "Prediction: Ankle boot (99.9%)" takes two lines, never a cut one
        self.untrained_note = QLabel(_UNTRAINED)
        self.untrained_note.setObjectName("untrainedNote")
        self.untrained_note.setWordWrap(True)
        self.untrained_note.setStyleSheet(
            "QLabel { background: #5a4300; color: #ffe08a; border-radius: 4px; padding: 4px; }")
        self.colour_note = QLabel()
        self.colour_note.setObjectName("colourNote")
        self.colour_note.setWordWrap(True)
        self.colour_note.setStyleSheet(
            "QLabel { background: #213a5c; color: #cfe3ff; border-radius: 4px; padding: 4px; }")
        self.colour_note.hide()
        self.error_note = QLabel()
        self.error_note.setObjectName("predictionError")
        self.error_note.setWordWrap(True)
        self.error_note.setStyleSheet("QLabel { color: #e05050; }")
        self.error_note.hide()
        self.bars = ProbabilityBars()

        right = QVBoxLayout()
        right.addWidget(seen)
        right.addWidget(self._preview_view, 0, Qt.AlignmentFlag.AlignHCenter)
        right.addLayout(overlay_row)
        right.addSpacing(6)
        right.addWidget(self.headline)
        right.addWidget(self.untrained_note)
        right.addWidget(self.colour_note)
        right.addWidget(self.error_note)
        right.addWidget(self.bars, 1)
        side = QWidget()
        side.setLayout(right)
        side.setFixedWidth(_PREVIEW_SIDE + 64)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addWidget(side)
        self.nearest = NearestDigits(self._session)
        layout = QVBoxLayout(self)
        layout.addLayout(columns, 1)
        layout.addWidget(self.nearest)

    # -- automation surface ----------------------------------------------------------------------------
    def probabilities(self) -> list[float]:
        """The current class probabilities; an empty list when nothing is drawn."""
        if self._dirty:
            self._refresh()
        return list(self._probs)

    def mnist_input(self) -> np.ndarray | None:
        """The H x W [0, 1] image the network is shown (the model's input size; None when nothing is drawn)."""
        return None if self._pixels is None else self._pixels.copy()

    def overlay(self) -> np.ndarray | None:
        """The saliency / Grad-CAM / occlusion map (the input's H x W, 0..1) laid over the preview, or None.

        Occlusion comes from the background: the map on show (the previous drawing's until ``overlay_changed``)."""
        if self._dirty:
            self._refresh()
        return None if self._heat is None else self._heat.copy()

    def set_overlay(self, name: str) -> None:
        """Choose the overlay: one of ``OVERLAYS`` ("None", "Saliency", "Grad-CAM", "Occlusion"; any case)."""
        names = [o.lower() for o in OVERLAYS]
        if name.lower() not in names:
            raise ValueError(f"unknown overlay '{name}'; choose one of {', '.join(OVERLAYS)}")
        self.overlay_combo.setCurrentIndex(names.index(name.lower()))

    def set_image(self, pixels: np.ndarray) -> None:
        """Put an image (the model's H x W, [0, 1], ink = 1) on the canvas as the drawing, e.g. a counterfactual;
        it is read as it is until strokes are drawn over it."""
        self.canvas.set_picture(pixels)  # strokes_changed follows: the prediction and the feature maps update

    def shutdown(self) -> None:
        """Stop the nearest digits' background work (the window is closing)."""
        self.nearest.shutdown()

    # -- session signals -------------------------------------------------------------------------------
    def _on_weights_changed(self, snapshot) -> None:
        self._weights_version += 1
        if not self.isVisible():
            self._dirty = True  # hidden: cost nothing now, catch up in showEvent
            return
        self._weights_turn.start()

    def _on_model_or_data_changed(self, _value) -> None:
        self._weights_version += 1
        drawing = self._session.selected_input
        if drawing is not None and drawing.source == "drawing" and drawing.pixels.shape != self._session.input_size:
            # The feature maps show this drawing at the old input size: prepare it again for the new model.
            self._refresh()
            self._send_to_feature_maps()
            return
        if not self.isVisible():
            self._dirty = True
            return
        self._refresh()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._dirty:
            self._refresh()
        self.nearest.catch_up()  # a tab raised gives this panel (not the row) a show event

    # -- the update ------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Re-read the drawing, predict it, redraw everything and emit ``prediction_changed``."""
        self._dirty = False
        session = self._session
        self.untrained_note.setVisible(not session.trained)
        colour = int(session.spec.input_shape[0]) == 3
        if colour:
            self.colour_note.setText(_COLOUR.format(data=session.data.name if session.data is not None else "RGB"))
        self.colour_note.setVisible(colour)
        had = self._pixels is not None
        pixels = None
        self._show_input_size()
        picture = self.canvas.picture()
        if picture is not None and not self.canvas.strokes() and picture.shape == session.input_size:
            pixels = picture  # an image sent to the canvas (a counterfactual) is read as it is
        elif not self.canvas.is_empty():
            raster = self._rasterizer.render(self.canvas.strokes(), self.canvas.stroke_width())
            if picture is not None:  # strokes drawn over a picture: both, prepared together
                rows = np.arange(raster.shape[0]) * picture.shape[0] // raster.shape[0]
                cols = np.arange(raster.shape[1]) * picture.shape[1] // raster.shape[1]
                raster = np.maximum(raster, picture[rows][:, cols])
            pixels = to_mnist(raster, shape=session.input_size)  # MNIST's recipe at the model's input size
        names = tuple(session.class_names)
        # an occlusion map stays on show until the new drawing's own arrives (no flicker while drawing)
        keep = self._heat if self.overlay_combo.currentText() == "Occlusion" and pixels is not None else None
        self._pixels, self._probs, self._heat = pixels, [], keep
        self.error_note.hide()
        if pixels is None:
            self._show_empty(names)
            self.nearest.query(None)
            if had:
                self.prediction_changed.emit([])
                self.drawing_embedded.emit(None)
            return
        embedding = None
        try:
            probs, embedding = session.predict_embedded(pixels)  # one forward pass for both
            self._probs = [float(v) for v in np.asarray(probs).reshape(-1)]
            self._heat = self._compute_overlay(pixels)
        except CnnvizError as err:  # a model that cannot run on this input: say so, keep the app going
            self.error_note.setText(str(err))
            self.error_note.show()
        if len(names) != len(self._probs):
            names = tuple(names[i] if i < len(names) else str(i) for i in range(len(self._probs)))
        self._preview.setImage(_blend_heatmap(pixels, self._heat), levels=(0, 255), autoLevels=False)
        self.bars.set_data(names, self._probs)
        if self._probs:
            top = int(np.argmax(self._probs))
            self.headline.setText(f"Prediction: {names[top]}  ({self._probs[top] * 100:.1f}%)")  # as its bar says
        else:
            self.headline.setText("No prediction")
        self.prediction_changed.emit(list(self._probs))
        if not self._probs:
            embedding = None
        elif embedding is None:
            self.nearest.unavailable("the model has no dense layer, so it has no embedding before a classifier")
        else:
            self.nearest.show_for(embedding)
        self.drawing_embedded.emit(embedding)

    def _show_input_size(self) -> None:
        """Size the preview and its caption to the model's input (28 x 28 for MNIST)."""
        size = self._session.input_size
        if size == self._shown_size:
            return
        self._shown_size = size
        h, w = size
        box = digit_box(size)
        self.seen_label.setText(f"What the network sees ({h} × {w})")
        tip = (f"Your drawing scaled to fit {box} × {box} and centred by mass in {h} × {w}, as MNIST digits "
               "were (20 × 20 in 28 × 28)")
        self.seen_label.setToolTip(tip)
        self._preview_view.setToolTip(tip)
        self._preview_box.setRange(QRectF(0, 0, w, h), padding=0)

    def _show_empty(self, names: tuple[str, ...]) -> None:
        self._preview.setImage(np.zeros((*self._session.input_size, 3), np.uint8), levels=(0, 255), autoLevels=False)
        self.bars.set_data(names, [])
        self.headline.setText("Draw a digit")

    def _compute_overlay(self, pixels: np.ndarray) -> np.ndarray | None:
        mode = self.overlay_combo.currentText()
        if mode == "None" or not self._probs:
            return None
        x = self._session.to_tensor(pixels)
        target = int(np.argmax(self._probs))
        if mode == "Occlusion":
            self._request_occlusion(pixels, x, target)
            return self._heat  # the last map until this drawing's arrives

        fn = saliency if mode == "Saliency" else grad_cam
        return np.asarray(fn(self._session.model, x, target=target), dtype=np.float32)

    def _request_occlusion(self, pixels: np.ndarray, x, target: int) -> None:
        """Work out the occlusion map of ``pixels`` in the background (a coarse grid: 36 images on 28 x 28)."""
        self._occlusion_wanted = (pixels, x, target)
        self._occlusion_throttle.request()

    def _submit_occlusion(self) -> None:
        if self._occlusion_wanted is None:
            return
        (pixels, x, target), self._occlusion_wanted = self._occlusion_wanted, None
        if self._occlusion_model is None or self._occlusion_model[0] != self._weights_version:
            self._occlusion_model = (self._weights_version, copy.deepcopy(self._session.model))
        model, token = self._occlusion_model[1], pixels.tobytes()

        def work(progress, cancel):
            heat = occlusion(model, x, target=target, window=DRAW_WINDOW, stride=DRAW_STRIDE)
            return token, np.asarray(heat, dtype=np.float32)

        self.occlusion_runner.submit(work)

    def _on_occlusion(self, result) -> None:
        token, heat = result
        if self._pixels is None or token != self._pixels.tobytes() or self.overlay_combo.currentText() != "Occlusion":
            return  # drawn on since, or the overlay changed: a newer request follows
        self._heat = heat
        self._preview.setImage(_blend_heatmap(self._pixels, heat), levels=(0, 255), autoLevels=False)
        self.overlay_changed.emit()

    # -- feature maps ----------------------------------------------------------------------------------
    def _on_strokes_changed(self) -> None:
        # The canvas already coalesces pen moves to <= 60 per second, and the feature-map view
        # coalesces inputs that arrive faster than it can draw them, so every change goes out at once.
        self._refresh()
        self._send_to_feature_maps()

    def _on_feature_maps_toggled(self, checked: bool) -> None:
        if checked:
            self._send_to_feature_maps()

    def _send_to_feature_maps(self) -> None:
        if self._pixels is not None and self.feature_maps_check.isChecked():
            self._session.select_input(InputImage(self._pixels.copy(), "drawing", "drawing"))
