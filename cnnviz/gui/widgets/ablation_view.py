"""Ablation: the test accuracy with each filter of a conv layer zeroed, as a bar chart (:mod:`cnnviz.inspect.ablation`).

The work (one pass over the test set per filter, after the layers before it) runs in the background with
progress and Cancel, on a copy of the weights on show; the chart follows the timeline: a new step shown (live
weights or a seek) is worked out again while the view is visible, at most once a second while training.
"""
from __future__ import annotations

import copy

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from cnnviz.gui.visibility import on_screen
from cnnviz.gui.background_job import BackgroundJob
from cnnviz.gui.throttle import Throttle
from cnnviz.inspect.ablation import Ablation, ablate
from cnnviz.inspect.top_patches import conv_layers

_HINT = ("Each bar: the test accuracy with that one filter zeroed. A bar far below the dashed line (the intact "
         "model) is a filter the network needs; a bar level with it, one it can do without.")


class AblationView(QWidget):
    """A layer picker, Run / Cancel with progress, and the accuracy without each filter as bars."""

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ablationView")
        self.session = session
        self._result: Ablation | None = None
        self._result_step: int | None = None
        self._wanted = False  # the user asked for a chart: keep it following the step on show
        self.runner = BackgroundJob()  # no parent: see BackgroundJob
        self.runner.done.connect(self._on_done)
        self.runner.failed.connect(self._on_failed)
        self.runner.progress.connect(self._on_progress)
        self.runner.busy_changed.connect(self._on_busy)
        self._follow = Throttle(1000, self._follow_step, self)
        self._build()
        session.spec_changed.connect(self._on_model_changed)
        session.data_changed.connect(self._on_model_changed)
        session.weights_changed.connect(self._on_weights_changed)
        self._on_model_changed(None)

    def _build(self) -> None:
        self.layer_combo = QComboBox()
        self.layer_combo.setObjectName("ablationLayerCombo")
        self.layer_combo.setToolTip("The conv layer whose filters are zeroed one at a time")
        self.layer_combo.currentTextChanged.connect(self._on_layer_changed)
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("ablationRunButton")
        self.run_button.setToolTip("Work out the test accuracy with each filter of the layer zeroed, in the "
                                   "background (one pass over the test set per filter)")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("ablationCancelButton")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("ablationProgress")
        self.progress_bar.setMaximumWidth(160)
        self.progress_bar.hide()
        top = QHBoxLayout()
        top.addWidget(QLabel("Layer"))
        top.addWidget(self.layer_combo)
        top.addWidget(self.run_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.progress_bar)
        top.addStretch(1)
        self.status = QLabel("Choose a layer and press Run.")
        self.status.setObjectName("ablationStatus")
        self.status.setWordWrap(True)
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("ablationPlot")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.setLabel("bottom", "filter zeroed")
        self.plot.setLabel("left", "test accuracy (%)")
        self.plot.showGrid(y=True, alpha=0.25)
        self.plot.setToolTip(_HINT)
        self._bars = pg.BarGraphItem(x=[], height=[], width=0.7)
        self.plot.addItem(self._bars)
        self._baseline = pg.InfiniteLine(angle=0, pen=pg.mkPen((240, 170, 60), width=2, style=Qt.PenStyle.DashLine))
        self._baseline.hide()
        self.plot.addItem(self._baseline)
        hint = QLabel(_HINT)
        hint.setWordWrap(True)
        hint.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, 1)
        layout.addWidget(hint)

    # -- automation surface ----------------------------------------------------------------------------
    def layers(self) -> list[str]:
        return [self.layer_combo.itemText(i) for i in range(self.layer_combo.count())]

    def set_layer(self, name: str) -> None:
        self.layer_combo.setCurrentText(name)

    def result(self) -> Ablation | None:
        """The ablation on show (None before the first one, or after a change of model)."""
        return self._result

    def result_step(self) -> int | None:
        """The step of the weights the chart on show was worked out for."""
        return self._result_step

    def run(self) -> None:
        """Work out the ablation of the chosen layer for the weights on show (in the background)."""
        data, layer = self.session.data, self.layer_combo.currentText()
        if data is None or not layer:
            return
        self._wanted = True
        model = copy.deepcopy(self.session.model)  # the window's copy changes with every snapshot
        step = self.session.weights_step
        images, labels = data.test.images, data.test.labels

        def work(progress, cancel):
            return step, ablate(model, images, labels, layer, progress=progress, cancel=cancel)

        self.status.setText(f"Zeroing each filter of {layer} in turn (step {step:,})…")
        self.runner.submit(work, restart=True)

    def cancel(self) -> None:
        self._wanted = False
        self.runner.cancel()
        self.status.setText("Cancelled." if self._result is None else self.status.text() + " (update cancelled)")

    # -- signals ---------------------------------------------------------------------------------------
    def _on_model_changed(self, _value) -> None:
        self.runner.cancel()
        self._wanted = False
        names = conv_layers(self.session.model)
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        self.layer_combo.blockSignals(False)
        self.run_button.setEnabled(bool(names))
        self._show(None)
        self.status.setText("Choose a layer and press Run." if names else
                            "This model has no convolution layers, so it has no filters to zero.")

    def _on_layer_changed(self, _name: str) -> None:
        self._show(None)
        if self._wanted:
            self.run()

    def _on_weights_changed(self, snapshot) -> None:
        if self._wanted and on_screen(self) and self._result_step != self.session.weights_step:
            self._follow.request()

    def _follow_step(self) -> None:
        if self._wanted and on_screen(self):
            self.run()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._wanted and self._result_step != self.session.weights_step:
            self._follow.request()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress_bar.setMaximum(max(total, 1))
        self.progress_bar.setValue(done)

    def _on_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.progress_bar.setVisible(busy)
        if busy:
            self.progress_bar.setValue(0)

    def _on_failed(self, text: str) -> None:
        self.status.setText(text)

    def _on_done(self, result) -> None:
        step, ablation = result
        if ablation.layer != self.layer_combo.currentText():
            return
        self._result_step = step
        self._show(ablation)
        worst = int(np.argmax(ablation.drop))
        self.status.setText(
            f"{ablation.layer} at step {step:,}: {ablation.baseline_accuracy * 100:.2f}% intact (dashed line) on "
            f"{ablation.examples:,} test images; zeroing filter {worst} costs the most "
            f"({ablation.drop[worst] * 100:.2f} points).")

    def _show(self, ablation: Ablation | None) -> None:
        self._result = ablation
        if ablation is None:
            self._result_step = None
            self._bars.setOpts(x=[], height=[])
            self._baseline.hide()
            return
        acc = ablation.accuracy_without_filter * 100
        base = ablation.baseline_accuracy * 100
        drop = np.clip(base - acc, 0, None)
        drop = drop / drop.max() if drop.max() > 0 else drop  # the costliest filter reddest
        brushes = [pg.mkBrush(int(90 + 150 * d), int(140 - 90 * d), int(210 - 160 * d)) for d in drop]
        self._bars.setOpts(x=np.arange(len(acc)), height=acc, width=0.7, brushes=brushes)
        self._baseline.setValue(base)
        self._baseline.show()
        low = max(0.0, min(float(acc.min()), base) - 5)
        self.plot.setYRange(low, min(100.0, max(float(acc.max()), base) + 2), padding=0)
        self.plot.setXRange(-0.6, len(acc) - 0.4, padding=0)
