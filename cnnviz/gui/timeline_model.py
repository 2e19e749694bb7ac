"""The run's timeline as the window sees it: which step every view shows, and how it gets there.

It reads the current run's folder (the window's own run, an opened run, or one followed while another process
writes it) as a :class:`~cnnviz.timeline.reader.RunTimeline`, refreshed while the run goes on. *Live*, the
views show the newest weights the run sends. A seek shows the stored weights nearest at or before a step at
once (a keyframe, or an exact anchor); an exact seek then recomputes that very step from the anchor before
it in a training process of its own, with progress and cancel, and shows it when done.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from cnnviz.errors import CnnvizError
from cnnviz.training.messages import AckSnapshot, FitResult, Stop, StepBatch, WeightsSnapshot


class TimelineModel(QObject):
    """The step on show, and the timeline of the run it belongs to."""

    changed = Signal()  # the timeline gained records, or belongs to another run now
    shown_step_changed = Signal(int)  # the step whose weights every view shows (also when going live)
    exact_progress = Signal(int, int)  # steps recomputed, steps to recompute
    exact_finished = Signal(bool)  # an exact seek ended: True when the exact step is on show

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.timeline = None  # a RunTimeline, or None when the run has no timeline (yet)
        self.folder: Path | None = None
        self.live = True
        self.shown_step = 0
        self.shown_precision = "live"  # "live", "exact", or a keyframe's precision ("float32", "uint8", ...)
        self._exact_thread = None
        self._exact_worker = None
        self._exact_target: int | None = None
        # with seek(defer_evaluation=True) the shown step's evaluation is read and shown one event-loop turn after
        # its weights (an epoch's confusion matrix and bars took 10-20 ms: in the seek they made Play's longest frames)
        self._evaluation_turn = QTimer(self)
        self._evaluation_turn.setSingleShot(True)
        self._evaluation_turn.setInterval(0)
        self._evaluation_turn.timeout.connect(self._show_shown_evaluation)

    # -- which run -----------------------------------------------------------------------------------------
    def set_folder(self, folder: str | Path | None) -> None:
        """Follow the timeline of the run in `folder` (None: no timeline), and show it live."""
        self.cancel_exact()
        self.folder = Path(folder) if folder is not None else None
        self.timeline = None
        self.live = True
        self.refresh()
        self.changed.emit()

    def refresh(self) -> bool:
        """Read what the run recorded since the last call; True when there was something new."""
        from cnnviz.timeline.reader import RunTimeline

        if self.folder is None:
            return False
        try:
            if self.timeline is None:
                if not (self.folder / "events.jsonl").is_file():
                    return False
                self.timeline = RunTimeline.open(self.folder)
                self.changed.emit()
                return True
            new = bool(self.timeline.refresh())
        except CnnvizError:
            return False
        if new:
            self.changed.emit()
        return new

    # -- what is shown ---------------------------------------------------------------------------------------
    @property
    def last_step(self) -> int:
        """The newest step of the run (what Live shows)."""
        recorded = self.timeline.last_step if self.timeline is not None else 0
        return max(recorded, self.session.history.steps)

    @property
    def exact_available(self) -> bool:
        return self.timeline is not None and self.timeline.exact

    def go_live(self) -> None:
        """Back to the newest weights (those the run sends, or the last stored ones of a run that ended)."""
        self.cancel_exact()
        self.live = True
        self.session.go_live()
        self.shown_step, self.shown_precision = self.session.weights_step, "live"
        self.shown_step_changed.emit(self.shown_step)

    def seek(self, step: int, exact: bool = False, defer_evaluation: bool = False) -> int:
        """Show the stored weights nearest at or before `step` at once, and with `exact` recompute `step` itself
        (in the background). Returns the step now on show. `defer_evaluation` (the slider, Play): show the step's
        recorded evaluation one event-loop turn later, so a frame is two shorter pieces of work."""
        t = self.timeline
        if t is None:
            raise CnnvizError("this run has no timeline to go back in (it was saved without one)")
        step = max(0, min(int(step), self.last_step))
        stored = t.nearest_keyframe(step)
        if stored is None:
            raise CnnvizError("the run has not recorded any weights yet")
        self.cancel_exact()
        self._show(stored, t.weights(stored), t.precision(stored), defer_evaluation)
        if exact and stored != step:
            self._start_exact(step)
        return stored

    def _show(self, step: int, weights: dict, precision: str, defer_evaluation: bool = False) -> None:
        self.live = False
        self.shown_step, self.shown_precision = step, precision
        epoch = sum(1 for e in self.session.history.epochs if e.step is not None and e.step <= step)
        self.session.show_weights(WeightsSnapshot(step, epoch, weights))
        if defer_evaluation:
            self._evaluation_turn.start()
        else:
            self._evaluation_turn.stop()
            self._show_evaluation(step)
        self.shown_step_changed.emit(step)

    def _show_shown_evaluation(self) -> None:
        if not self.live:
            self._show_evaluation(self.shown_step)

    def _show_evaluation(self, step: int) -> None:
        """The nearest recorded evaluation at or before `step` (read and shown only when it is another one)."""
        t = self.timeline
        recorded = sorted(s for s, e in t.evaluations.items() if "file" in e) if t is not None else []
        nearest = max((s for s in recorded if s <= step), default=None)
        shown = self.session.evaluation
        if nearest is not None and shown is not None and shown.step == nearest and not self.session.live:
            return
        try:
            evaluation = t.evaluation_at(step) if t is not None else None
        except CnnvizError:
            evaluation = None
        self.session.show_evaluation(evaluation)

    # -- an exact step, recomputed -------------------------------------------------------------------------
    @property
    def recomputing(self) -> bool:
        return self._exact_thread is not None

    def _start_exact(self, step: int) -> None:
        from cnnviz.gui.training_worker import TrainingWorker
        from cnnviz.gui.worker_threads import start_worker
        from cnnviz.training.runner import TrainingJob

        t = self.timeline
        anchor_step = t.anchor_before(step)
        if anchor_step is None or not t.exact:
            return
        anchor = t.load_anchor(anchor_step)
        recipe = anchor.recipe.replace(train__max_steps=step, train__evaluate_test=False,
                                       train__epochs=max(anchor.recipe.train.epochs, anchor.epoch + 1 + step))
        threads = t.header.get("threads") if isinstance(t.header.get("threads"), int) else None
        anchor_file = t.path / t.anchors[anchor_step] if t.has_timeline else t._checkpoint_file
        job = TrainingJob(spec=anchor.spec.to_dict(), recipe=recipe, resume_from=str(anchor_file), run_dir=None,
                          threads=threads, metrics_interval=0.1, snapshot_interval=3600.0)
        self._exact_target, self._exact_start = step, anchor_step
        self._exact_worker = TrainingWorker(job)
        self._exact_worker.message_received.connect(self._on_exact_message)
        self._exact_thread = start_worker(self._exact_worker, self, self._on_exact_thread_finished)
        self.exact_progress.emit(0, step - anchor_step)

    @Slot(object)
    def _on_exact_message(self, message) -> None:
        target = self._exact_target
        if target is None:
            return
        if isinstance(message, StepBatch):
            self.exact_progress.emit(message.latest.step - self._exact_start, target - self._exact_start)
        elif isinstance(message, WeightsSnapshot):
            self._exact_worker.command(AckSnapshot())
            if message.step == target:
                self._exact_target = None
                self._show(target, dict(message.state), "exact")
                self.exact_finished.emit(True)
        elif isinstance(message, FitResult) and self._exact_target is not None:
            self._exact_target = None
            if message.error:
                self.session.message.emit("error", f"Could not recompute step {target}: {message.error}")
            self.exact_finished.emit(False)

    def cancel_exact(self) -> None:
        """Stop a recomputation in progress (the stored weights stay on show)."""
        if self._exact_worker is not None:
            self._exact_target = None
            self._exact_worker.command(Stop())
            self.exact_finished.emit(False)

    # -- an evaluation of the step on show --------------------------------------------------------------
    def evaluate_shown(self) -> bool:
        """Evaluate the test set with the weights on show, in the background (progress through
        `exact_progress`, the result shown when done). False when one is going already or there is no data."""
        from cnnviz.gui.worker_threads import start_worker

        if self._eval_thread is not None or self.session.data is None:
            return False
        import copy

        model, data = copy.deepcopy(self.session.model), self.session.data
        self._eval_worker = _EvaluationWorker(model, data.test, self.session.weights_step)
        self._eval_worker.progress.connect(self._on_eval_progress)
        self._eval_worker.done.connect(self._on_eval_done)
        self._eval_thread = start_worker(self._eval_worker, self, self._on_eval_thread_finished)
        return True

    _eval_thread = None
    _eval_worker = None

    @Slot(int, int)
    def _on_eval_progress(self, done: int, total: int) -> None:
        self.exact_progress.emit(done, total)

    @Slot(object)
    def _on_eval_done(self, result) -> None:
        if isinstance(result, str):
            self.session.message.emit("warning" if "cancelled" in result else "error", result)
        else:
            self.session.show_evaluation(result)
        self.exact_finished.emit(False)

    def cancel_evaluation(self) -> None:
        if self._eval_worker is not None:
            self._eval_worker.cancel.set()

    @Slot()
    def _on_eval_thread_finished(self) -> None:
        from cnnviz.gui.worker_threads import end_worker

        if self._eval_thread is None:
            return
        thread, worker, self._eval_thread, self._eval_worker = self._eval_thread, self._eval_worker, None, None
        end_worker(thread, worker)

    def shutdown(self) -> None:
        self.cancel_evaluation()
        if self._eval_thread is not None:
            self._eval_thread.wait(15000)
            self._on_eval_thread_finished()
        if self._exact_worker is not None:
            self._exact_target = None
            self._exact_worker.shutdown()
        if self._exact_thread is not None:
            self._exact_thread.wait(15000)
            self._on_exact_thread_finished()

    @Slot()
    def _on_exact_thread_finished(self) -> None:
        from cnnviz.gui.worker_threads import end_worker

        if self._exact_thread is None:
            return
        thread, worker, self._exact_thread, self._exact_worker = self._exact_thread, self._exact_worker, None, None
        end_worker(thread, worker)



class _EvaluationWorker(QObject):
    """Evaluates a copy of the model on the test split in a worker thread."""

    progress = Signal(int, int)
    done = Signal(object)  # an Evaluation, or the message of what went wrong
    finished = Signal()

    def __init__(self, model, split, step: int) -> None:
        super().__init__()
        import threading

        self.model, self.split, self.step = model, split, step
        self.cancel = threading.Event()

    @Slot()
    def run(self) -> None:
        from cnnviz.gui.worker_threads import return_to_gui_thread
        from cnnviz.training.trainer import evaluate

        try:
            result = evaluate(self.model, self.split, "test", self.step, progress=self.progress.emit,
                              cancel=self.cancel)
        except CnnvizError as exc:
            result = str(exc)
        except Exception as exc:  # a bug must not kill the thread silently
            result = f"could not evaluate: {type(exc).__name__}: {exc}"
        finally:
            return_to_gui_thread(self)
        self.done.emit(result)
        self.finished.emit()
