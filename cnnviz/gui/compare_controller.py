"""A second run beside the window's own: a saved run opened to compare with, or a variant trained alongside.

Run B has a Session, a TrainingController (an autosave folder of its own) and a TimelineModel of its own; its
views (the compare dock) render from that session. One timeline drives both: when the window shows a step of
run A, B shows the same step, or the same point of the same epoch when their epochs have other lengths; when
A is live, so is B. B's curves are drawn over A's in the curves view.

Training a variant starts both runs at once from the same recipe and seed, so they see identical batches in
the same order (`cnnviz/training/variants.py`); each training process gets half of the cores the window
leaves for training (at least one thread).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from cnnviz.errors import CnnvizError
from cnnviz.gui.session import Session
from cnnviz.gui.timeline_model import TimelineModel
from cnnviz.gui.training_controller import TrainingController
from cnnviz.timeline.pairing import map_step
from cnnviz.training.messages import IDLE, STOPPED
from cnnviz.training.variants import variant


class CompareController(QObject):
    """Run B of a comparison (None of it exists until `open` or `train_variant`)."""

    changed = Signal()  # B appeared, changed or went away

    def __init__(self, window_session: Session, window_controller: TrainingController, window_timeline: TimelineModel,
                 overlays, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.a_session, self.a_controller, self.a_timeline = window_session, window_controller, window_timeline
        self.overlays = overlays
        self.session = Session(window_session.spec, window_session.recipe, self)
        self.controller = TrainingController(self.session, self)
        self.timeline = TimelineModel(self.session, self)
        self.name = ""
        self.label = ""  # what differs from run A, in words
        self.active = False
        self._overlay: str | None = None
        self.session.steps_added.connect(self._on_b_steps)
        self.session.history_reset.connect(self._on_b_steps)
        self.controller.active_changed.connect(self._on_b_active)
        window_timeline.shown_step_changed.connect(self._follow_step)
        window_session.input_changed.connect(self._mirror_input)

    # -- making run B --------------------------------------------------------------------------------------
    def open(self, path: str) -> bool:
        """Compare with a saved run (a run folder or a checkpoint file)."""
        from cnnviz.training.checkpoint import load_checkpoint

        try:
            ckpt = load_checkpoint(path)
            data = self._data_for(ckpt.recipe)
        except CnnvizError as exc:
            self.a_session.message.emit("error", f"Could not compare with {path}: {exc}")
            return False
        self.close()
        s = self.session
        s.set_recipe(ckpt.recipe)
        s.set_spec(ckpt.spec)
        s.set_data(data)
        s.load_weights(ckpt.model_state, ckpt.step)
        s.reset_history(ckpt.history)
        s.set_state(STOPPED)
        self.controller.resume_from = Path(path)
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        self.timeline.set_folder(folder)
        self.name, self.label = _run_name(folder), "a saved run"
        self._start_comparing()
        return True

    def train_variant(self, change: str, value) -> bool:
        """Train run A as it is and B with one setting changed, side by side, on identical batches."""
        from cnnviz.models import spec_for_data

        a = self.a_session
        if self.a_controller.active:
            a.message.emit("warning", "Stop training before starting a comparison.")
            return False
        try:
            other = variant(a.spec, a.recipe, change, value)
            data = self._data_for(other.recipe)
            spec = spec_for_data(other.spec, data, f"the compared model ({other.label})")
        except CnnvizError as exc:
            a.message.emit("error", f"Cannot compare: {exc}")
            return False
        self.close()
        s = self.session
        s.set_recipe(other.recipe)
        s.set_spec(spec)
        s.set_data(data)
        self.controller.run_name = other.label
        self.controller.forget_run()
        self.name, self.label = other.label, other.label
        self._start_comparing()
        threads = max(1, ((os.cpu_count() or 2) - 1) // 2)  # the two runs share what the window leaves
        self.a_controller.job_threads = self.controller.job_threads = threads
        self.a_controller.start()
        self.controller.start()
        self.timeline.set_folder(self.controller.run_folder.path)
        return True

    def _data_for(self, recipe):
        """B's data: A's own when it was prepared the same way, else loaded for B (an IDX folder or the sample
        loads in well under a second; a download is refused: load the dataset for run A first)."""
        from cnnviz.data.prepare import load_data

        a = self.a_session
        if a.data is not None and recipe.data == a.recipe.data:
            return a.data
        if recipe.data.data_dir is None and recipe.data.dataset != "sample" and recipe.data.dataset != \
                a.recipe.data.dataset:
            raise CnnvizError(f"it was trained on {recipe.data.dataset}; open that dataset for this window first")
        config = recipe.data if recipe.data.dataset == a.recipe.data.dataset or recipe.data.data_dir else \
            dataclasses.replace(recipe.data, dataset=a.recipe.data.dataset, data_dir=a.recipe.data.data_dir)
        return load_data(config, fallback=False)

    def _start_comparing(self) -> None:
        self.active = True
        self._overlay = self.overlays.add(f"B: {self.name}", self.session.history, key="compared")
        if self.a_session.selected_input is not None:
            self._mirror_input(self.a_session.selected_input)
        self.changed.emit()

    def close(self) -> None:
        """End the comparison (a run B in training is stopped)."""
        if not self.active:
            return
        self.controller.shutdown()
        self.controller.forget_run()
        self.timeline.set_folder(None)
        if self._overlay is not None:
            self.overlays.remove(self._overlay)
            self._overlay = None
        self.session.set_state(IDLE)
        self.a_controller.job_threads = self.controller.job_threads = None  # A alone has the cores again
        self.active = False
        self.changed.emit()

    def shutdown(self) -> None:
        self.timeline.shutdown()
        self.controller.shutdown()
        self.controller.dispose()

    # -- keeping B beside A ------------------------------------------------------------------------------
    @Slot(object)
    def _on_b_steps(self, *_args) -> None:
        if self._overlay is not None:
            self.overlays.grow(self._overlay, self.session.history)
            self.overlays.curves.overlays_changed()

    @Slot(bool)
    def _on_b_active(self, active: bool) -> None:
        if active:
            self.timeline.set_folder(self.controller.run_folder.path)

    @Slot(int)
    def _follow_step(self, step: int) -> None:
        """Show in B the step A shows (the same point of the same epoch when their epochs differ in length)."""
        if not self.active:
            return
        if self.a_timeline.live:
            self.timeline.go_live()
            return
        self.timeline.refresh()
        if self.timeline.timeline is None:
            return
        try:
            self.timeline.seek(self.map_step(step))
        except CnnvizError:
            pass

    def map_step(self, step: int) -> int:
        """A's `step` as a step of B: the same step when their epochs are as long, else the same fraction of
        the same epoch."""
        return map_step(step, _epoch_length(self.a_session), _epoch_length(self.session))

    @Slot(object)
    def _mirror_input(self, image) -> None:
        """B's feature maps and predictions are of the same input as A's."""
        if self.active and (self.session.selected_input is None or self.session.selected_input.pixels is not
                            image.pixels):
            self.session.select_input(image)


def _epoch_length(session: Session) -> int | None:
    ends = [e.step for e in session.history.epochs if e.step is not None]
    if ends:
        return ends[0]
    if session.data is not None:
        n, size = len(session.data.train), session.recipe.train.batch_size
        return max(1, -(-n // size))
    return None


def _run_name(folder: Path) -> str:
    from cnnviz.timeline.reader import read_header

    try:
        header = read_header(folder)
    except CnnvizError:
        header = {}
    return str(header.get("name") or header.get("preset") or folder.name)
