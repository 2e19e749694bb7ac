"""The experiment panel: a form over the Recipe (data, model preset, optimizer, training loop).

The panel only edits and reports: it emits requests (dataset, preset, model overrides) and edited
recipes, and the main window loads data, builds models and forwards changes to the trainer.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QFrame, QGroupBox,
    QHBoxLayout, QLabel, QScrollArea, QSpinBox, QVBoxLayout, QWidget,
)

from cnnviz.config import RANGES, Recipe
from cnnviz.data.sources import DATASETS as DOWNLOADS
from cnnviz.errors import CnnvizError
from cnnviz.models import ACTIVATIONS, summarize
from cnnviz.presets import PRESETS

_OPEN, _FOLDER = "open-folder", "folder"  # dataset combo keys that are not datasets
CUSTOM = "custom"  # the preset box entry of a model no preset has (an opened run)
_TRAIN_SIZES = {"sample": 4000, "mnist": 60000, "fashion": 60000, "kmnist": 60000, "cifar10": 50000}  # before validation
_GORNER = "lr = min + (max - min) * exp(-step / decay), with max the learning rate above"


class _FloatSpin(QDoubleSpinBox):
    """A float spin box without trailing zeros; with no `step`, steps by a tenth of the current decade."""

    def __init__(self, low: float, high: float, decimals: int, tip: str, step: float | None = None) -> None:
        super().__init__(decimals=decimals, toolTip=tip)
        self.setRange(low, high)  # after the decimals, which round the range
        if step is None:  # rates span decades: 0.001 steps by 0.0001, 0.1 by 0.01
            self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        else:
            self.setSingleStep(step)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.{self.decimals()}f}".rstrip("0").rstrip(".") or "0"


def _bounds(key: str, decimals: int | None = None, scale: int = 1) -> tuple:
    """A spin box's (minimum, maximum) for the recipe setting ``key`` (``"train.epochs"``), from the one
    table of ranges (`cnnviz.config.RANGES`); an open end moves in by the box's smallest step."""
    r = RANGES[key]
    step = 1 if decimals is None else 10.0**-decimals
    low = r.low * scale + (step if r.low_open else 0)
    high = r.high * scale - (step if r.high_open else 0)
    return (round(low), round(high)) if decimals is None else (low, high)


def _spin(low: int, high: int, tip: str, suffix: str = "", step: int = 1) -> QSpinBox:
    return QSpinBox(minimum=low, maximum=high, singleStep=step, suffix=suffix, toolTip=tip,
                    groupSeparatorShown=high >= 10000)


def _combo(items: list[tuple[str, object]], tip: str, name: str = "") -> QComboBox:
    # Long item texts must not widen the dock; the popup still shows them in full.
    w = QComboBox(toolTip=tip, objectName=name, minimumContentsLength=12,
                  sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    for text, data in items:
        w.addItem(text, data)
    w.view().setMinimumWidth(max(w.fontMetrics().horizontalAdvance(t) for t, _ in items) + 32)
    return w


def _pair(first: QWidget, second: QWidget, stretch: int) -> QWidget:
    """Two controls in one form field; `stretch` says which of them (0 or 1) takes the spare width."""
    row = QWidget(toolTip=first.toolTip())  # the row label explains the pair with the first control's tip
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(first, 1 - stretch)
    lay.addWidget(second, stretch)
    return row


def _put(widget: QWidget, value: object) -> None:
    """Show `value` in a combo (by item data), check box or spin box."""
    if isinstance(widget, QComboBox):
        i = widget.findData(value)
        if i >= 0:
            widget.setCurrentIndex(i)
    elif isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    else:
        widget.setValue(value)


def _exact(spin: QDoubleSpinBox, previous: float) -> float:
    """The spin's value, or `previous` when the spin shows it rounded (keeps round trips exact)."""
    value = spin.value()
    return previous if abs(value - previous) <= 0.5 * 10.0 ** -spin.decimals() else value


def _preset_tip(preset) -> str:
    if preset.reported_note:
        reported = preset.reported_note
    elif preset.reported_accuracy is not None:
        reported = f"{preset.reported_accuracy:.2%}"
    else:
        reported = "not reported"
    try:
        params = f"{summarize(preset.spec).total:,}"
    except CnnvizError:
        params = "unknown"
    return f"{preset.title}\nSource: {preset.source}\nReported test accuracy: {reported}\nParameters: {params}"


class ExperimentPanel(QWidget):
    """Form over the session's recipe, the model preset and its overrides.

    User edits of the recipe emit ``recipe_edited`` (valid recipes only; spin boxes debounced), plus
    ``learning_rate_changed``/``batch_size_changed`` for the two settings a running trainer accepts.
    Dataset, preset and override choices only emit requests: the main window loads the data or builds
    the model and then updates the session, whose ``recipe_changed`` refills the form silently.
    """

    dataset_requested = Signal(str, object)  # dataset key, data folder (IDX files or class subfolders) or None
    preset_requested = Signal(str)
    model_override_requested = Signal(object, object)  # activation or None, dropout rate or None
    recipe_edited = Signal(object)  # Recipe, valid
    learning_rate_changed = Signal(float)
    batch_size_changed = Signal(int)

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._valid: Recipe = session.recipe  # the last valid recipe: what recipe() falls back to
        self._emitted: Recipe = session.recipe  # what the window last heard, to emit only real changes
        self._filling = False  # True while the program fills the form: no signals
        self._running = False
        self._folder: str | None = None
        self._dataset_index = 0
        self._timer = QTimer(self, singleShot=True, interval=150)  # coalesces spin-box bursts
        self._timer.timeout.connect(self._flush)

        self._labels: list[QLabel] = []
        content = QWidget()
        column = QVBoxLayout(content)
        column.addWidget(self._data_group())
        column.addWidget(self._model_group())
        column.addWidget(self._optimizer_group())
        column.addWidget(self._training_group())
        column.addStretch(1)
        self._column = column
        width = max(label.sizeHint().width() for label in self._labels)
        for label in self._labels:  # one label column across the groups, so the fields line up
            label.setMinimumWidth(width)
        scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame,
                             horizontalScrollBarPolicy=Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        # Below the scroll area, so it shows whichever setting is scrolled into view.
        self.message_label = QLabel(objectName="recipeMessage", wordWrap=True, visible=False)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll, 1)
        outer.addWidget(self.message_label)

        self._controls = [w for w in content.findChildren(QWidget)
                          if isinstance(w, (QComboBox, QAbstractSpinBox, QCheckBox))]
        special = (self.dataset_combo, self.preset_combo, self.activation_combo, self.dropout_check,
                   self.dropout_spin)
        for w in self._controls:
            if w in special:
                continue
            if isinstance(w, QComboBox):
                w.currentIndexChanged.connect(self._edited)
            elif isinstance(w, QCheckBox):
                w.toggled.connect(self._edited)
            else:
                w.setKeyboardTracking(False)  # typing "0.003" must not pass through 0.0 and 0.00
                w.valueChanged.connect(lambda *_: self._edited(later=True))
        self.dropout_spin.setKeyboardTracking(False)
        self.dataset_combo.currentIndexChanged.connect(self._on_dataset)
        self.preset_combo.currentIndexChanged.connect(self._on_preset)
        self.activation_combo.currentIndexChanged.connect(self._on_override)
        self.dropout_check.toggled.connect(self._on_override)
        self.dropout_spin.valueChanged.connect(self._on_override)
        session.recipe_changed.connect(self.set_recipe)
        session.spec_changed.connect(self._on_spec)
        self.set_recipe(session.recipe)
        self._on_spec(session.spec)

    # -- building --------------------------------------------------------------------------------------
    def _group(self, title: str, rows: list[tuple[str, QWidget]]) -> tuple[QGroupBox, QFormLayout]:
        box = QGroupBox(title)
        form = QFormLayout(box, fieldGrowthPolicy=QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for text, field in rows:
            label = QLabel(text, toolTip=field.toolTip())
            label.setBuddy(field)
            form.addRow(label, field)
            self._labels.append(label)
        return box, form

    def _data_group(self) -> QGroupBox:
        items: list[tuple[str, object]] = [("MNIST sample (embedded, 4,000/1,000)", "sample"),
                                           ("MNIST (download, 11 MB)", "mnist"),
                                           ("Fashion-MNIST (download, 30 MB)", "fashion")]
        if "kmnist" in DOWNLOADS:
            items.append(("KMNIST (download)", "kmnist"))
        if "cifar10" in DOWNLOADS:
            items.append(("CIFAR-10 (colour, download, 170 MB)", "cifar10"))
        self.dataset_combo = _combo(items + [("Open data folder…", _OPEN)], "The images to train on: the "
                                    "embedded MNIST sample, a dataset downloaded once into the cache, or a "
                                    "folder holding the four IDX files or images (PNG, JPEG, BMP, GIF; gray "
                                    "or colour) in one subfolder per class: train/<class>/ and test/<class>/, "
                                    "or <class>/ alone (every 5th image of a class is then a test image). "
                                    "Images are brought to the most common size, at most 64 pixels a side.",
                                    "datasetCombo")
        self.subset_check = QCheckBox("Use", toolTip="Train on a stratified subset (the same share of every "
                                      "class) to see how a model copes with little data.")
        self.subset_spin = _spin(*_bounds("data.train_subset"), "How many training examples to keep.", step=500)
        self.validation_combo = _combo(
            [("None", "none"), ("Hold out part of train", "train"), ("20% of test (stratified)", "test")],
            "Where the validation images come from: none, held out from the training set, "
            "or a stratified 20% of the test set (the test accuracy then uses the other 80%).")
        self.fraction_spin = _spin(*_bounds("data.validation_fraction", scale=100), "Share of the training set held out for validation.", " %")
        self.norm_combo = _combo([("Scale to [0, 1]", "scale"), ("Standardize (mean 0, std 1)", "standardize")],
                                 "Scale divides pixels by 255; standardize subtracts the training mean and "
                                 "divides by the training standard deviation.")
        self.ovr_check = QCheckBox("Class", toolTip="Make the task binary: this class against all the others "
                                   "(the six-vs-not-six notebook); the model gets two outputs.")
        self.ovr_spin = _spin(*_bounds("data.one_vs_rest"), "The class to tell apart from all the others (a digit for MNIST).")
        box, self._data_form = self._group("Data", [
            ("Dataset", self.dataset_combo), ("Train subset", _pair(self.subset_check, self.subset_spin, 1)),
            ("Validation", self.validation_combo), ("Held out", self.fraction_spin), ("Pixels", self.norm_combo),
            ("One vs rest", _pair(self.ovr_check, self.ovr_spin, 1)),
        ])
        # Under the dataset chooser: why the loaded data cannot be trained with the model (set by the window).
        self.data_problem_label = QLabel(objectName="dataProblem", wordWrap=True, visible=False,
                                         styleSheet="QLabel { color: #c62828; }",
                                         toolTip="Why the model cannot train on this data; choose another "
                                                 "model (preset) or other data.")
        self.data_problem_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._data_form.insertRow(1, self.data_problem_label)
        return box

    def _model_group(self) -> QGroupBox:
        self.preset_combo = _combo([(f"{n} — {p.title}", n) for n, p in PRESETS.items()],
                                   "A tutorial's model with its training recipe.", "presetCombo")
        for i, preset in enumerate(PRESETS.values()):
            self.preset_combo.setItemData(i, _preset_tip(preset), Qt.ItemDataRole.ToolTipRole)
        self.activation_combo = _combo([("As preset", None)] + [(a, a) for a in ACTIVATIONS],
                                       "Replace every hidden activation of the model (the logits layer keeps "
                                       "none); try sigmoid to see why ReLU won.")
        self.dropout_check = QCheckBox("Set", toolTip="Give every dropout layer of the model the same rate.")
        self.dropout_spin = _FloatSpin(0.0, 0.95, 2, "Share of activations dropped at random "
                                       "while training (none at test time).", 0.05)
        self.dropout_spin.setValue(0.5)
        return self._group("Model", [("Preset", self.preset_combo), ("Activation", self.activation_combo),
                                     ("Dropout", _pair(self.dropout_check, self.dropout_spin, 1))])[0]

    def _optimizer_group(self) -> QGroupBox:
        self.optimizer_combo = _combo(
            [("SGD", "sgd"), ("Adam", "adam"), ("Adadelta", "adadelta"), ("RMSprop", "rmsprop")],
            "How the weights follow the gradient: plain SGD, or an adaptive method that scales each "
            "weight's step.")
        self.lr_spin = _FloatSpin(*_bounds("optimizer.lr", 6), 6, "Step size of each update (the maximum for a schedule); can be "
                                 "changed while training. Too large (e.g. 10) makes the loss diverge.")
        self.momentum_spin = _FloatSpin(*_bounds("optimizer.momentum", 3), 3, "Share of the previous update added to the "
                                        "next one (SGD and RMSprop); smooths and speeds up descent.", 0.05)
        self.nesterov_check = QCheckBox("Nesterov", toolTip="Look ahead along the momentum before taking the "
                                        "gradient (SGD only; needs momentum above 0).")
        self.schedule_combo = _combo([("Constant", "constant"), ("Step decay", "step"),
                                      ("Exponential decay", "exponential"), ("Görner", "gorner")],
                                     "How the learning rate changes during training. Görner: " + _GORNER)
        self.step_spin = _spin(*_bounds("optimizer.step_epochs"), "Multiply the learning rate by the factor every this many epochs.",
                               " epoch")
        self.step_spin.valueChanged.connect(lambda n: self.step_spin.setSuffix(" epoch" if n == 1 else " epochs"))
        self.gamma_spin = _FloatSpin(*_bounds("optimizer.gamma", 4), 4, "The factor the learning rate is multiplied by.", 0.05)
        self.decay_spin = _spin(*_bounds("optimizer.decay_steps"), "Batches over which the learning rate decays (exponential: "
                                "per factor; Görner: per e-fold).", " batches", 100)
        self.lr_min_spin = _FloatSpin(*_bounds("optimizer.lr_min", 6), 6, "The learning rate Görner's schedule decays towards: " + _GORNER)
        self.formula_label = QLabel(wordWrap=True, styleSheet="color: #555;",
                                    toolTip="The learning rate as a function of the batch (step) or epoch.")
        box, self._opt_form = self._group("Optimizer", [
            ("Optimizer", self.optimizer_combo), ("Learning rate", self.lr_spin),
            ("Momentum", _pair(self.momentum_spin, self.nesterov_check, 0)), ("Schedule", self.schedule_combo),
            ("Every", self.step_spin), ("Multiply by", self.gamma_spin), ("Minimum lr", self.lr_min_spin),
            ("Decay over", self.decay_spin),
        ])
        self._opt_form.addRow(self.formula_label)
        return box

    def _training_group(self) -> QGroupBox:
        self.epochs_spin = _spin(*_bounds("train.epochs"), "Passes over the training set.")
        self.batch_spin = _spin(*_bounds("train.batch_size"), "Images per update; can be changed while training (smaller: "
                                "noisier, more updates per epoch).", step=16)
        self.seed_spin = _spin(*_bounds("train.seed"), "Seeds the initial weights, the shuffling and dropout: the "
                               "same seed gives the same run.")
        self.device_combo = _combo([("Auto", "auto"), ("CPU", "cpu"), ("CUDA GPU", "cuda"),
                                    ("Apple GPU (MPS)", "mps")],
                                   "Where training runs; auto picks a CUDA GPU, then an Apple GPU, then the CPU.")
        for key, ok in (("cuda", torch.cuda.is_available()), ("mps", torch.backends.mps.is_available())):
            if not ok:
                item = self.device_combo.model().item(self.device_combo.findData(key))
                item.setEnabled(False)
                item.setToolTip("Not available on this computer.")
        return self._group("Training", [("Epochs", self.epochs_spin), ("Batch size", self.batch_spin),
                                        ("Seed", self.seed_spin), ("Device", self.device_combo)])[0]

    # -- public API ------------------------------------------------------------------------------------
    def recipe(self) -> Recipe:
        """The recipe the form shows, or the last valid one when the form's settings do not go together."""
        checked = self._check()
        return checked if checked is not None else self._valid

    def set_recipe(self, recipe: Recipe) -> None:
        """Fill the form from `recipe` without emitting edits (also called on session.recipe_changed)."""
        if recipe == self._valid and self._check() == recipe:
            self._emitted = recipe
            return  # the window echoing our own edit: keep the form (and any pending edit) as it is
        self._timer.stop()
        d, o, t = recipe.data, recipe.optimizer, recipe.train
        with self._quiet():
            self._fill_dataset(d.dataset, d.data_dir)
            for widget, value in [
                (self.subset_check, d.train_subset is not None), (self.subset_spin, d.train_subset or 4000),
                (self.validation_combo, d.validation), (self.fraction_spin, round(d.validation_fraction * 100)),
                (self.norm_combo, d.normalization), (self.ovr_check, d.one_vs_rest is not None),
                (self.ovr_spin, 6 if d.one_vs_rest is None else d.one_vs_rest), (self.optimizer_combo, o.name),
                (self.lr_spin, o.lr), (self.momentum_spin, o.momentum), (self.nesterov_check, o.nesterov),
                (self.schedule_combo, o.schedule), (self.step_spin, o.step_epochs), (self.gamma_spin, o.gamma),
                (self.decay_spin, o.decay_steps), (self.lr_min_spin, o.lr_min), (self.epochs_spin, t.epochs),
                (self.batch_spin, t.batch_size), (self.seed_spin, t.seed), (self.device_combo, t.device),
            ]:
                _put(widget, value)
        self._valid = self._emitted = recipe  # what the program sets is authoritative
        self._sync()
        self._check()

    def set_preset(self, name: str) -> None:
        """Show preset `name` (and no overrides) without emitting."""
        with self._quiet():
            if name not in PRESETS and self.preset_combo.findData(CUSTOM) < 0:
                self.preset_combo.addItem("custom — the opened run's own model", CUSTOM)
                self.preset_combo.setItemData(self.preset_combo.count() - 1, "A model no tutorial preset has (an "
                                              "opened run or a model file); pick a preset to start over",
                                              Qt.ItemDataRole.ToolTipRole)
            _put(self.preset_combo, name if name in PRESETS else CUSTOM)
        self.set_overrides(None, None)

    def set_overrides(self, activation: str | None, dropout: float | None) -> None:
        """Show the model overrides without emitting."""
        with self._quiet():
            _put(self.activation_combo, activation)
            _put(self.dropout_check, dropout is not None)
            if dropout is not None:
                _put(self.dropout_spin, dropout)
        self._sync()

    def set_dataset(self, dataset: str, data_dir: str | os.PathLike[str] | None = None) -> None:
        """Show `dataset` (or the data folder `data_dir`) as chosen without emitting."""
        with self._quiet():
            self._fill_dataset(dataset, data_dir)
        self._check()

    def set_data_problem(self, text: str) -> None:
        """Show why the loaded data and the model do not go together under the dataset chooser ("" hides it)."""
        self.data_problem_label.setText(text)
        self.data_problem_label.setVisible(bool(text))

    def data_problem(self) -> str:
        """The message under the dataset chooser ("" when there is none)."""
        return self.data_problem_label.text() if not self.data_problem_label.isHidden() else ""

    def add_section(self, widget: QWidget) -> None:
        """Another group below the recipe's (the comparison's setup), in the same scroll area."""
        self._column.insertWidget(self._column.count() - 1, widget)

    def set_running(self, running: bool) -> None:
        """Lock everything but learning rate and batch size while a run trains."""
        self._running = bool(running)
        self._sync()

    def choose_folder(self) -> str | None:
        """Ask for a data folder (IDX files, or images in class subfolders); None when cancelled."""
        start = self._folder or os.path.expanduser("~")
        folder = QFileDialog.getExistingDirectory(
            self, "Open a data folder: four IDX files, or images in class subfolders", start)
        return folder or None

    # -- reacting to edits -----------------------------------------------------------------------------
    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Fill controls without their change handlers emitting anything."""
        filling, self._filling = self._filling, True
        try:
            yield
        finally:
            self._filling = filling

    def _edited(self, *_args, later: bool = False) -> None:
        if self._filling:
            return
        self._sync()
        if later:  # spin boxes: the message follows at once, the signal waits for the burst to end
            self._check()
            self._timer.start()
        else:
            self._flush()

    def _flush(self) -> None:
        self._timer.stop()
        recipe = self._check()
        if recipe is None or recipe == self._emitted:
            return
        before, self._emitted = self._emitted, recipe
        if recipe.optimizer.lr != before.optimizer.lr:
            self.learning_rate_changed.emit(recipe.optimizer.lr)
        if recipe.train.batch_size != before.train.batch_size:
            self.batch_size_changed.emit(recipe.train.batch_size)
        self.recipe_edited.emit(recipe)

    def _on_dataset(self, index: int) -> None:
        if self._filling:
            return
        key = self.dataset_combo.itemData(index)
        if key == _OPEN:
            folder = self.choose_folder()
            with self._quiet():
                if folder:
                    self._fill_dataset(self._valid.data.dataset, folder)
                else:
                    self.dataset_combo.setCurrentIndex(self._dataset_index)
            if not folder:
                return
            key = _FOLDER
        self._dataset_index = self.dataset_combo.currentIndex()
        self._check()
        if key == _FOLDER:
            self.dataset_requested.emit(self._valid.data.dataset, self._folder)
        else:
            self.dataset_requested.emit(key, None)

    def _on_preset(self, index: int) -> None:
        if not self._filling:
            self.set_overrides(None, None)  # a preset comes as the tutorial wrote it
            self.preset_requested.emit(self.preset_combo.itemData(index))

    def _on_override(self, *_args) -> None:
        if self._filling:
            return
        self._sync()
        rate = self.dropout_spin.value() if self.dropout_check.isChecked() else None
        self.model_override_requested.emit(self.activation_combo.currentData(), rate)

    def _on_spec(self, spec) -> None:
        layers = spec.named().layers
        match = next((name for name, p in PRESETS.items() if p.spec.named().layers == layers), None)
        if match is not None and match != self.preset_combo.currentData():
            self.set_preset(match)  # e.g. a run opened from disk: show which tutorial model it is
        self._sync()

    # -- form <-> recipe -------------------------------------------------------------------------------
    def _fill_dataset(self, dataset: str, data_dir) -> None:
        combo = self.dataset_combo
        if data_dir:
            self._folder = os.fspath(data_dir)
            text = f"Folder: {os.path.basename(self._folder.rstrip(os.sep)) or self._folder}"
            i = combo.findData(_FOLDER)
            if i < 0:
                i = combo.count() - 1  # just above "Open data folder…"
                combo.insertItem(i, text, _FOLDER)
            combo.setItemText(i, text)
            combo.setItemData(i, self._folder, Qt.ItemDataRole.ToolTipRole)
            combo.setCurrentIndex(i)
        else:
            _put(combo, dataset)
        self._dataset_index = combo.currentIndex()

    def _form_recipe(self) -> Recipe:
        base = self._valid
        key = self.dataset_combo.currentData()
        folder = key == _FOLDER
        o = base.optimizer
        data = dataclasses.replace(
            base.data,
            dataset=base.data.dataset if folder else key, data_dir=self._folder if folder else None,
            train_subset=self.subset_spin.value() if self.subset_check.isChecked() else None,
            validation=self.validation_combo.currentData(), normalization=self.norm_combo.currentData(),
            one_vs_rest=self.ovr_spin.value() if self.ovr_check.isChecked() else None,
        )
        if self.fraction_spin.value() != round(base.data.validation_fraction * 100):
            data = dataclasses.replace(data, validation_fraction=self.fraction_spin.value() / 100)
        optimizer = dataclasses.replace(
            o, name=self.optimizer_combo.currentData(), lr=_exact(self.lr_spin, o.lr),
            momentum=_exact(self.momentum_spin, o.momentum), nesterov=self.nesterov_check.isChecked(),
            schedule=self.schedule_combo.currentData(), step_epochs=self.step_spin.value(),
            gamma=_exact(self.gamma_spin, o.gamma), decay_steps=self.decay_spin.value(),
            lr_min=_exact(self.lr_min_spin, o.lr_min),
        )
        train = dataclasses.replace(base.train, epochs=self.epochs_spin.value(),
                                    batch_size=self.batch_spin.value(), seed=self.seed_spin.value(),
                                    device=self.device_combo.currentData())
        return Recipe(data=data, optimizer=optimizer, train=train)

    def _check(self) -> Recipe | None:
        """Validate the form: show why it is invalid (None) or warnings; remember a valid recipe."""
        recipe = self._form_recipe()
        try:
            recipe.validate()
        except CnnvizError as exc:
            text = str(exc)
            self._show_message(f"{text[:1].upper()}{text[1:]}. Until this is fixed the last valid settings "
                               "stay in use.", error=True)
            return None
        self._valid = recipe
        self._show_message(" ".join(self._warnings(recipe)))
        return recipe

    def _warnings(self, recipe: Recipe) -> list[str]:
        d, notes = recipe.data, []
        total = None if d.data_dir else _TRAIN_SIZES.get(d.dataset)
        if total is not None and d.train_subset is not None:
            held = round(d.validation_fraction * total) if d.validation == "train" else 0
            if d.train_subset > total - held:
                after = f" after holding out {held:,} for validation" if held else ""
                notes.append(f"The train subset of {d.train_subset:,} is larger than the {total - held:,} "
                             f"training examples available{after}.")
        device = recipe.train.device
        item = self.device_combo.model().item(self.device_combo.findData(device))
        if item is not None and not item.isEnabled():
            notes.append(f"Device {device} is not available on this computer.")
        return notes

    def _show_message(self, text: str, error: bool = False) -> None:
        colours = ("#fdecea", "#8a1c1c", "#e6a1a1") if error else ("#fff4d6", "#6b4e00", "#e0c36b")
        self.message_label.setStyleSheet("QLabel {{ background: {}; color: {}; border: 1px solid {}; "
                                         "border-radius: 3px; padding: 4px; }}".format(*colours))
        self.message_label.setToolTip("Why the settings above cannot be used as they are." if error
                                      else "Settings that may not work with the chosen data or computer.")
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))

    def _sync(self) -> None:
        """Enable, show and label the controls for the current choices and the running state."""
        editable = not self._running
        for w in self._controls:
            w.setEnabled(editable or w in (self.lr_spin, self.batch_spin))
        if editable:
            opt = self.optimizer_combo.currentData()
            self.momentum_spin.setEnabled(opt in ("sgd", "rmsprop"))
            self.nesterov_check.setEnabled(opt == "sgd")
            self.subset_spin.setEnabled(self.subset_check.isChecked())
            self.ovr_spin.setEnabled(self.ovr_check.isChecked())
            has_dropout = any(layer.kind == "dropout" for layer in self.session.spec.layers)
            self.dropout_check.setEnabled(has_dropout)
            self.dropout_check.setToolTip("Give every dropout layer of the model the same rate." if has_dropout
                                          else "This model has no dropout layers.")
            self.dropout_spin.setEnabled(has_dropout and self.dropout_check.isChecked())
        self._data_form.setRowVisible(self.fraction_spin, self.validation_combo.currentData() == "train")
        schedule = self.schedule_combo.currentData()
        form = self._opt_form
        form.setRowVisible(self.step_spin, schedule == "step")
        form.setRowVisible(self.gamma_spin, schedule in ("step", "exponential"))
        form.setRowVisible(self.lr_min_spin, schedule == "gorner")
        form.setRowVisible(self.decay_spin, schedule in ("exponential", "gorner"))
        form.labelForField(self.decay_spin).setText("Every" if schedule == "exponential" else "Decay over")
        self.formula_label.setText(self._formula(schedule))

    def _formula(self, schedule: str) -> str:
        lr, gamma, n = f"{self.lr_spin.value():g}", f"{self.gamma_spin.value():g}", self.decay_spin.value()
        if schedule == "step":
            return f"lr = {lr} × {gamma}^⌊epoch/{self.step_spin.value()}⌋"
        if schedule == "exponential":
            return f"lr = {lr} × {gamma}^(step/{n})"
        if schedule == "gorner":
            low = f"{self.lr_min_spin.value():g}"
            return f"lr = {low} + ({lr} − {low})\n      × exp(−step/{n})"  # too long for one line
        return f"The learning rate stays {lr} for the whole run."
