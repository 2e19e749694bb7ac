"""The timeline under the run controls: a slider over the run's steps with epoch ticks, Play, Live, Exact.

Dragging shows the stored weights nearest at or before the step at once (the label says which step that is,
and how exactly it is stored); Exact recomputes the very step from the anchor before it, with progress and
cancel; Play replays the run at a chosen speed; Live goes back to the newest weights. The bar only reports
what the user asks for; the window does it through the TimelineModel.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSlider, QStyle, \
    QStyleOptionSlider, QWidget

SPEEDS = (("1 keyframe/frame", 1), ("2x", 2), ("5x", 5), ("10x", 10))
PLAY_FPS = 30  # frames a second while replaying, at most: see TimelineBar._frame_painted


class StepSlider(QSlider):
    """A horizontal slider over steps that draws a tick at every epoch end."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setObjectName("timelineSlider")
        self.epoch_ends: list[int] = []

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().paintEvent(event)
        if not self.epoch_ends or self.maximum() <= self.minimum():
            return
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        groove = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                             QStyle.SubControl.SC_SliderGroove, self)
        handle = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                             QStyle.SubControl.SC_SliderHandle, self)
        left, span = groove.left() + handle.width() / 2, groove.width() - handle.width()
        painter = QPainter(self)
        painter.setPen(QPen(QColor(90, 90, 90), 1))
        for end in self.epoch_ends:
            x = left + span * (end - self.minimum()) / (self.maximum() - self.minimum())
            painter.drawLine(QPointF(x, groove.bottom() + 1), QPointF(x, groove.bottom() + 5))
        painter.end()


class TimelineBar(QWidget):
    """The slider, the step shown, Play / Live / Exact / Evaluate, and the progress of an exact recomputation."""

    seek_requested = Signal(int)  # show the stored weights nearest at or before this step
    exact_requested = Signal()  # recompute the slider's step exactly
    live_requested = Signal()
    evaluate_requested = Signal()  # evaluate the test set with the weights on show
    cancel_requested = Signal()  # stop an exact recomputation or an evaluation

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("timelineBar")
        self.slider = StepSlider()
        self.slider.setToolTip("The run's steps: drag to show the network as it was at any step (epoch ends are "
                               "ticked)")
        self.slider.setTracking(True)
        self.slider.valueChanged.connect(self._on_slider)
        self.label = QLabel("no run yet")
        self.label.setObjectName("shownStepLabel")
        self.label.setMinimumWidth(self.fontMetrics().horizontalAdvance("step 000,000 · epoch 00 · keyframe (8-bit)"))
        self.play_button = QPushButton("Play")
        self.play_button.setToolTip("Replay the run from the step shown, keyframe by keyframe (P)")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self._on_play)
        self.speed = QComboBox()
        self.speed.setToolTip("How fast Play goes through the keyframes")
        for text, value in SPEEDS:
            self.speed.addItem(text, value)
        self.live_button = QPushButton("Live")
        self.live_button.setObjectName("liveButton")
        self.live_button.setToolTip("Back to the newest weights of the run (L)")
        self.live_button.clicked.connect(self._on_live)
        self.exact_button = QPushButton("Exact")
        self.exact_button.setObjectName("exactButton")
        self.exact_button.setToolTip("Recompute the weights of exactly this step from the anchor before it (E)")
        self.exact_button.clicked.connect(self.exact_requested)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Evaluate the test set with the weights shown")
        self.evaluate_button.clicked.connect(self.evaluate_requested)
        self.progress = QProgressBar()
        self.progress.setObjectName("timelineProgress")
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.hide()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Timeline"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        for widget in (self.play_button, self.speed, self.live_button, self.exact_button, self.evaluate_button,
                       self.progress, self.cancel_button):
            row.addWidget(widget)
        self._keyframes: list[int] = []
        self._quiet = False  # set while the window moves the slider itself
        self._play = QTimer(self)  # single shot: the next frame is timed once this one is painted
        self._play.setSingleShot(True)
        self._play.setInterval(int(1000 / PLAY_FPS))
        self._play.timeout.connect(self._advance)
        self._playing = False
        self._frame_started = 0.0
        self._painted = QTimer(self)  # fires once the events a frame posted (its repaints) are handled
        self._painted.setSingleShot(True)
        self._painted.setInterval(0)
        self._painted.timeout.connect(self._frame_painted)
        self.set_run(0, [], [], live=True, exact_available=False)

    # -- what the window tells it ------------------------------------------------------------------------
    def set_run(self, last_step: int, keyframes: list[int], epoch_ends: list[int], live: bool,
                exact_available: bool) -> None:
        """The run's extent, stored steps and epoch ends; while live the handle follows the newest step."""
        self._keyframes = keyframes
        self.slider.epoch_ends = epoch_ends
        self._quiet = True
        self.slider.setRange(0, max(0, last_step))
        if live:
            self.slider.setValue(last_step)
        self._quiet = False
        for widget in (self.slider, self.play_button):
            widget.setEnabled(bool(keyframes))
        self.set_live(live, exact_available)
        self.slider.update()

    def set_live(self, live: bool, exact_available: bool) -> None:
        """Live shows the newest weights; Exact is for a step shown from the past of a run that can recompute."""
        self.exact_button.setEnabled(bool(self._keyframes) and exact_available and not live)
        self.exact_button.setToolTip(
            "Recompute the weights of exactly this step from the anchor before it (E)" if exact_available else
            "This run cannot recompute its steps exactly (trained on a GPU, whose kernels are not deterministic, or "
            "saved without a timeline): the nearest stored step is shown")
        self.live_button.setEnabled(not live)

    def show_step(self, step: int, epoch: int, precision: str) -> None:
        """Say which step every view shows now, and how exactly it is stored."""
        self._quiet = True
        if precision != "live":
            self.slider.setValue(step)
        self._quiet = False
        how = {"live": "live", "exact": "exact", "float32": "keyframe", "float16": "keyframe (16-bit)",
               "uint8": "keyframe (8-bit)"}.get(precision, precision)
        self.label.setText(f"step {step:,} · epoch {epoch} · {how}")
        self.label.setToolTip("The step whose weights every view shows. A keyframe is stored at the precision "
                              "the run's byte budget allowed; Exact recomputes the step itself.")

    def set_progress(self, done: int, total: int, text: str) -> None:
        """An exact recomputation or an evaluation in progress (total 0: none)."""
        busy = total > 0
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            self.progress.setFormat(text)

    # -- user actions --------------------------------------------------------------------------------------
    def _on_slider(self, value: int) -> None:
        if not self._quiet:
            self.seek_requested.emit(value)

    def _on_live(self) -> None:
        self.play_button.setChecked(False)
        self.live_requested.emit()

    def _on_play(self, on: bool) -> None:
        self.play_button.setText("Pause" if on else "Play")
        self._playing = on
        if on:
            if self.slider.value() >= self.slider.maximum() and self._keyframes:
                self.slider.setValue(self._keyframes[0])  # at the end: replay from the start
            self._play.start()
        else:
            self._play.stop()
            self._painted.stop()

    def _advance(self) -> None:
        if not self._playing:
            return
        later = [k for k in self._keyframes if k > self.slider.value()]
        if not later:
            self.play_button.setChecked(False)
            return
        self._frame_started = time.perf_counter()
        self.slider.setValue(later[min(len(later), int(self.speed.currentData())) - 1])
        self._painted.start()

    def _frame_painted(self) -> None:
        """Time the next frame: 1/PLAY_FPS after this one began, but never sooner than this frame's own cost
        from now. The window is idle at least half the time while playing, so a click, a key or a resize is
        answered between frames; a window too busy for 30 frames a second plays fewer."""
        if not self._playing:
            return
        cost = time.perf_counter() - self._frame_started
        self._play.start(int(1000 * max(1 / PLAY_FPS - cost, cost)))

    @property
    def playing(self) -> bool:
        return self._playing
