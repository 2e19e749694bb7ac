"""The model editor: a Keras-style summary table of a draft spec, checked live on every edit.

The user edits a *draft*; every edit re-runs :func:`cnnviz.models.infer_shapes`, so an impossible
layer turns its row red with the engine's message ("layer 1 'conv1': kernel 29 is larger than its
28x28 input ...") while the table keeps showing the draft. Only a valid draft can be applied, which
emits ``spec_applied(spec)``; the main window confirms and calls ``session.set_spec`` (training resets).

Rows are addressed by *layer index* (0 = the first layer); the table's row 0 is the input.
"""
from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSplitter,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnnviz.errors import SpecError
from cnnviz.gui.widgets.layer_dialog import NEW_LAYERS, LayerForm, error_layer_index, layer_names, settings_text
from cnnviz.models import LAYER_KINDS, LayerSpec, ModelSpec, dense, image_shape, infer_shapes, summarize
from cnnviz.models.files import read_model_file, write_model_file
from cnnviz.presets import PRESETS

COLUMNS = ("Layer", "Type", "Settings", "Output shape", "Trainable", "Non-trainable", "Memory/image")
ERROR_BACKGROUND, ERROR_TEXT = QColor("#f8d7da"), QColor("#58151c")
UNDO_LIMIT = 100


def _kb(n_bytes: int) -> str:
    kb = n_bytes / 1024
    return f"{kb:,.2f} KB" if kb < 1 else f"{kb:,.1f} KB"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


def _same(a: ModelSpec, b: ModelSpec) -> bool:
    try:
        return a.named() == b.named()
    except SpecError:
        return a == b


def _button(text: str, tip: str, slot) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    return button


class ModelEditor(QWidget):
    """Edit the layers of a model; ``spec_applied(ModelSpec)`` when the user applies a valid draft."""

    spec_applied = Signal(object)

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._applied: ModelSpec = session.spec
        self._layers: list[LayerSpec] = list(session.spec.layers)
        self._input_shape = tuple(session.spec.input_shape)
        self._num_classes = session.spec.num_classes
        self._undo: list[ModelSpec] = []
        self._error = ""
        self._error_row: int | None = None
        self._details: list[str] = []  # each layer's shape formula, for the form and tooltips
        self._summary = None  # the draft's ModelSummary when it is valid
        self._error_icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical)
        self._build()
        session.spec_changed.connect(self._on_spec_changed)
        session.data_changed.connect(self._on_data_changed)
        self._refresh()

    # -- layout ------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.preset_combo = QComboBox()
        self.preset_combo.addItem("Start from preset...")
        for name, preset in PRESETS.items():
            self.preset_combo.addItem(f"{name}: {preset.title}", name)
        self.preset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset_combo.setMinimumContentsLength(22)  # the titles are long; the popup shows them whole
        self.preset_combo.setToolTip("Replace the draft with a tutorial's model (Undo brings the draft back)")
        self.preset_combo.activated.connect(self._preset_chosen)
        load = _button("Load model...", "Read a model from a JSON file", self._ask_load)
        save = _button("Save model...", "Write the draft model to a JSON file", self._ask_save)
        self.undo_button = _button("Undo", "Undo the last edit (Ctrl+Z)", self.undo)
        top = QHBoxLayout()
        for w in (self.preset_combo, load, save):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.undo_button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)  # edits go through the form
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 10)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("The model, layer by layer, for one image. Select a layer to edit it")
        self.table.currentCellChanged.connect(lambda *_: self._show_form())
        self.table.cellDoubleClicked.connect(lambda *_: self.form.setFocus())

        add = QToolButton()
        add.setText("Add layer")
        add.setToolTip("Insert a layer after the selected one")
        add.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(add)
        for kind in LAYER_KINDS:
            menu.addAction(kind, lambda k=kind: self.add_layer(k, self._insert_after()))
        add.setMenu(menu)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        for text, keys, slot in (
            ("Remove", "Delete", lambda: self.remove_layer(self._current())),
            ("Move up", "Ctrl+Up", lambda: self.move_layer(self._current(), -1)),
            ("Move down", "Ctrl+Down", lambda: self.move_layer(self._current(), 1)),
        ):
            buttons.addWidget(_button(text, f"{text} the selected layer ({keys})", slot))
            # Keys only while the table has focus: in the form, Delete and Ctrl+Up edit text.
            QShortcut(QKeySequence(keys), self.table, slot, context=Qt.ShortcutContext.WidgetShortcut)
        buttons.addStretch(1)
        QShortcut(QKeySequence.StandardKey.Undo, self, self.undo,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

        self.form = LayerForm()
        self.form.field_edited.connect(lambda f, v: self.set_layer_field(self._current(), f, v))
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Vertical)  # the form under the table: the table needs the width
        split.addWidget(left)
        split.addWidget(self.form)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setChildrenCollapsible(False)

        self.message = QLabel()
        self.message.setObjectName("modelMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.totals = QLabel()
        self.totals.setObjectName("modelTotals")
        self.totals.setWordWrap(True)
        self.apply_button = _button("Apply (resets training)",
                                    "Use this model: training starts again from new random weights", self.apply)
        self.apply_button.setObjectName("applyModel")
        bottom = QHBoxLayout()
        bottom.addWidget(self.totals, 1)
        bottom.addWidget(self.apply_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        layout.addWidget(self.message)
        layout.addLayout(bottom)

    # -- the draft ---------------------------------------------------------------------------------
    def draft_spec(self) -> ModelSpec:
        """The model being edited (may be invalid: see :meth:`error_text`)."""
        return ModelSpec(tuple(self._layers), self._input_shape, self._num_classes)

    def error_text(self) -> str:
        """Why the draft cannot be built ("" when it is valid)."""
        return self._error

    def error_row(self) -> int | None:
        """The layer index the error is about (highlighted red), or None."""
        return self._error_row

    def is_dirty(self) -> bool:
        """True when the draft differs from the applied model."""
        return not _same(self.draft_spec(), self._applied)

    def _set_draft(self, spec: ModelSpec, select: int | None = None, undoable: bool = True) -> None:
        if undoable:
            self._undo = [*self._undo[-UNDO_LIMIT + 1:], self.draft_spec()]
        self._layers = list(spec.layers)
        self._input_shape, self._num_classes = tuple(spec.input_shape), spec.num_classes
        self._refresh(select)

    def set_layer_field(self, row: int, field: str, value: object) -> None:
        """Change one setting of layer ``row`` (what the form does on an edit)."""
        if not 0 <= row < len(self._layers):
            return
        layer = self._layers[row]
        if field not in {f.name for f in dataclasses.fields(LayerSpec)} or field == "kind":
            raise ValueError(f"unknown layer field {field!r}")
        if getattr(layer, field) == value and type(getattr(layer, field)) is type(value):
            return  # e.g. focus leaving an unchanged box
        layers = list(self._layers)
        layers[row] = dataclasses.replace(layer, **{field: value})
        self._set_draft(dataclasses.replace(self.draft_spec(), layers=tuple(layers)), row)

    def add_layer(self, kind: str, after_row: int) -> int:
        """Insert a new ``kind`` layer after layer ``after_row`` (-1: first); returns its index."""
        if kind not in NEW_LAYERS:
            raise ValueError(f"unknown layer kind {kind!r}; choose one of {', '.join(LAYER_KINDS)}")
        at = max(0, min(after_row + 1, len(self._layers)))
        layers = list(self._layers)
        layers.insert(at, NEW_LAYERS[kind])
        self._set_draft(dataclasses.replace(self.draft_spec(), layers=tuple(layers)), at)
        return at

    def remove_layer(self, row: int) -> None:
        """Delete layer ``row``."""
        if 0 <= row < len(self._layers):
            layers = self._layers[:row] + self._layers[row + 1:]
            select = min(row, len(layers) - 1) if layers else None
            self._set_draft(dataclasses.replace(self.draft_spec(), layers=tuple(layers)), select)

    def move_layer(self, row: int, delta: int) -> int:
        """Move layer ``row`` by ``delta`` places (clamped); returns its new index."""
        if not 0 <= row < len(self._layers):
            return row
        to = max(0, min(row + delta, len(self._layers) - 1))
        if to != row:
            layers = list(self._layers)
            layers.insert(to, layers.pop(row))
            self._set_draft(dataclasses.replace(self.draft_spec(), layers=tuple(layers)), to)
        return to

    def undo(self) -> None:
        """Go back to the draft before the last edit."""
        if self._undo:
            spec = self._undo.pop()
            self._set_draft(spec, self._current() if self._current() >= 0 else None, undoable=False)

    def load_preset(self, name: str) -> None:
        """Replace the draft with preset ``name``'s model, sized to the data's classes."""
        spec, note = self._for_data(PRESETS[name].spec), ""
        classes = len(self.session.class_names)
        if spec.num_classes != classes:
            spec = spec.with_num_classes(classes)
            note = f" (its output layer set to {classes} units for the {classes} classes of the data)"
        self._set_draft(spec)
        self._info(f"Loaded the {name} model{note}. Apply it to train it.")

    def _for_data(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` taking the loaded data's image size (a preset or model file may be written for another);
        whether its layers allow that size shows in the table like any other problem."""
        data = self.session.data
        return spec.with_input_shape(image_shape(data)) if data is not None and len(data.test) else spec

    def apply(self) -> bool:
        """Emit ``spec_applied`` with the draft if it is valid; returns whether it did."""
        if self._error:
            return False
        self.spec_applied.emit(self.draft_spec())
        return True

    # -- files -------------------------------------------------------------------------------------
    def save_model(self, path: str) -> bool:
        """Write the draft as JSON (:meth:`ModelSpec.to_dict`); False (and a message) if it fails."""
        try:
            write_model_file(path, self.draft_spec())
        except OSError as exc:
            return self._fail(f"could not write {path}: {exc.strerror or exc}")
        self._info(f"Saved the model to {path}")
        return True

    def load_model(self, path: str) -> bool:
        """Read a model JSON file into the draft; False (and a message) for a bad file."""
        try:  # a regular JSON file of sane size and nesting only (a FIFO would freeze the window)
            spec = self._for_data(read_model_file(path))
        except SpecError as exc:
            return self._fail(str(exc))
        self._set_draft(spec)
        self._info(f"Loaded the model from {path}. Apply it to train it.")
        return True

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.json", "Model files (*.json)")
        if path:
            self.save_model(path)

    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", "Model files (*.json);;All files (*)")
        if path:
            self.load_model(path)

    def _fail(self, text: str) -> bool:
        self._show_message(text[0].upper() + text[1:], error=True)
        self.session.message.emit("error", text)
        return False

    def _info(self, text: str) -> None:
        self._show_message(text, error=False)

    def _show_message(self, text: str, error: bool) -> None:
        color = "#c62828" if error else self.palette().text().color().name()
        self.message.setStyleSheet(f"color: {color};")
        self.message.setText(text)

    # -- session -----------------------------------------------------------------------------------
    def _on_spec_changed(self, spec: ModelSpec) -> None:
        dirty = self.is_dirty() and not _same(self.draft_spec(), spec)
        self._applied = spec
        if _same(self.draft_spec(), spec):
            self._refresh(self._current() if self._current() >= 0 else None)
            return
        self._set_draft(spec, undoable=dirty)
        if dirty:
            self._info("The model was replaced; your unapplied edits are gone (Undo brings them back).")

    def _on_data_changed(self, _data) -> None:
        self._refresh()  # the data decides the input shape and class count the model must match

    # -- live check and table ----------------------------------------------------------------------
    def _check(self, spec: ModelSpec) -> tuple[list, str, int | None]:
        """(shape rows of the layers that could be inferred, error text, error layer index)."""
        self._summary = None
        try:
            self._summary = summarize(spec)
            rows = self._summary.rows
        except SpecError as exc:
            error = str(exc)
            bad = error_layer_index(error, spec)
            rows = []
            if bad is not None and bad > 0:
                # The layers before the bad one still have shapes: infer them with a stand-in output layer.
                head = ModelSpec((*spec.layers[:bad], dense(spec.num_classes)), spec.input_shape, spec.num_classes)
                try:
                    rows = infer_shapes(head)[:bad]
                except SpecError:
                    rows = []
            return list(rows), error, bad
        data = self.session.data
        if data is not None:
            image = tuple(int(v) for v in data.test.images.shape[1:])
            if len(data.test) and image != tuple(spec.input_shape):
                return list(rows), (f"the model takes {_shape(spec.input_shape)} inputs but the data's images "
                                    f"are {_shape(image)}"), None
            if len(data.class_names) != spec.num_classes:
                return list(rows), (f"the model has {spec.num_classes} outputs but the data has "
                                    f"{len(data.class_names)} classes"), len(spec.layers) - 1
        return list(rows), "", None

    def _refresh(self, select: int | None = None) -> None:
        if select is None and self._current() >= 0:
            select = self._current()
        spec = self.draft_spec()
        rows, self._error, self._error_row = self._check(spec)
        names = layer_names(spec)
        self._details = [r.detail for r in rows]
        table = self.table
        table.blockSignals(True)
        table.setRowCount(len(spec.layers) + 1)
        c, h, w = spec.input_shape
        self._set_row(0, ("input", "input", f"{h}x{w} image, {c} channel{'s' if c != 1 else ''}",
                          _shape(spec.input_shape), "", "", _kb(4 * c * h * w)), "The image the model sees")
        for i, layer in enumerate(spec.layers):
            if i < len(rows):
                r = rows[i]
                cells = (r.name, r.kind, settings_text(layer), _shape(r.output_shape), f"{r.trainable:,}",
                         f"{r.non_trainable:,}", _kb(r.activation_bytes))
                tip = r.detail
            else:
                cells = (names[i], str(layer.kind), settings_text(layer), "?", "", "", "")
                tip = self._error if i == self._error_row else "Fix the layer marked red to see this shape"
            self._set_row(i + 1, cells, tip, error=i == self._error_row)
        table.blockSignals(False)
        if select is not None and 0 <= select < len(spec.layers):
            table.selectRow(select + 1)
        self._show_form()

        if self._error:
            self._show_message(self._error[0].upper() + self._error[1:], error=True)
            self.totals.setText("Fix the layer marked red to see the totals")
        else:
            summary = self._summary
            self._info("Unapplied changes: apply the model to train it." if self.is_dirty() else
                       "This is the model in use. Edit a layer, add one or start from a preset.")
            self.totals.setText(f"Total params: {summary.total:,} (trainable {summary.trainable:,}, non-trainable "
                                f"{summary.non_trainable:,}) · activations {_kb(summary.activation_bytes)} per image")
        self.apply_button.setEnabled(not self._error)
        self.undo_button.setEnabled(bool(self._undo))

    def _set_row(self, row: int, cells: tuple[str, ...], tip: str, error: bool = False) -> None:
        for col, text in enumerate(cells):
            item = self.table.item(row, col)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(row, col, item)
            item.setText(text)
            item.setToolTip(tip)
            if col >= 4:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.setBackground(QBrush(ERROR_BACKGROUND) if error else QBrush())
            item.setForeground(QBrush(ERROR_TEXT) if error else QBrush())
            if col == 0:  # an icon too: the red background is hidden while the row is selected
                item.setIcon(self._error_icon if error else QIcon())

    def row_is_error(self, row: int) -> bool:
        """Whether layer ``row``'s table row is highlighted as the error."""
        item = self.table.item(row + 1, 0)
        return item is not None and item.background().color() == ERROR_BACKGROUND

    def _current(self) -> int:
        """The selected layer index (-1 for the input row or no selection)."""
        return self.table.currentRow() - 1

    def _insert_after(self) -> int:
        # Nothing selected: before the output layer, where new hidden layers usually go.
        return self._current() if self.table.currentRow() >= 0 else len(self._layers) - 2

    def _show_form(self) -> None:
        i = self._current()
        if not 0 <= i < len(self._layers):
            c, h, w = self._input_shape
            self.form.set_layer(None, input_text=f"The input: {h}x{w} images with {c} channel(s), set by the data. "
                                                 "Select a layer to change its settings.")
            return
        if i == self._error_row:
            shape = self._error
        elif i < len(self._details):
            shape = "Output: " + self._details[i]
        else:
            shape = "Fix the layer marked red to see this layer's shape."
        self.form.set_layer(self._layers[i], shape, name=layer_names(self.draft_spec())[i])

    def _preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        self.preset_combo.setCurrentIndex(0)
        if name:
            self.load_preset(name)
