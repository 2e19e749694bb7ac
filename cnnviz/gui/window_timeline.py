"""The window's timeline wiring: the bar under the run controls, the TimelineModel and the views that follow
the step on show (the curves' marker, the filters' epoch baseline, the status bar), and the polling that
brings a running run's new records in."""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtGui import QKeySequence, QShortcut

from cnnviz.errors import CnnvizError


class WindowTimeline(QObject):
    """Connects window `w`'s timeline bar, TimelineModel and views (built by the window)."""

    def __init__(self, w) -> None:
        super().__init__(w)
        self.w = w
        t, bar = w.timeline, w.timeline_bar
        bar.seek_requested.connect(self.seek_quietly)
        bar.exact_requested.connect(lambda: w.seek(bar.slider.value(), exact=True))
        bar.live_requested.connect(t.go_live)
        bar.evaluate_requested.connect(t.evaluate_shown)
        bar.cancel_requested.connect(t.cancel_exact)
        bar.cancel_requested.connect(t.cancel_evaluation)
        t.changed.connect(self.update_bar)
        t.shown_step_changed.connect(self._on_shown_step)
        t.exact_progress.connect(lambda done, total: bar.set_progress(done, total, f"{done:,}/{total:,}"))
        t.exact_finished.connect(lambda ok: bar.set_progress(0, 0, ""))
        w.curves.step_clicked.connect(self.seek_quietly)
        w.filters.baseline_at = self.epoch_start_weights
        self._baselines: dict = {}
        self._timer = QTimer(self)
        self._timer.setInterval(500)  # the run's new keyframes and statistics, twice a second
        self._timer.timeout.connect(self._poll)
        self._timer.start()
        for keys, slot in ((QKeySequence("L"), t.go_live), (QKeySequence("E"), bar.exact_requested.emit),
                           (QKeySequence("P"), bar.play_button.toggle)):
            shortcut = QShortcut(keys, w)
            shortcut.activated.connect(slot)

    @Slot(int)
    def seek_quietly(self, step: int) -> None:
        """A seek from the slider or a curve: a problem goes to the status bar."""
        try:
            self.w.timeline.seek(step, defer_evaluation=True)  # the slider, Play, a click on a curve
        except CnnvizError as exc:
            self.w.statusBar().showMessage(str(exc), 6000)

    def _poll(self) -> None:
        """While a run goes on (here or followed), take in its new records and move the timeline's end."""
        if self.w.controller.active:
            self.w.timeline.refresh()
            self.update_bar()

    @Slot()
    def update_bar(self) -> None:
        w, t = self.w, self.w.timeline
        keyframes = t.timeline.keyframe_steps() if t.timeline is not None else []
        ends = [e.step for e in w.session.history.epochs if e.step is not None]
        w.timeline_bar.set_run(t.last_step, keyframes, ends, live=t.live, exact_available=t.exact_available)
        if t.live:
            self._on_shown_step(w.session.weights_step)
        if t.timeline is None:
            why = ("This run has no timeline: it was saved without one (a single checkpoint file, or --no-timeline)"
                   if w.session.trained and not w.controller.active else "The timeline fills as the run trains")
            w.timeline_bar.slider.setToolTip(why)

    @Slot(int)
    def _on_shown_step(self, step: int) -> None:
        w, t = self.w, self.w.timeline
        ends = [e.step for e in w.session.history.epochs if e.step is not None]
        epoch = sum(1 for end in ends if end < step) + (1 if step > 0 else 0)  # the epoch the step is part of
        w.timeline_bar.show_step(step, epoch, "live" if t.live else t.shown_precision)
        w.timeline_bar.set_live(t.live, t.exact_available)
        w.curves.show_step(None if t.live else step)
        w.live_label.setText("" if t.live else f"showing step {step:,}")

    def epoch_start_weights(self, step: int):
        """(epoch, its first step, conv weights by layer) of the epoch that `step` falls in, from the exact
        anchor at its start: what the filters' change bars compare the shown weights with."""
        t = self.w.timeline.timeline
        if t is None:
            return None
        starts = [0] + [e.step for e in self.w.session.history.epochs if e.step is not None]
        before = [s for s in starts if s < step and s in t.anchors]
        if not before:
            return None
        start = before[-1]
        key = (id(t), start)  # read once each
        if key not in self._baselines:
            if len(self._baselines) > 64:
                self._baselines.clear()
            weights = t.weights(start)
            self._baselines[key] = {k[len("layers."):-len(".weight")]: v for k, v in weights.items()
                                    if k.startswith("layers.") and k.endswith(".weight") and v.ndim == 4}
        return starts.index(start) + 1, start, self._baselines[key]
