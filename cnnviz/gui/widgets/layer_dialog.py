"""The settings of one layer, edited in place under the model table (no modal dialog), and layer texts.

Every change is reported at once as ``field_edited(field, value)`` so the model editor can re-check the
shapes live: the user sees "kernel 29 is larger than its 28x28 input" while still on the spin box.
Spin boxes report on Enter, focus change or arrow steps (not on every typed digit), so typing "29"
is one edit, not "2" then "29".
"""
from __future__ import annotations

import re

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnnviz.errors import SpecError
from cnnviz.models import ACTIVATIONS, LayerSpec, ModelSpec, act, avgpool, batchnorm, conv, dense, dropout, flatten
from cnnviz.models import maxpool
from cnnviz.models.spec import USED_FIELDS

NO_ACTIVATION = "none"
COLUMNS = 3  # label/field pairs per line of the form
NEW_LAYERS = {  # what "Add layer" inserts: common, valid settings to start from
    "conv": conv(16, 3, 1, "same"), "maxpool": maxpool(2), "avgpool": avgpool(2), "batchnorm": batchnorm(),
    "activation": act("relu"), "dropout": dropout(0.25), "flatten": flatten(), "dense": dense(64, "relu"),
}
FIELDS = USED_FIELDS  # which form rows each kind shows: the fields the spec uses for that kind
KIND_HELP = {
    "conv": "Slides learned filters over the image; each filter gives one output channel.",
    "maxpool": "Keeps the largest value of each window: shrinks the maps.",
    "avgpool": "Averages each window: shrinks the maps.",
    "batchnorm": "Normalizes each channel over the batch, with a learned scale and shift.",
    "activation": "Applies a non-linear function to every value.",
    "dropout": "Zeroes a random share of the values while training (not when predicting).",
    "flatten": "Turns the channels x height x width maps into one flat vector.",
    "dense": "Connects every input value to every unit.",
}


def settings_text(layer: LayerSpec) -> str:
    """A layer's settings in a few words: "32 filters 3x3 s1 same relu", "2x2 s2", "rate 0.25"."""
    k = layer.kind
    pad = layer.padding if isinstance(layer.padding, str) else f"pad {layer.padding}"
    if k == "conv":
        return " ".join(p for p in (f"{layer.size} filters {layer.kernel}x{layer.kernel} s{layer.stride}",
                                    str(pad), layer.activation or "") if p)
    if k in ("maxpool", "avgpool"):
        extra = "" if layer.padding in (0, "valid") else f" {pad}"
        return f"{layer.kernel}x{layer.kernel} s{layer.stride}{extra}"
    if k == "dense":
        return f"{layer.size} units" + (f" {layer.activation}" if layer.activation else "")
    if k == "activation":
        return str(layer.activation)
    if k == "dropout":
        return f"rate {layer.rate:g}"
    return ""


def error_layer_index(message: str, spec: ModelSpec) -> int | None:
    """The 0-based layer a SpecError message is about, or None when it is about the whole model."""
    if m := re.search(r"\blayers (\d+) and (\d+)", message):
        return int(m.group(2)) - 1
    if m := re.search(r"\blayer (\d+)\b", message):
        return int(m.group(1)) - 1
    if message.startswith("the last layer"):
        return len(spec.layers) - 1 if spec.layers else None
    names = layer_names(spec)
    for i, name in enumerate(names):
        if f"'{name}'" in message:
            return i
    return None


def layer_names(spec: ModelSpec) -> list[str]:
    """Each layer's displayed name: its own or its automatic one (what the user typed if names clash)."""
    try:
        return [layer.name for layer in spec.named().layers]
    except SpecError:  # a bad name: show what the user typed
        return [layer.name or layer.kind for layer in spec.layers]


def parse_padding(text: str) -> int | str | None:
    """``"same"``, ``"valid"`` or a non-negative int from the padding box; None if it is neither."""
    text = text.strip().lower()
    if text in ("same", "valid"):
        return text
    return int(text) if text.isdigit() else None


class LayerForm(QGroupBox):
    """Form for the selected layer's settings; shows only the fields its kind uses."""

    field_edited = Signal(str, object)  # field name, new value

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Layer settings", parent)
        self._loading = False  # True while filling the fields from a layer: those are not edits
        self._help = QLabel()
        self._help.setWordWrap(True)
        self._help.setObjectName("layerHelp")

        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("automatic")
        self.name_edit.setToolTip("The layer's name (letters, digits, _ and -); empty for an automatic name")
        self.name_edit.editingFinished.connect(self._name_done)

        self.size_spin = self._spin(1, 4096, "Number of filters (conv) or units (dense)")
        self.kernel_spin = self._spin(1, 64, "Kernel (window) size: k gives a k x k window")
        self.stride_spin = self._spin(1, 16, "How far the window moves each step; 2 halves the size")
        self.size_spin.valueChanged.connect(lambda v: self._emit("size", int(v)))
        self.kernel_spin.valueChanged.connect(lambda v: self._emit("kernel", int(v)))
        self.stride_spin.valueChanged.connect(lambda v: self._emit("stride", int(v)))

        self.padding_combo = QComboBox()
        self.padding_combo.setEditable(True)
        self.padding_combo.addItems(["same", "valid", "0", "1", "2", "3"])
        self.padding_combo.setValidator(QRegularExpressionValidator(QRegularExpression(r"same|valid|\d{1,3}")))
        self.padding_combo.setToolTip(
            "Zeros added around the input: 'same' keeps the size (at stride 1), 'valid' adds none, or a number"
        )
        self.padding_combo.activated.connect(self._padding_done)
        self.padding_combo.lineEdit().editingFinished.connect(self._padding_done)

        self.activation_combo = QComboBox()
        self.activation_combo.setToolTip("The function applied to the layer's output")
        self.activation_combo.activated.connect(self._activation_done)

        self.rate_spin = QDoubleSpinBox()
        self.rate_spin.setRange(0.0, 0.95)
        self.rate_spin.setSingleStep(0.05)
        self.rate_spin.setDecimals(2)
        self.rate_spin.setKeyboardTracking(False)
        self.rate_spin.setToolTip("Share of the values dropped while training")
        self.rate_spin.valueChanged.connect(lambda v: self._emit("rate", round(float(v), 4)))

        self._labels = {field: QLabel(text) for field, text in (
            ("name", "Name"), ("size", "Filters"), ("kernel", "Kernel"), ("stride", "Stride"),
            ("padding", "Padding"), ("activation", "Activation"), ("rate", "Rate"))}
        self._fields = {"name": self.name_edit, "size": self.size_spin, "kernel": self.kernel_spin,
                        "stride": self.stride_spin, "padding": self.padding_combo,
                        "activation": self.activation_combo, "rate": self.rate_spin}
        for field, label in self._labels.items():
            label.setBuddy(self._fields[field])
            # Parent now: a parentless widget made visible would pop up as a window of its own.
            label.setParent(self)
            self._fields[field].setParent(self)
        self._shape = QLabel()
        self._shape.setWordWrap(True)
        self._shape.setObjectName("layerShape")
        self._grid = QGridLayout()
        self._grid.setHorizontalSpacing(8)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 6)
        layout.addWidget(self._help)
        layout.addLayout(self._grid)
        layout.addWidget(self._shape)
        self.set_layer(None)

    def _place(self, fields: tuple[str, ...]) -> None:
        # A strip of label/field pairs, COLUMNS pairs per line, holding only the fields this kind uses.
        for field, widget in self._fields.items():
            self._grid.removeWidget(self._labels[field])
            self._grid.removeWidget(widget)
        for i, field in enumerate(fields):
            row, col = divmod(i, COLUMNS)
            self._grid.addWidget(self._labels[field], row, 2 * col, Qt.AlignmentFlag.AlignRight)
            self._grid.addWidget(self._fields[field], row, 2 * col + 1)
        for field, widget in self._fields.items():
            self._labels[field].setVisible(field in fields)
            widget.setVisible(field in fields)
        for col in range(COLUMNS):
            self._grid.setColumnStretch(2 * col + 1, 1)

    def _spin(self, low: int, high: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setKeyboardTracking(False)
        spin.setToolTip(tip)
        return spin

    def set_layer(self, layer: LayerSpec | None, shape_text: str = "", input_text: str = "", name: str = "") -> None:
        """Show ``layer``'s settings (None: the input row or nothing selected, with ``input_text``).

        ``name`` is the layer's displayed name (its automatic name when ``layer.name`` is empty).
        """
        self._loading = True
        try:
            kind = layer.kind if layer is not None else None
            used = FIELDS.get(kind, ())
            self.setTitle(f"{name or layer.name or 'new layer'} ({kind})" if layer is not None else "Layer settings")
            self._help.setText(KIND_HELP.get(kind, input_text or "Select a layer to change its settings."))
            self._place(("name", *used) if layer is not None else ())
            if layer is None:
                self._shape.setText("")
                return
            self.name_edit.setText(layer.name)
            self._labels["size"].setText("Filters" if kind == "conv" else "Units")
            if isinstance(layer.size, int):
                self.size_spin.setValue(max(1, layer.size))
            if isinstance(layer.kernel, int):
                self.kernel_spin.setValue(max(1, layer.kernel))
            if isinstance(layer.stride, int):
                self.stride_spin.setValue(max(1, layer.stride))
            self.padding_combo.setCurrentText(str(layer.padding))
            self.activation_combo.clear()
            choices = list(ACTIVATIONS) if kind == "activation" else [NO_ACTIVATION, *ACTIVATIONS]
            self.activation_combo.addItems(choices)
            self.activation_combo.setCurrentText(layer.activation or NO_ACTIVATION)
            if isinstance(layer.rate, float | int):
                self.rate_spin.setValue(float(layer.rate))
            self._shape.setText(shape_text)
        finally:
            self._loading = False

    def set_shape_text(self, text: str) -> None:
        """The selected layer's output shape and formula (or why it has none)."""
        self._shape.setText(text)

    def _emit(self, field: str, value: object) -> None:
        if not self._loading:
            self.field_edited.emit(field, value)

    def _name_done(self) -> None:
        self._emit("name", self.name_edit.text().strip())

    def _padding_done(self, *_args) -> None:
        value = parse_padding(self.padding_combo.currentText())
        if value is not None:
            self._emit("padding", value)

    def _activation_done(self, *_args) -> None:
        text = self.activation_combo.currentText()
        self._emit("activation", None if text == NO_ACTIVATION else text)

