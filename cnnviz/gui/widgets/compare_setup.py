"""The experiment panel's Compare group: train the current run and a variant of it side by side."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QPushButton

from cnnviz.presets import PRESETS
from cnnviz.training.variants import CHANGES

_TITLES = {"activation": "Activation", "normalization": "Pixels", "dropout": "Dropout rate",
           "optimizer": "Optimizer", "model": "Model (preset)"}


class CompareSetup(QGroupBox):
    """Pick one setting and its other value; Train both starts A (as set above) and B (with that change)."""

    train_both_requested = Signal(str, object)  # the setting, B's value
    stop_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("Compare", parent)
        self.setObjectName("compareSetup")
        self.change = QComboBox(objectName="compareChange")
        self.change.setToolTip("The one setting that differs in run B; everything else (the seed, hence the "
                               "batches and their order) is the same")
        for key, title in _TITLES.items():
            self.change.addItem(title, key)
        self.value = QComboBox(objectName="compareValue")
        self.value.setToolTip("Run B's value of that setting")
        self.change.currentIndexChanged.connect(self._fill_values)
        self.train_button = QPushButton("Train A and B", objectName="trainBothButton")
        self.train_button.setToolTip("Train this run (A) and the variant (B) side by side, on identical batches; "
                                     "their curves overlay, the Compare dock shows them at the same step")
        self.train_button.clicked.connect(lambda: self.train_both_requested.emit(self.change.currentData(),
                                                                                 self.value.currentData()))
        self.stop_button = QPushButton("Stop comparing")
        self.stop_button.clicked.connect(self.stop_requested)
        self.stop_button.setEnabled(False)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Change", self.change)
        form.addRow("to", self.value)
        form.addRow(self.train_button)
        form.addRow(self.stop_button)
        form.addRow(self.note)
        self._fill_values()

    def _fill_values(self) -> None:
        key = self.change.currentData()
        self.value.clear()
        values = tuple(PRESETS) if key == "model" else CHANGES[key]
        for value in values:
            self.value.addItem(f"{value:g}" if isinstance(value, float) else str(value), value)
        if key == "activation":
            self.value.setCurrentIndex(max(0, self.value.findData("sigmoid")))

    def set_comparing(self, comparing: bool, label: str = "") -> None:
        self.stop_button.setEnabled(comparing)
        self.note.setText(f"Comparing with B ({label})." if comparing else "")
