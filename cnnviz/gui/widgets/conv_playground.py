"""A convolution playground: slide a kernel (or a pooling window) over an image and see the output and
its size worked out with the real numbers.

Like a CNN layer, "convolution" here is cross-correlation (the kernel is not flipped), computed in numpy
over a zero-padded image; hovering an output pixel outlines the input window it was computed from.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPen
from PySide6.QtWidgets import (QComboBox, QGraphicsRectItem, QGridLayout, QHBoxLayout, QHeaderView, QLabel,
                               QSizePolicy, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from cnnviz.gui.visibility import on_screen
from cnnviz.errors import ConfigError
from cnnviz.inspect.convolution import KERNELS, apply_operation, size_formula
from cnnviz.gui.widgets.colormaps import color_at, diverging_lut, ink_for, sequential_lut

CUSTOM = "Custom"
OPERATIONS = ("Convolution", "Max pooling", "Average pooling")
SOURCES = ("Test image", "Selected input")
_CELL_W = 62  # kernel table cells: room for "-0.0234"


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower().replace("×", "x") if ch.isalnum())


# Names the setters accept (lower case, letters and digits only) -> combo index.
_KERNEL_NAMES = (*KERNELS, CUSTOM)
_KERNEL_ALIASES = {_key(n): i for i, n in enumerate(_KERNEL_NAMES)}
_KERNEL_ALIASES.update({_key(n.replace(" blur", "")): i for i, n in enumerate(KERNELS) if "blur" in n})
_KERNEL_ALIASES.update({"laplacian": 0, "edgedetect": 0, "edge": 0, "blur": 3, "gaussian": 5})
_OP_ALIASES = {"convolution": 0, "conv": 0, "maxpooling": 1, "max": 1, "maxpool": 1,
               "averagepooling": 2, "average": 2, "avg": 2, "avgpool": 2, "mean": 2}
_SOURCE_ALIASES = {"testimage": 0, "test": 0, "selectedinput": 1, "selected": 1, "drawing": 1}


def _choose(combo: QComboBox, aliases: dict[str, int], name: str, what: str) -> None:
    """Set ``combo`` to the item called ``name`` (an alias), or raise a ConfigError listing the items."""
    if _key(name) not in aliases:
        items = ", ".join(combo.itemText(i) for i in range(combo.count()))
        raise ConfigError(f"unknown {what} '{name}'; choose one of {items}")
    combo.setCurrentIndex(aliases[_key(name)])


def _parse_number(text: str) -> float | None:
    """A finite number from a cell: ``0.25``, ``-1``, ``1/16``; None when it is not one."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def _image_box(title: str) -> tuple[QWidget, QLabel, pg.GraphicsView, pg.ViewBox, pg.ImageItem]:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(title)
    label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # long names must not widen it
    view = pg.GraphicsView(background=QColor(20, 20, 20))
    view.setMinimumSize(180, 180)
    vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False, defaultPadding=0.02)
    view.setCentralItem(vb)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    layout.addWidget(label)
    layout.addWidget(view, 1)
    return box, label, view, vb, item


class ConvPlayground(QWidget):
    """Try kernels, strides, padding and pooling on a test image or the selected input."""

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("convPlayground")
        self._session = session
        self._custom = KERNELS["Edge detect (Laplacian)"].copy()
        self._shown_kernel = self._custom
        self._output = np.zeros((0, 0), np.float32)
        self._formula = ""
        self._dirty = False
        self._build()
        session.data_changed.connect(self._on_data_changed)
        session.input_changed.connect(self._on_input_changed)
        self._on_data_changed(session.data)

    # -- layout ----------------------------------------------------------------------------------------
    def _combo(self, items, tip: str, slot=None) -> QComboBox:
        combo = QComboBox()
        combo.addItems(list(items))
        combo.setToolTip(tip)
        combo.currentIndexChanged.connect(slot or self._on_controls_changed)
        return combo

    def _spin(self, low: int, high: int, value: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setValue(value)
        spin.setToolTip(tip)
        spin.valueChanged.connect(self._on_controls_changed)
        return spin

    def _build(self) -> None:
        self.source_combo = self._combo(SOURCES, "Which image to filter: a test image, or the image selected "
                                                 "for the feature maps (e.g. your drawing)")
        self.index_spin = self._spin(0, 0, 0, "Test image number")
        self.op_combo = self._combo(OPERATIONS, "Convolution multiplies each window by the kernel and sums; "
                                                "pooling keeps the window's maximum or mean")
        self.op_combo.currentIndexChanged.connect(self._on_operation_changed)
        self.kernel_combo = self._combo(_KERNEL_NAMES, "The kernel slid over the image (not flipped, as in "
                                        "CNN layers); edit the matrix for a custom one", self._on_kernel_chosen)
        self.size_combo = self._combo(("3×3", "5×5"), "Size of the custom kernel")
        self.pool_spin = self._spin(2, 4, 2, "Pooling window size F (F × F)")
        self.stride_spin = self._spin(1, 4, 1, "Stride S: how many pixels the window moves each step")
        self.pad_spin = self._spin(0, 3, 1, "Padding P: zero pixels added on every side")
        controls = QGridLayout()
        row = [("Image", self.source_combo), ("#", self.index_spin), ("Operation", self.op_combo),
               ("Kernel", self.kernel_combo), ("Size", self.size_combo), ("Pool size", self.pool_spin),
               ("Stride", self.stride_spin), ("Padding", self.pad_spin)]
        self._control_labels = {}
        for i, (name, widget) in enumerate(row):
            label = QLabel(name)
            self._control_labels[widget] = label
            controls.addWidget(label, i // 4, 2 * (i % 4), Qt.AlignmentFlag.AlignRight)
            controls.addWidget(widget, i // 4, 2 * (i % 4) + 1)
        self.kernel_table = QTableWidget()
        self.kernel_table.setObjectName("kernelTable")
        self.kernel_table.setToolTip("The kernel's weights; type a number (or a fraction like 1/16) to edit")
        for header, size in ((self.kernel_table.horizontalHeader(), _CELL_W), (self.kernel_table.verticalHeader(), 26)):
            header.hide()
            header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            header.setDefaultSectionSize(size)
        self.kernel_table.itemChanged.connect(self._on_cell_edited)
        self.kernel_title = QLabel("Kernel")
        middle = QVBoxLayout()
        middle.addStretch(1)
        middle.addWidget(self.kernel_title, 0, Qt.AlignmentFlag.AlignHCenter)
        middle.addWidget(self.kernel_table, 0, Qt.AlignmentFlag.AlignHCenter)
        middle.addStretch(1)
        in_box, self._in_title, _, self._in_vb, self._in_item = _image_box("Input\n")
        out_box, self._out_title, out_view, self._out_vb, self._out_item = _image_box("Output\n")
        self._image_rect = self._rect_item(QColor(255, 210, 0), self._in_vb)
        self._out_rect = self._rect_item(QColor(110, 110, 110), self._out_vb)  # the output's edge on dark
        self._window_rect = self._rect_item(QColor(0, 230, 255), self._in_vb)
        self._pixel_rect = self._rect_item(QColor(0, 230, 255), self._out_vb)
        out_view.scene().sigMouseMoved.connect(self._on_output_hover)
        pictures = QHBoxLayout()
        pictures.addWidget(in_box, 1)
        pictures.addLayout(middle)
        pictures.addWidget(out_box, 1)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setBold(True)
        self.formula_label = QLabel(objectName="sizeFormula", font=mono)
        self.formula_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.formula_label.setToolTip("Output size: W input size, P padding, F window size, S stride")
        self.message_label = QLabel(objectName="playgroundMessage", wordWrap=True)
        self.message_label.setStyleSheet("QLabel { color: #e05050; }")
        self.hover_label = QLabel(wordWrap=True)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addLayout(pictures, 1)
        for label in (self.formula_label, self.message_label, self.hover_label):
            layout.addWidget(label)
        self._sync_controls()

    @staticmethod
    def _rect_item(colour: QColor, vb: pg.ViewBox) -> QGraphicsRectItem:
        rect = QGraphicsRectItem()
        pen = QPen(colour, 2)
        pen.setCosmetic(True)  # 2 screen pixels whatever the zoom
        rect.setPen(pen)
        rect.setZValue(10)
        vb.addItem(rect)
        return rect

    # -- the automation surface ------------------------------------------------------------------------
    def output(self) -> np.ndarray:
        """The current output (float32; empty (0, 0) when the settings are impossible)."""
        self._flush()
        return self._output.copy()

    def formula_text(self) -> str:
        """The output-size formula with the actual numbers."""
        self._flush()
        return self._formula

    def message_text(self) -> str:
        """The problem shown instead of an output ('' when there is none)."""
        self._flush()
        return self.message_label.text()

    def kernel(self) -> np.ndarray:
        """The kernel in use (for pooling: a window of ones of the pool size)."""
        if self.op_combo.currentIndex() != 0:
            return np.ones((self.pool_spin.value(),) * 2, np.float32)
        name = self.kernel_combo.currentText()
        return (self._custom if name == CUSTOM else KERNELS[name]).copy()

    def set_kernel(self, name: str) -> None:
        """Choose a kernel by name ("Sobel x", "sobel_x", "identity", "laplacian", "Custom", ...)."""
        _choose(self.kernel_combo, _KERNEL_ALIASES, name, "kernel")

    def set_custom_kernel(self, matrix) -> None:
        """Use ``matrix`` (3 x 3 or 5 x 5 finite numbers) as the custom kernel."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape not in ((3, 3), (5, 5)) or not np.isfinite(m).all():
            raise ConfigError(f"a custom kernel must be 3 x 3 or 5 x 5 finite numbers; got shape {m.shape}")
        self._use_custom(m.astype(np.float32))

    def _use_custom(self, k: np.ndarray) -> None:
        self._custom = k
        for combo, index in ((self.size_combo, 0 if k.shape[0] == 3 else 1), (self.kernel_combo, len(KERNELS))):
            combo.blockSignals(True)
            combo.setCurrentIndex(index)
            combo.blockSignals(False)
        self._on_controls_changed()

    def set_stride(self, n: int) -> None:
        """Stride S, 1-4."""
        self.stride_spin.setValue(int(n))

    def set_padding(self, n: int) -> None:
        """Zero padding P on every side, 0-3."""
        self.pad_spin.setValue(int(n))

    def set_pool_size(self, n: int) -> None:
        """Pooling window size F, 2-4."""
        self.pool_spin.setValue(int(n))

    def set_operation(self, name: str) -> None:
        """"Convolution", "Max pooling" or "Average pooling" (also "conv", "max", "avg")."""
        _choose(self.op_combo, _OP_ALIASES, name, "operation")

    def set_source(self, name: str) -> None:
        """"Test image" or "Selected input"."""
        _choose(self.source_combo, _SOURCE_ALIASES, name, "image source")

    def set_test_index(self, index: int) -> None:
        """Which test image to filter."""
        self.index_spin.setValue(int(index))

    # -- reacting --------------------------------------------------------------------------------------
    def _on_data_changed(self, data) -> None:
        count = len(data.test) if data is not None else 0
        self.index_spin.setRange(0, max(0, count - 1))
        self._schedule()

    def _on_input_changed(self, image) -> None:
        if self.source_combo.currentIndex() == 1:
            self._schedule()

    def _on_operation_changed(self, index: int) -> None:
        # Pooling usually steps by its own size with no padding; convolution by 1 with 'same' padding.
        pooling = index != 0
        self.stride_spin.setValue(self.pool_spin.value() if pooling else 1)
        self.pad_spin.setValue(0 if pooling else (self.kernel().shape[0] - 1) // 2)

    def _on_kernel_chosen(self, index: int) -> None:
        if self.kernel_combo.currentText() == CUSTOM:
            self._use_custom(self._shown_kernel.copy())  # start from the kernel that was on screen
        else:
            self._on_controls_changed()

    def _on_controls_changed(self, *_args) -> None:
        self._sync_controls()
        self._schedule()

    def _sync_controls(self) -> None:
        pooling = self.op_combo.currentIndex() != 0
        custom = self.kernel_combo.currentText() == CUSTOM
        for widget, shown in ((self.index_spin, self.source_combo.currentIndex() == 0),
                              (self.kernel_combo, not pooling), (self.size_combo, custom and not pooling),
                              (self.pool_spin, pooling)):
            widget.setVisible(shown)
            self._control_labels[widget].setVisible(shown)
        n = 3 + 2 * self.size_combo.currentIndex()
        if custom and self._custom.shape[0] != n:  # resized: keep the centre, pad with zeros or crop
            self._custom = np.pad(self._custom, 1) if n == 5 else self._custom[1:4, 1:4].copy()
        self.kernel_table.setVisible(not pooling)
        self.kernel_title.setText(f"Kernel (F = {self.kernel().shape[0]})" if not pooling else
                                  f"{self.op_combo.currentText()}\n{self.pool_spin.value()} × "
                                  f"{self.pool_spin.value()} window")
        if not pooling:
            self._shown_kernel = self.kernel()
            self._fill_table(self._shown_kernel)

    def _fill_table(self, k: np.ndarray) -> None:
        table = self.kernel_table
        table.blockSignals(True)
        table.setRowCount(k.shape[0])
        table.setColumnCount(k.shape[1])
        levels = (-(float(np.abs(k).max()) or 1.0), float(np.abs(k).max()) or 1.0)
        for (r, c), v in np.ndenumerate(k):
            item = QTableWidgetItem(f"{float(v):.3g}")
            item.setToolTip(f"row {r + 1}, column {c + 1}: {float(v):.6g}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            rgb = color_at(diverging_lut(), float(v), levels)  # the weight's sign and size, as in the output
            item.setBackground(QBrush(QColor(*rgb)))
            item.setForeground(QBrush(QColor(*ink_for(rgb))))
            table.setItem(r, c, item)
        table.blockSignals(False)
        side = 2 * table.frameWidth()
        table.setFixedSize(_CELL_W * k.shape[1] + side, 26 * k.shape[0] + side)

    def _on_cell_edited(self, item: QTableWidgetItem) -> None:
        text = item.text().strip()
        value = _parse_number(text)
        k = self.kernel()
        r, c = item.row(), item.column()
        if value is None:
            self.kernel_table.blockSignals(True)
            item.setText(f"{float(k[r, c]):.3g}")  # put the last good value back
            self.kernel_table.blockSignals(False)
            self.message_label.setText(f"'{text}' is not a number (row {r + 1}, column {c + 1}); the entry was "
                                       f"left at {float(k[r, c]):.4g}. Type e.g. 0.5, -1 or 1/16.")
            return
        k[r, c] = value
        self._use_custom(k)  # editing a preset starts a custom kernel from it

    # -- computing and showing -------------------------------------------------------------------------
    def _schedule(self) -> None:
        if not on_screen(self):
            self._dirty = True  # hidden: cost nothing, catch up when shown or asked
            return
        self._recompute()

    def _flush(self) -> None:
        if self._dirty:
            self._recompute()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self._flush()

    def _source_image(self) -> tuple[np.ndarray | None, str]:
        """The image to filter (None when there is none) and what to call it."""
        session = self._session
        if self.source_combo.currentIndex() == 0:
            if session.data is None or len(session.data.test) == 0:
                return None, ""
            i = self.index_spin.value()
            name = session.data.class_names[int(session.data.test.labels[i])]
            return _gray(session.data.test.raw[i].astype(np.float32) / 255.0, f"test #{i} (true {name})")
        chosen = session.selected_input
        return (None, "") if chosen is None else _gray(np.asarray(chosen.pixels, np.float32), chosen.label)

    def _recompute(self) -> None:
        self._dirty = False
        image, name = self._source_image()
        pad = f", {self.pad_spin.value()} px zero padding (blue)" if self.pad_spin.value() else ""
        self._in_title.setText(f"Input: {name}\n{image.shape[0]} × {image.shape[1]}{pad}" if image is not None
                               else "Input\n")
        self._image_rect.setVisible(image is not None)
        op = self.op_combo.currentText()
        k = self.kernel()
        s, p = self.stride_spin.value(), self.pad_spin.value()
        message = ""
        if image is None:
            message = ("Load a data set to pick a test image." if self.source_combo.currentIndex() == 0 else
                       "No input selected yet: pick a test image or draw a digit with 'Show in feature maps'.")
            self._output = np.zeros((0, 0), np.float32)
            self._formula = ""
            self._in_item.clear()
        else:
            h, w = image.shape
            self._formula = size_formula(w, p, k.shape[0], s) if h == w else (
                f"height: {size_formula(h, p, k.shape[0], s)}\nwidth:  {size_formula(w, p, k.shape[1], s)}")
            self._output = apply_operation(image, op, k, s, p)
            if self._output.size == 0:
                message = (f"Impossible: the {k.shape[0]} × {k.shape[1]} window is larger than the padded "
                           f"{h + 2 * p} × {w + 2 * p} input, so the output would have no pixels. "
                           f"Add padding or use a smaller window.")
            self._show_input(image, p)
        self.formula_label.setText(self._formula)
        out = self._output
        self._out_title.setText(f"{op} output\n{out.shape[0]} × {out.shape[1]}" if out.size else f"{op} output\n")
        self.message_label.setText(message)
        self._show_output(op)
        self._highlight(0, 0)

    def _show_input(self, image: np.ndarray, p: int) -> None:
        gray = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        rgb = np.empty((gray.shape[0] + 2 * p, gray.shape[1] + 2 * p, 3), np.uint8)
        rgb[...] = (25, 45, 110)  # the zero padding, tinted so it shows
        rgb[p:p + gray.shape[0], p:p + gray.shape[1]] = gray[..., None]
        self._in_item.setImage(rgb, levels=(0, 255), autoLevels=False)
        self._image_rect.setRect(QRectF(p, p, gray.shape[1], gray.shape[0]))
        self._in_vb.setRange(QRectF(0, 0, rgb.shape[1], rgb.shape[0]), padding=0.02)

    def _show_output(self, op: str) -> None:
        out = self._output
        self._out_rect.setVisible(out.size > 0)
        if out.size == 0:
            self._out_item.clear()
            return
        if op == "Convolution":  # signed: a diverging map centred on zero
            peak = float(np.abs(out).max()) or 1.0
            lut, levels = diverging_lut(), (-peak, peak)
        else:
            lut, levels = sequential_lut("gray"), (0.0, max(float(out.max()), 1e-6))
        self._out_item.setImage(np.ascontiguousarray(out), lut=lut, levels=levels, autoLevels=False)
        self._out_rect.setRect(QRectF(0, 0, out.shape[1], out.shape[0]))
        self._out_vb.setRange(QRectF(0, 0, out.shape[1], out.shape[0]), padding=0.02)

    def _on_output_hover(self, scene_pos) -> None:
        if self._output.size == 0 or not self._out_vb.sceneBoundingRect().contains(scene_pos):
            return
        pt = self._out_vb.mapSceneToView(scene_pos)
        r, c = int(math.floor(pt.y())), int(math.floor(pt.x()))
        if 0 <= r < self._output.shape[0] and 0 <= c < self._output.shape[1]:
            self._highlight(r, c)

    def _highlight(self, r: int, c: int) -> None:
        """Outline output pixel (r, c) and the input window it was computed from."""
        shown = self._output.size > 0
        self._window_rect.setVisible(shown)
        self._pixel_rect.setVisible(shown)
        if not shown:
            self.hover_label.setText("")
            return
        kh, kw = self.kernel().shape
        s = self.stride_spin.value()
        self._window_rect.setRect(QRectF(c * s, r * s, kw, kh))
        self._pixel_rect.setRect(QRectF(c, r, 1, 1))
        self.hover_label.setText(
            f"Output pixel (row {r}, column {c}) = {self._output[r, c]:.3f}, from the {kh} × {kw} input window "
            f"at (row {r * s}, column {c * s}) of the padded input. Hover over the output to move it.")


def _gray(pixels: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """A colour image (H, W, 3) as its mean over the channels, for the one-channel kernel; gray as it is."""
    if pixels.ndim == 3:
        return pixels.mean(axis=2), f"{name}, in gray"
    return pixels, name
