"""What every layer outputs for the selected input: one mosaic per layer, with an input picker on top.

Each layer is ONE image (all its maps tiled by :func:`activation_mosaic`), so even a 256-map layer is
a single ``setImage``. Refreshes are coalesced (at most 10 per second while training sends weights)
and skipped entirely while the view is hidden.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnnviz.gui.visibility import on_screen
from cnnviz.errors import CnnvizError
from cnnviz.gui.widgets.colormaps import lut_for
from cnnviz.gui.widgets.image_gallery import to_qimage
from cnnviz.gui.widgets.mosaic_canvas import LayerPanel, LayerStack, MosaicCanvas, gap_labels
from cnnviz.inspect.activations import LayerActivation, feature_maps
from cnnviz.inspect.mosaic import Mosaic, activation_mosaic

_WEIGHTS_DELAY_MS = 100  # weights arrive at ~5 Hz while training; redraw at most 10 times a second
_THUMB = 56  # input thumbnail: 28 x 28 at 2x (other sizes are fitted into it)
_EMPTY = "Load data or draw a digit to see what every layer of the network makes of it."


def layer_title(act: LayerActivation) -> str:
    """``"conv2_relu  8 x 14 x 14"``: the layer's name and output shape (a colour input: its channels)."""
    colour = "  (red, green, blue)" if act.kind == "Input" and len(act.shape) == 3 and act.shape[0] == 3 else ""
    return f"{act.name}  {' x '.join(str(d) for d in act.shape)}{colour}"


class FeatureMapsView(QWidget):
    """The activations of every layer for ``session.selected_input``; click a map to enlarge it."""

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("featureMapView")
        self.session = session
        self.refresh_count = 0  # real recomputes (tests check that hidden views do none)
        self._dirty = True
        self._layout_key: tuple | None = None
        self._acts: dict[str, LayerActivation] = {}
        self._mosaics: dict[str, Mosaic] = {}
        self._masks: dict[tuple, np.ndarray] = {}
        self._panels: dict[str, LayerPanel] = {}
        self._selected: tuple[str, int] | None = None
        self._rng = np.random.default_rng()
        self._last_refresh_cost = 0.0  # seconds the last recompute took
        self._last_refresh_end = 0.0  # time.perf_counter() when it ended
        self._last_refresh = 0.0  # time.monotonic() of the last redraw
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._refresh)
        self._build_ui()
        s = session
        s.input_changed.connect(self._on_input_changed)
        s.weights_changed.connect(self._on_weights_changed)
        s.spec_changed.connect(self._on_model_changed)
        s.data_changed.connect(self._on_data_changed)
        self._on_data_changed(s.data)

    # -- layout ----------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self._thumb = QLabel()
        self._thumb.setFixedSize(_THUMB, _THUMB)
        self._thumb.setStyleSheet("background: black;")
        self._thumb.setToolTip("The image fed to the network (white = ink)")
        self._input_label = QLabel("No input")
        font = self._input_label.font()
        font.setBold(True)
        self._input_label.setFont(font)
        self._input_note = QLabel("")
        self._input_note.setWordWrap(True)  # wraps in a narrow panel instead of widening the window
        self._input_note.setStyleSheet("color: palette(placeholder-text);")
        labels = QVBoxLayout()
        labels.addWidget(self._input_label)
        labels.addWidget(self._input_note)

        self._spin = QSpinBox()
        self._spin.setPrefix("test #")
        self._spin.setKeyboardTracking(False)  # typing "123" selects 123 once, not 1, 12 and 123
        self._spin.setToolTip("Index of the test image to show (Up/Down or PgUp/PgDown to browse)")
        self._spin.valueChanged.connect(self._on_spin)
        self._prev = QToolButton(text="◀")
        self._prev.setToolTip("Previous test image")
        self._prev.clicked.connect(lambda: self._step(-1))
        self._next = QToolButton(text="▶")
        self._next.setToolTip("Next test image")
        self._next.clicked.connect(lambda: self._step(+1))
        self._random = QPushButton("Random")
        self._random.setToolTip("Show a random test image")
        self._random.clicked.connect(self._pick_random)

        top = QHBoxLayout()
        top.addWidget(self._thumb)
        top.addLayout(labels, 1)
        for w in (self._prev, self._spin, self._next, self._random):
            top.addWidget(w)

        self._stack = LayerStack()
        self._detail_title = QLabel("")
        self._detail_title.setFont(font)
        self._detail_canvas = MosaicCanvas(max_zoom=16, max_height=240)
        self._detail_canvas.fit_width(240)
        self._detail_canvas.hide()
        self._detail_info = QLabel("Click a map to enlarge it.")
        self._detail_info.setWordWrap(True)
        detail = QWidget()
        detail.setMinimumWidth(200)
        dl = QVBoxLayout(detail)
        dl.addWidget(self._detail_title)
        dl.addWidget(self._detail_canvas, 0, Qt.AlignmentFlag.AlignHCenter)
        dl.addWidget(self._detail_info)
        dl.addStretch(1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._stack)
        split.addWidget(detail)
        split.setStretchFactor(0, 1)
        split.setSizes([500, 250])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(split, 1)

    # -- session signals -------------------------------------------------------------------------------
    def _schedule(self, delay_ms: int) -> None:
        """Redraw soon: at once when the last redraw is at least `delay_ms` old (the first of a burst, e.g. a
        step shown from the timeline, is drawn without waiting), else when it will be."""
        if not on_screen(self):
            self._dirty = True  # hidden: no work; showEvent catches up
            return
        wait = max(0, int(delay_ms - (time.monotonic() - self._last_refresh) * 1000))
        if not self._timer.isActive() or self._timer.remainingTime() > wait:
            # an urgent refresh (a new input, a new model) does not wait behind a throttled one (new weights)
            self._timer.start(wait)

    def _on_input_changed(self, image) -> None:
        # At once, unless inputs come faster than the view can draw them (a pen moving over a big
        # model): then wait as long as the last refresh took, so redraws take at most half the time.
        idle_since = time.perf_counter() - self._last_refresh_end
        self._schedule(max(0, round((self._last_refresh_cost - idle_since) * 1000)))

    def _on_weights_changed(self, snapshot) -> None:
        self._schedule(_WEIGHTS_DELAY_MS)

    def _on_model_changed(self, *args) -> None:
        self._selected = None
        self._schedule(0)

    def _on_data_changed(self, data) -> None:
        n = 0 if data is None else len(data.test)
        self._spin.blockSignals(True)
        self._spin.setRange(0, max(0, n - 1))
        self._spin.blockSignals(False)
        for w in (self._spin, self._prev, self._next, self._random):
            w.setEnabled(n > 0)
        self._schedule(0)

    # -- input picker ----------------------------------------------------------------------------------
    def _on_spin(self, value: int) -> None:
        current = self.session.selected_input
        if current is None or current.source != "test" or current.index != value:
            self.session.select_test_image(value)

    def _step(self, delta: int) -> None:
        self._spin.setValue(self._spin.value() + delta)

    def _pick_random(self) -> None:
        if self.session.data is not None and len(self.session.data.test):
            self._spin.setValue(int(self._rng.integers(len(self.session.data.test))))

    def _show_input(self) -> None:
        image = self.session.selected_input
        if image is None:
            self._thumb.clear()
            self._input_label.setText("No input")
            self._input_note.setText("")
            return
        qimage = to_qimage(np.clip(image.pixels * 255.0, 0, 255).astype(np.uint8))  # gray, or RGB in colour
        self._thumb.setPixmap(QPixmap.fromImage(qimage).scaled(
            _THUMB, _THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation))
        self._input_label.setText(image.label)
        if image.source == "drawing":
            self._input_note.setText("Showing your drawing; pick a test image to switch back.")
        elif image.source == "file":
            self._input_note.setText("Showing an image opened from a file.")
        elif image.source == "train":
            self._input_note.setText("Showing a training digit (nearest to your drawing); pick a test image to "
                                     "switch back.")
        else:
            self._input_note.setText("Browse the test set with the arrows or type an index.")
        if image.source == "test" and image.index is not None:
            self._spin.blockSignals(True)
            self._spin.setValue(image.index)
            self._spin.blockSignals(False)

    # -- the maps --------------------------------------------------------------------------------------
    def _refresh(self, force: bool = False) -> None:
        if not (force or on_screen(self)):
            self._dirty = True
            return
        self._dirty = False
        self._last_refresh = time.monotonic()
        self._show_input()
        image = self.session.selected_input
        if image is None:
            self._clear(_EMPTY)
            return
        started = time.perf_counter()
        try:
            self._draw_maps(image)
        finally:
            self._last_refresh_end = time.perf_counter()
            self._last_refresh_cost = self._last_refresh_end - started

    def _draw_maps(self, image) -> None:
        try:
            acts = feature_maps(self.session.model, self.session.to_tensor(image.pixels))
        except CnnvizError as err:
            self._clear(f"Cannot run the model on this input: {err}")
            return
        self.refresh_count += 1
        key = tuple((a.name, a.shape) for a in acts)
        if key != self._layout_key:
            self._rebuild(acts)
            self._layout_key = key
        for act in acts:
            mosaic = activation_mosaic(act)
            lut, levels = lut_for(mosaic.signed)
            panel = self._panels[act.name]
            panel.canvas.set_mosaic(mosaic, lut, levels, self._mask(act))
            lo, hi = float(np.min(act.values)), float(np.max(act.values))
            panel.note.setText(f"values {lo:.3g} to {hi:.3g}" + ("  (blue < 0 < red)" if mosaic.signed else ""))
            self._acts[act.name], self._mosaics[act.name] = act, mosaic
        if self._selected is not None:
            self.select_map(*self._selected)

    def _clear(self, message: str) -> None:
        self._stack.clear()
        self._panels, self._acts, self._mosaics = {}, {}, {}
        self._layout_key, self._selected = None, None
        self._stack.show_message(message)
        self._show_detail(None)

    def _rebuild(self, acts: list[LayerActivation]) -> None:
        self._clear("")
        for act in acts:
            flat = len(act.shape) <= 1  # dense units are 1 x 1 tiles: let them grow to readable squares
            canvas = MosaicCanvas(max_zoom=24 if flat else 12, max_height=200)
            canvas.tile_clicked.connect(lambda i, name=act.name: self.select_map(name, i))
            canvas.describe = lambda i, name=act.name: self._describe(name, i)
            panel = LayerPanel(layer_title(act), canvas)
            panel.title.setToolTip(f"{act.name}: output of a {act.kind} layer; colours are scaled per layer. "
                                   "Click a map to enlarge it.")
            self._stack.add_panel(panel)
            self._panels[act.name] = panel

    def _mask(self, act: LayerActivation) -> np.ndarray:
        # The padding of this layout, from the same layout made of ones (cached per shape).
        if act.shape not in self._masks:
            ones = LayerActivation(act.name, act.kind, act.shape, np.ones(act.shape, np.float32))
            self._masks[act.shape] = gap_labels(activation_mosaic(ones))
        return self._masks[act.shape]

    def _unit(self, name: str) -> str:
        return "unit" if len(self._acts[name].shape) <= 1 else "channel"

    def _values(self, name: str, index: int) -> np.ndarray:
        v = np.asarray(self._acts[name].values)
        return v.reshape(-1)[index:index + 1] if v.ndim <= 1 else v.reshape(-1, *v.shape[-2:])[index]

    def _describe(self, name: str, index: int) -> str:
        v = self._values(name, index)
        return f"{name} {self._unit(name)} {index}: {float(v.min()):.3g} to {float(v.max()):.3g}"

    # -- enlarged map ----------------------------------------------------------------------------------
    def select_map(self, name: str, index: int) -> None:
        """Enlarge map ``index`` of layer ``name`` in the side panel."""
        if name not in self._mosaics or not 0 <= index < self._mosaics[name].count:
            return
        if self._selected is not None and self._selected[0] in self._panels:
            self._panels[self._selected[0]].canvas.highlight(None)
        self._selected = (name, index)
        self._panels[name].canvas.highlight(index)
        self._show_detail((name, index))

    def selected_map(self) -> tuple[str, int] | None:
        """``(layer, channel)`` shown enlarged, or None."""
        return self._selected

    def detail_image(self) -> np.ndarray | None:
        """The enlarged map as displayed (the tile of the layer's mosaic), or None."""
        mosaic = self._detail_canvas.mosaic
        return None if mosaic is None or self._selected is None else mosaic.image

    def _show_detail(self, which: tuple[str, int] | None) -> None:
        if which is None:
            self._detail_title.setText("")
            self._detail_canvas.hide()
            self._detail_info.setText("Click a map to enlarge it.")
            return
        name, index = which
        m = self._mosaics[name]
        top, left, h, w = m.tile_rect(index)
        tile = np.ascontiguousarray(m.image[top:top + h, left:left + w])
        single = Mosaic(tile, 1, 1, h, w, 0, m.scale, m.signed, 1, m.offset)
        lut, levels = lut_for(m.signed)
        self._detail_canvas.set_mosaic(single, lut, levels)
        self._detail_canvas.show()
        v = self._values(name, index)
        count, unit = self._mosaics[name].count, self._unit(name)
        self._detail_title.setText(f"{name}, {unit} {index}")
        if v.size == 1:
            text = f"{unit.capitalize()} {index} of 0-{count - 1}: value {float(v[0]):.4g}."
        else:
            text = (f"{unit.capitalize()} {index} of 0-{count - 1}, {h} x {w}: min {float(v.min()):.4g}, "
                    f"max {float(v.max()):.4g}.")
        self._detail_info.setText(text + " Colours use the layer's scale.")

    # -- for tests and the window ----------------------------------------------------------------------
    def layer_titles(self) -> list[str]:
        """The title of every layer shown, top to bottom."""
        return [p.title.text() for p in self._stack.panels]

    def mosaic_for(self, name: str) -> np.ndarray:
        """The mosaic image of layer ``name`` as displayed (before padding is greyed out)."""
        return self._mosaics[name].image

    def canvas_for(self, name: str) -> MosaicCanvas:
        return self._panels[name].canvas

    def export_png(self, path: str) -> None:
        """Save the input and every layer's maps (the whole scrolled stack) as a PNG."""
        if self._dirty:
            self._refresh(force=True)
        if not self._stack.body.grab().save(str(path), "PNG"):
            raise CnnvizError(f"could not write the feature maps picture to {path}")

    # -- Qt overrides ----------------------------------------------------------------------------------
    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if self._dirty:
            self._schedule(0)
