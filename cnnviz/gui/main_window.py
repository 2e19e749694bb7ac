"""The main window: dockable views around one Session, run controls, menus and the status bar."""
from __future__ import annotations

from pathlib import Path


from PySide6.QtCore import QSize, Qt, QTimer, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QToolBar, QVBoxLayout, QWidget

from cnnviz.config import Recipe
from cnnviz.data.prepare import PreparedData
from cnnviz.gui import settings
from cnnviz.gui.background_task import BackgroundTask
from cnnviz.gui.compare_controller import CompareController
from cnnviz.gui.run_exports import export_animation, export_run
from cnnviz.gui.data_loader import DataLoader
from cnnviz.gui.experiment_controller import ExperimentController
from cnnviz.gui.session import Session
from cnnviz.gui.timeline_model import TimelineModel
from cnnviz.gui.training_controller import TrainingController
from cnnviz.gui.widgets.ablation_view import AblationView
from cnnviz.gui.widgets.compare_setup import CompareSetup
from cnnviz.gui.widgets.compare_view import CompareView
from cnnviz.gui.widgets.conv_playground import ConvPlayground
from cnnviz.gui.widgets.counterfactual_view import CounterfactualView
from cnnviz.gui.widgets.curves_view import CurvesView
from cnnviz.gui.widgets.distributions_view import DistributionsView
from cnnviz.gui.widgets.draw_panel import DrawPanel
from cnnviz.gui.widgets.evaluation_view import EvaluationView
from cnnviz.gui.widgets.experiment_panel import ExperimentPanel
from cnnviz.gui.widgets.feature_maps_view import FeatureMapsView
from cnnviz.gui.widgets.filters_view import FiltersView
from cnnviz.gui.widgets.health_view import HealthView
from cnnviz.gui.widgets.message_banner import MessageBanner
from cnnviz.gui.widgets.model_editor import ModelEditor
from cnnviz.gui.widgets.projector_view import ProjectorView
from cnnviz.errors import CnnvizError
from cnnviz.formatting import format_seconds
from cnnviz.gui.widgets.run_controls import RunControls
from cnnviz.gui.widgets.timeline_bar import TimelineBar
from cnnviz.gui.window_docks import build_docks, hide_orphan_tab_bars, keep_draw_panel_width
from cnnviz.gui.window_menus import add_run_to_curves, build_menus
from cnnviz.gui.window_timeline import WindowTimeline
from cnnviz.models import spec_for_data
from cnnviz.presets import DEFAULT_PRESET, get_preset
from cnnviz.training.messages import FINISHED, PAUSED, RUNNING, STOPPED, FitResult, StepMetrics
from cnnviz.training.trainer import default_threads, resolve_device

# data options that change the prepared tensors (the rest of the recipe does not need a reload)
class MainWindow(QMainWindow):
    """The cnnviz window. `trainer_state()` is one of idle/running/paused/stopped/finished/failed."""

    def __init__(self, data: PreparedData, preset: str = DEFAULT_PRESET, recipe: Recipe | None = None) -> None:
        super().__init__()
        self.setWindowTitle("cnnviz — watch a CNN learn")
        self.resize(1440, 900)
        self.setDockNestingEnabled(True)
        p = get_preset(preset)
        recipe = recipe or p.recipe
        spec = spec_for_data(p.spec, data, f"preset '{preset}'")  # the start-up data (the sample) fits every preset
        self._shown_problem = ""  # the problem the banner was last given (dismissed once the problem is gone)
        self.session = Session(spec, recipe, self)
        self.controller = TrainingController(self.session, self)
        self.loader = DataLoader(self)
        self.experiment_controller = ExperimentController(self.session, self.controller, self.loader, preset, self)
        self.experiment_controller.confirm = lambda title, text: self.confirm(title, text)
        self.confirm = self._confirm_dialog  # tests replace this to answer dialogs
        self._build_views()
        self._build_toolbar()
        self.docks = build_docks(self)
        self._default_state = self.saveState()
        self._build_status_bar()
        self.actions_by_name = build_menus(self)
        self._connect()
        self.session.set_data(data)
        self.experiment.set_recipe(self.session.recipe)
        self.experiment.set_preset(preset)
        self._restore_layout()
        QTimer.singleShot(0, self._offer_interrupted_run)

    # -- construction ----------------------------------------------------------------------------------
    def _build_views(self) -> None:
        s = self.session
        self.experiment = ExperimentPanel(s)
        self.curves = CurvesView(s)
        self.filters = FiltersView(s)
        self.feature_maps = FeatureMapsView(s)
        self.draw = DrawPanel(s)
        self.evaluation = EvaluationView(s)
        self.model_editor = ModelEditor(s)
        self.playground = ConvPlayground(s)
        self.banner = MessageBanner()
        self.controls = RunControls()
        self.timeline = TimelineModel(s, self)
        self.timeline_bar = TimelineBar()
        self.distributions = DistributionsView(s, self.timeline)
        self.health = HealthView(s, self.timeline)
        self.counterfactual = CounterfactualView(s)
        self.counterfactual.drawing = self.draw.mnist_input
        self.ablation = AblationView(s)
        self.projector = ProjectorView(s)
        self.exports = BackgroundTask(self)
        self.compare = CompareController(s, self.controller, self.timeline, self.curves.overlays, self)
        b = self.compare
        self.compare_view = CompareView(s, b.session, extra_tabs=(
            ("Distributions", lambda session, which: DistributionsView(session, self.timeline if which == "A"
                                                                        else b.timeline)),
            ("Health", lambda session, which: HealthView(session, self.timeline if which == "A" else b.timeline))))
        self.compare_setup = CompareSetup()
        self.experiment.add_section(self.compare_setup)
        self._train_tips = (self.controls.train_button.toolTip(), self.controls.step_button.toolTip())

    def _build_toolbar(self) -> None:
        bar = QToolBar("Run", self)
        bar.setObjectName("runToolBar")
        bar.setMovable(False)
        holder = QWidget()
        column = QVBoxLayout(holder)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(self.controls)
        column.addWidget(self.timeline_bar)
        column.addWidget(self.banner)
        bar.addWidget(holder)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        device = resolve_device("auto")
        self.device_label = QLabel(f"{device.type.upper()} · {default_threads()} training thread(s)")
        self.device_label.setToolTip("Where training runs; the window keeps one core for itself")
        self.speed_label = QLabel("")
        self.speed_label.setObjectName("speedLabel")
        self.step_label = QLabel("")
        self.step_label.setObjectName("stepLabel")
        self.state_label = QLabel("idle")
        self.state_label.setObjectName("stateLabel")
        self.live_label = QLabel("")
        self.live_label.setObjectName("liveLabel")
        self.live_label.setStyleSheet("QLabel { color: #b35900; font-weight: bold; }")
        self.live_label.setToolTip("The views show an earlier step of the run; press L or Live for the newest")
        for label in (self.live_label, self.state_label, self.step_label, self.speed_label, self.device_label):
            bar.addPermanentWidget(label)

    def _connect(self) -> None:
        c, s = self.controls, self.session
        c.train_clicked.connect(self.train)
        c.pause_clicked.connect(self.toggle_pause)
        c.step_clicked.connect(self.step)
        c.stop_clicked.connect(self.stop)
        c.reset_clicked.connect(self.reset)
        for keys, slot in ((Qt.Key.Key_Space, self.toggle_pause), (QKeySequence("Ctrl+Return"), self.train),
                           (QKeySequence("Ctrl+."), self.step), (Qt.Key.Key_Escape, self.stop),
                           (QKeySequence("Ctrl+R"), self.reset)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(slot)
        s.state_changed.connect(self._on_state_changed)
        s.message.connect(self.show_message)
        self.controller.progress_changed.connect(self._on_progress)
        self.controller.run_finished.connect(self._on_run_finished)
        self.controller.saved.connect(self._on_saved)
        self.controller.active_changed.connect(self._on_run_active)
        e, x = self.experiment, self.experiment_controller
        e.preset_requested.connect(x.apply_preset)
        e.dataset_requested.connect(x.request_dataset)
        e.recipe_edited.connect(x.apply_recipe)
        e.model_override_requested.connect(x.apply_model_override)
        e.learning_rate_changed.connect(self.controller.set_learning_rate)
        e.batch_size_changed.connect(self.controller.set_batch_size)
        self.filters.operate_requested.connect(self.controller.operate_filter)
        self.model_editor.spec_applied.connect(x.apply_spec)
        x.preset_changed.connect(e.set_preset)
        x.recipe_shown.connect(e.set_recipe)
        x.dataset_shown.connect(e.set_dataset)
        x.data_problem_changed.connect(self._on_data_problem)
        x.status.connect(self._show_status)
        x.run_reset.connect(self._on_run_reset)
        self.loader.progress.connect(self._on_load_progress)
        self.loader.busy_changed.connect(self._on_loader_busy)
        self.timeline_wiring = WindowTimeline(self)
        self.health.layer_selected.connect(self._select_layer)
        self.draw.drawing_embedded.connect(self.projector.set_drawing)
        self.compare_setup.train_both_requested.connect(self.train_variant)
        self.compare_setup.stop_requested.connect(self.compare.close)
        self.compare.changed.connect(self._on_compare_changed)
        self.curves.run_list.add_requested.connect(lambda: add_run_to_curves(self))
        self.counterfactual.send_to_canvas.connect(self._send_to_canvas)
        self.draw.prediction_changed.connect(self._on_drawing_predicted)

    # -- the automation surface ------------------------------------------------------------------------
    def trainer_state(self) -> str:
        return self.session.state

    def seek(self, step: int, exact: bool = False) -> int:
        """Show every view at `step`: at once from the stored weights nearest at or before it, and with `exact`
        the very step, recomputed in the background. Returns the step shown now."""
        return self.timeline.seek(step, exact=exact)

    def shown_step(self) -> int:
        """The step of the weights every view shows."""
        return self.session.weights_step

    # -- exports of the run -----------------------------------------------------------------------------
    def export_run(self, kind: str, path: str, step: int | None = None) -> bool:
        """Export the run in the background, with progress and cancel: "onnx" (the model at `step`, default the
        step shown), "tensorboard" (the run's event files into the folder `path`). False when it cannot start."""
        return export_run(self, kind, path, step)

    def export_animation(self, path: str, choices: dict) -> bool:
        """Write the run as a GIF or MP4 in the background (choices: kind, view, size, fps, frames, scale)."""
        return export_animation(self, path, choices)

    def _on_drawing_predicted(self, _probs) -> None:
        self.counterfactual.drawing_changed()

    def _send_to_canvas(self, pixels) -> None:
        """A counterfactual goes onto the drawing canvas, which comes to the front."""
        self.draw.set_image(pixels)
        self.docks["draw"].show()
        self.docks["draw"].raise_()

    @Slot(str)
    def _select_layer(self, name: str) -> None:
        """A health warning names a layer: its filters (a conv layer) and its distributions come to the front."""
        if self.filters.select_layer(name):
            self.docks["filters"].raise_()
        self.distributions.select_layer(name)

    # -- comparing two runs ------------------------------------------------------------------------------
    def compare_with(self, path: str) -> bool:
        """Show the saved run at `path` beside this one (the compare dock, and its curves over these)."""
        return self.compare.open(str(path))

    def train_variant(self, change: str, value) -> bool:
        """Train this run (A) and one that differs in `change` (B) side by side, on identical batches."""
        if self.loader.busy or self._refuse_for_data_problem():
            return False
        self.banner.dismiss()
        self.controller.run_name = self.preset_name
        return self.compare.train_variant(change, value)

    def add_run_to_curves(self, path: str) -> bool:
        """Overlay the curves of a saved run (any number of them); False, with a message, for a bad one."""
        try:
            self.curves.overlays.add_saved(path)
        except CnnvizError as exc:
            self.show_message("error", f"Could not add the run: {exc}")
            return False
        self.docks["curves"].raise_()
        return True

    @Slot()
    def _on_compare_changed(self) -> None:
        c = self.compare
        self.compare_setup.set_comparing(c.active, c.label)
        if c.active:
            self.compare_view.set_names(self.preset_name, c.name, c.label)
            self.docks["compare"].show()
            self.docks["compare"].raise_()

    @property
    def preset_name(self) -> str:
        return self.experiment_controller.preset_name

    @property
    def data_problem(self) -> str:
        """Why the loaded data cannot train the model ("" when it can)."""
        return self.experiment_controller.data_problem

    def apply_preset(self, name: str) -> None:
        self.experiment_controller.apply_preset(name)

    def apply_recipe(self, recipe: Recipe) -> None:
        self.experiment_controller.apply_recipe(recipe)

    def request_dataset(self, dataset: str, data_dir) -> None:
        self.experiment_controller.request_dataset(dataset, data_dir)

    def open_run(self, path: str, follow: bool = False) -> bool:
        """Open a saved run (a run folder or a checkpoint file), or with `follow` a run folder another process
        is training into, live; False, with a message, for a bad one."""
        if follow:
            return self.experiment_controller.follow_run(str(path))
        if not self.experiment_controller.open_run(str(path)):
            return False
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        self.timeline.set_folder(folder)  # its timeline, if it was saved with one
        self.timeline_wiring.update_bar()
        return True

    # -- run commands ----------------------------------------------------------------------------------
    @Slot()
    def train(self) -> None:
        if self.controller.active or self.loader.busy or self._refuse_for_data_problem():
            return
        self.banner.dismiss()
        self.controller.run_name = self.preset_name
        self.controller.start()

    @Slot()
    def step(self) -> None:
        """One batch (starting a paused run when idle); refused like Train while the data does not fit."""
        if not self.controller.active and self._refuse_for_data_problem():
            return
        self.controller.step()

    def _refuse_for_data_problem(self) -> bool:
        if not self.data_problem:
            return False
        self.show_message("error", self.data_problem)
        return True

    @Slot()
    def stop(self) -> None:
        """Stop training, or cancel a download in progress."""
        if self.loader.busy:
            self.loader.cancel()
        else:
            self.controller.stop()

    @Slot()
    def toggle_pause(self) -> None:
        if self.session.state == RUNNING:
            self.controller.pause()
        elif self.session.state == PAUSED:
            self.controller.resume()

    @Slot()
    def reset(self) -> None:
        if self.session.trained and not self.confirm("Reset training", "Throw away the training so far and "
                                                     "start again from fresh weights?"):
            return
        self._reset_run()
        self.session.reset_weights()

    def _reset_run(self) -> None:
        self.experiment_controller.reset_run()

    @Slot()
    def _on_run_reset(self) -> None:
        self.timeline.set_folder(None)
        self.timeline_wiring.update_bar()
        self._update_controls()
        self.speed_label.clear()
        self.step_label.clear()

    # -- what the experiment controller reports ---------------------------------------------------------
    @Slot(str)
    def _on_data_problem(self, text: str) -> None:
        """Show (or with "" clear) why the model cannot train on the data: the panel, the banner, Train."""
        self.experiment.set_data_problem(f"{text[:1].upper()}{text[1:]}. Train stays off until the model or "
                                         "the data changes." if text else "")
        if text:
            self.show_message("error", text)
        elif self.banner.level == "error" and self._shown_problem and self.banner.text() == self._shown_problem:
            self.banner.dismiss()  # the problem this banner told of is gone
        self._shown_problem = text
        self._update_controls()

    @Slot(str, int)
    def _show_status(self, text: str, ms: int) -> None:
        if text:
            self.statusBar().showMessage(text, ms)
        else:
            self.statusBar().clearMessage()

    @Slot(bool)
    def _on_loader_busy(self, busy: bool) -> None:
        if busy:  # Stop cancels the download
            self.controls.train_button.setEnabled(False)
            self.controls.stop_button.setEnabled(True)
            self.controls.stop_button.setToolTip("Cancel the download (Esc)")
        else:
            self.controls.stop_button.setToolTip("Stop training; the run can be continued with Train (Esc)")
            self._update_controls()

    @Slot(int, int, str)
    def _on_load_progress(self, done: int, total: int, message: str) -> None:
        size = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        self.statusBar().showMessage(f"{message} {size} — press Esc or Stop to cancel")
        if total:
            self.controls.progress.setValue(int(1000 * done / total))
            verb = "reading images" if message.startswith(("Checking images", "Reading images")) else "downloading"
            self.controls.progress.setFormat(f"{verb} {100 * done / total:.0f}%")

    # -- feedback --------------------------------------------------------------------------------------
    @Slot(str, str)
    def show_message(self, level: str, text: str) -> None:
        if level == "info":
            self.statusBar().showMessage(text, 8000)
        else:
            self.banner.show_message(level, text)

    def _update_controls(self) -> None:
        """The run buttons for the session's state, and the locks on top of it."""
        self.controls.set_state(self.session.state)
        self._lock_while_ending()

    @Slot(str)
    def _on_state_changed(self, state: str) -> None:
        self.controls.set_state(state)
        self._lock_while_ending()
        self.state_label.setText(state)
        self.experiment.set_running(state in (RUNNING, PAUSED))

    @Slot(bool)
    def _on_run_active(self, active: bool) -> None:
        if active:  # the run records itself into this folder (or is followed there): its timeline
            folder = self.controller.following or self.controller.run_folder.path
            if self.timeline.folder != folder:
                self.timeline.set_folder(folder)
            self.timeline.go_live()
        self.controls.set_state(self.session.state)
        self._lock_while_ending()

    def _lock_while_ending(self) -> None:
        """A run that reported its end still shuts its process down (about a second): until it is gone,
        Train and Step would be clicks that do nothing, so they wait disabled."""
        if self.controller.active and self.session.state not in (RUNNING, PAUSED):
            self.controls.train_button.setEnabled(False)
            self.controls.step_button.setEnabled(False)
        # Data the model cannot take: no run can start (one that is going on is another model's, kept).
        blocked = bool(self.data_problem) and not self.controller.active
        for button, tip in zip((self.controls.train_button, self.controls.step_button), self._train_tips):
            if blocked:
                button.setEnabled(False)
            button.setToolTip(self.data_problem if blocked else tip)

    @Slot(object)
    def _on_progress(self, m: StepMetrics) -> None:
        self.controls.set_progress(m)
        self.speed_label.setText(f"{m.images_per_second:,.0f} images/s")
        self.step_label.setText(f"epoch {m.epoch}/{m.epochs} · step {m.step:,} · ETA {format_seconds(m.eta_seconds)}")

    @Slot(object)
    def _on_run_finished(self, result: FitResult) -> None:
        if result.status == FINISHED and result.evaluation is not None:
            self.statusBar().showMessage(f"Finished: test accuracy {result.evaluation.accuracy * 100:.2f}% after "
                                         f"{result.epochs_completed} epochs ({result.seconds:.0f} s)", 15000)
        elif result.status == STOPPED:
            self.statusBar().showMessage("Stopped. Press Continue to go on from here.", 15000)

    @Slot(str)
    def _on_saved(self, path: str) -> None:
        self.statusBar().showMessage(f"Saved the run to {path}", 8000)

    def _confirm_dialog(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # -- layout and shutdown ---------------------------------------------------------------------------
    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for dock in self.docks.values():
            dock.show()

    def _restore_layout(self) -> None:
        geometry, state = settings.load_window()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def _offer_interrupted_run(self) -> None:
        path = self.controller.interrupted_run()
        if path is None:
            return
        self.controller.clear_interrupted()
        if self.confirm("Reopen the interrupted run?", "cnnviz did not close cleanly while training. Its last "
                        "autosave (at the end of an epoch) is available. Reopen it?"):
            self.open_run(str(path))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        keep_draw_panel_width(self, event.size().width())

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(1440, 900)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        QTimer.singleShot(0, self._hide_orphan_tab_bars)  # once the docks have their places

    def _hide_orphan_tab_bars(self) -> None:
        hide_orphan_tab_bars(self)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.experiment_controller.closing = True
        settings.save_window(self.saveGeometry(), self.saveState())
        settings.save_experiment(self.preset_name, self.session.recipe)
        self.loader.shutdown()
        self.exports.cancel()
        self.exports.wait()
        for runner in (self.ablation.runner, self.counterfactual.runner, self.filters.top_patches.runner,
                       self.draw.occlusion_runner):
            runner.cancel()
            runner.wait()
        self.timeline.shutdown()
        self.compare.shutdown()
        for view in (self.projector, self.draw, self.filters.actmax):
            view.shutdown()
        self.controller.shutdown()
        self.controller.dispose()
        super().closeEvent(event)


__all__ = ["MainWindow"]
