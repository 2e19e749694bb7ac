"""Other runs' curves over the current run's: any number of saved runs (or the compared run) in the curves,
each named and coloured, shown or hidden from a run list.

Each overlaid run draws its loss and accuracy moving averages (the per-batch values of several runs at once
would be noise); the current run keeps its own full curves. Runs are kept as their
:class:`~cnnviz.training.history.History`, so a run that is still training (the compared one) grows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from cnnviz.gui.widgets.curve_items import StepCurve
from cnnviz.training.history import History

# Colours of the overlaid runs (the current run is blue): ColorBrewer's Dark2, which stays apart from the blue.
PALETTE = ((217, 95, 2), (117, 112, 179), (231, 41, 138), (102, 166, 30), (230, 171, 2), (166, 118, 29),
           (27, 158, 119), (102, 102, 102))


@dataclass
class OverlaidRun:
    """One run drawn over the current one."""

    key: str
    name: str
    colour: tuple[int, int, int]
    history: History
    items: tuple
    visible: bool = True
    drawn_steps: int = -1


class RunOverlays(QObject):
    """The overlaid runs of a CurvesView: add, grow, show/hide, remove; redrawn with the curves."""

    changed = Signal()  # a run was added, removed, shown or hidden

    def __init__(self, curves) -> None:
        super().__init__(curves)
        self.curves = curves
        self.runs: dict[str, OverlaidRun] = {}
        self._count = 0

    def add(self, name: str, history: History, key: str | None = None) -> str:
        """Overlay `history` under `name`; returns its key (pass `key` to replace a run of that key)."""
        if key is not None and key in self.runs:
            self.remove(key)
        self._count += 1
        key = key or f"run-{self._count}"
        colour = PALETTE[(len(self.runs)) % len(PALETTE)]
        pen = pg.mkPen(colour, width=2)
        items = (StepCurve(pen=pen, name=f"{name} (loss)", skipFiniteCheck=True),
                 StepCurve(pen=pen, name=f"{name} (accuracy)", skipFiniteCheck=True))
        self.curves.loss_plot.addItem(items[0])
        self.curves.accuracy_plot.addItem(items[1])
        self.runs[key] = OverlaidRun(key, name, colour, history, items)
        self.redraw()
        self.changed.emit()
        return key

    def add_saved(self, path) -> str:
        """Overlay the run saved at `path` (a run folder or a checkpoint file), named as the run calls itself.
        CnnvizError for a run that cannot be read."""
        from pathlib import Path

        from cnnviz.timeline.reader import RunTimeline

        timeline = RunTimeline.open(path)
        return self.add(str(timeline.header.get("name") or Path(path).name), timeline.history)

    def grow(self, key: str, history: History | None = None) -> None:
        """The run gained steps (or has a new history): redraw it."""
        run = self.runs.get(key)
        if run is None:
            return
        if history is not None and history is not run.history:
            run.history, run.drawn_steps = history, -1
            for item in run.items:
                item.reset()
        self.redraw()

    def set_visible(self, key: str, visible: bool) -> None:
        run = self.runs.get(key)
        if run is None or run.visible == visible:
            return
        run.visible = visible
        for item in run.items:
            item.setVisible(visible)
        self.changed.emit()

    def remove(self, key: str) -> None:
        run = self.runs.pop(key, None)
        if run is None:
            return
        self.curves.loss_plot.removeItem(run.items[0])
        self.curves.accuracy_plot.removeItem(run.items[1])
        self.changed.emit()

    def redraw(self) -> None:
        for run in self.runs.values():
            n = run.history.steps
            if n == run.drawn_steps:
                continue
            x = np.arange(1, n + 1, dtype=np.float64)
            run.items[0].set_series(x, run.history.moving_average("step_loss")[:n], False)
            run.items[1].set_series(x, run.history.moving_average("step_accuracy")[:n], False)
            run.drawn_steps = n


class RunList(QWidget):
    """The runs in the curves: the current one, and every overlaid run with a check box to show or hide it."""

    add_requested = Signal()  # the user wants to overlay a saved run (the window asks for its folder)

    def __init__(self, overlays: RunOverlays, current_name: str = "this run", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runList")
        self.overlays = overlays
        self.list = QListWidget()
        self.list.setMaximumHeight(86)
        self.list.setToolTip("The runs drawn in the curves: tick to show, untick to hide")
        self.list.itemChanged.connect(self._on_item_changed)
        add = QPushButton("Add run…")
        add.setToolTip("Overlay the curves of a saved run folder")
        add.clicked.connect(self.add_requested)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Take the selected run out of the curves")
        self.remove_button.clicked.connect(self._remove_selected)
        buttons = QVBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.list, 1)
        row.addLayout(buttons)
        self.current_name = current_name
        overlays.changed.connect(self.refresh)
        self.refresh()

    def set_current_name(self, name: str) -> None:
        self.current_name = name
        self.refresh()

    def refresh(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        current = QListWidgetItem(_swatch((31, 119, 180)), f"{self.current_name} (all curves)")
        current.setFlags(Qt.ItemFlag.ItemIsEnabled)
        self.list.addItem(current)
        for run in self.overlays.runs.values():
            item = QListWidgetItem(_swatch(run.colour), run.name)
            item.setData(Qt.ItemDataRole.UserRole, run.key)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsSelectable)
            item.setCheckState(Qt.CheckState.Checked if run.visible else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.setVisible(bool(self.overlays.runs))
        self.remove_button.setEnabled(bool(self.overlays.runs))

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        key = item.data(Qt.ItemDataRole.UserRole)
        if key:
            self.overlays.set_visible(key, item.checkState() == Qt.CheckState.Checked)

    def _remove_selected(self) -> None:
        for item in self.list.selectedItems():
            key = item.data(Qt.ItemDataRole.UserRole)
            if key:
                self.overlays.remove(key)


def _swatch(colour) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(*colour))
    return QIcon(pixmap)
