"""Train / Pause / Step / Stop / Reset buttons and the progress bar with ETA."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from cnnviz.formatting import format_seconds
from cnnviz.training.messages import FAILED, FINISHED, IDLE, PAUSED, RUNNING, STOPPED, StepMetrics


class RunControls(QWidget):
    """The run's buttons; which are enabled follows the trainer state."""

    train_clicked = Signal()
    pause_clicked = Signal()  # pause when running, resume when paused
    step_clicked = Signal()
    stop_clicked = Signal()
    reset_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        self.train_button = self._button("Train", "trainButton", "Start training, or continue a stopped or opened "
                                         "run (Ctrl+Return)", self.train_clicked)
        self.pause_button = self._button("Pause", "pauseButton", "Pause or resume training (Space)",
                                         self.pause_clicked)
        self.step_button = self._button("Step", "stepButton", "Train exactly one batch, then stay paused (Ctrl+.)",
                                        self.step_clicked)
        self.stop_button = self._button("Stop", "stopButton", "Stop training; the run can be continued with Train "
                                        "(Esc)", self.stop_clicked)
        self.reset_button = self._button("Reset", "resetButton", "Throw the training away and start again from "
                                         "fresh weights (Ctrl+R)", self.reset_clicked)
        for button in (self.train_button, self.pause_button, self.step_button, self.stop_button, self.reset_button):
            layout.addWidget(button)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("trainingProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.progress.setMinimumWidth(220)
        self.progress.setToolTip("Progress of the whole run, with the estimated time left")
        layout.addWidget(self.progress, 1)
        self.eta_label = QLabel("", self)
        self.eta_label.setObjectName("etaLabel")
        self.eta_label.setMinimumWidth(120)
        layout.addWidget(self.eta_label)
        self.set_state(IDLE)

    def _button(self, text: str, name: str, tip: str, signal) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.clicked.connect(signal)
        return button

    def set_state(self, state: str) -> None:
        running, paused = state == RUNNING, state == PAUSED
        active = running or paused
        self.train_button.setEnabled(not active)
        self.train_button.setText("Continue" if state in (STOPPED,) else "Train")
        self.pause_button.setEnabled(active)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.step_button.setEnabled(not running)
        self.stop_button.setEnabled(active)
        self.reset_button.setEnabled(True)
        if state == FINISHED:
            self.progress.setValue(self.progress.maximum())
            self.eta_label.setText("finished")
        elif state == FAILED:
            self.eta_label.setText("failed")
        elif state == STOPPED:
            self.eta_label.setText("stopped")
        elif state == IDLE:
            self.progress.setValue(0)
            self.progress.setFormat("")
            self.eta_label.setText("")
        elif paused:
            self.eta_label.setText("paused")

    def set_progress(self, m: StepMetrics) -> None:
        # QProgressBar.setValue repaints at once (~1.7 ms, 10 times a second while training) and setFormat
        # schedules another paint; with updates off meanwhile, both become one paint with the window's others.
        bar = self.progress
        bar.setUpdatesEnabled(False)
        bar.setValue(int(m.progress * 1000))
        bar.setFormat(f"epoch {m.epoch}/{m.epochs}  batch {m.batch}/{m.batches_per_epoch}  {m.progress * 100:.0f}%")
        bar.setUpdatesEnabled(True)  # schedules the paint
        self.eta_label.setText(f"ETA {format_seconds(m.eta_seconds)}")
