"""The experiment's use cases, apart from any widget: choose a preset, edit the recipe or the model, load data,
open and save runs.

It owns the rules (a model change discards training, so ask first; the model takes the data's image size and
classes; data the model cannot take is loaded and the problem shown, Train waits), changes the Session, steers
the TrainingController and the DataLoader, and tells the window what to show through its signals. The window
and the menus only map widgets and actions to its slots.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from cnnviz.config import DataConfig, Recipe
from cnnviz.data.prepare import PreparedData
from cnnviz.errors import CnnvizError, SpecError
from cnnviz.models import ModelSpec, fit_to_images, image_shape, input_mismatch, spec_for_data
from cnnviz.presets import PRESETS
from cnnviz.training.messages import IDLE, STOPPED

# data options that change the prepared tensors (the rest of the recipe does not need a reload)
_DATA_KEYS = ("dataset", "data_dir", "train_subset", "validation", "validation_fraction", "normalization",
              "one_vs_rest", "balance_classes", "seed")


def preset_of(spec: ModelSpec) -> str:
    """The name of the preset whose layers ``spec`` has (a run opened from disk), or "custom"."""
    layers = spec.named().layers
    return next((name for name, p in PRESETS.items() if p.spec.named().layers == layers), "custom")


class ExperimentController(QObject):
    """Preset, recipe, model, data and runs of the window's one experiment."""

    preset_changed = Signal(str)  # the preset shown ("custom" for a run whose model is no preset's)
    recipe_shown = Signal(object)  # Recipe: the form should show it
    dataset_shown = Signal(str, object)  # dataset key, data folder: the dataset chooser should show it
    data_problem_changed = Signal(str)  # why the model cannot take the data ("" when it can)
    status = Signal(str, int)  # a passing line for the status bar, and for how many ms
    run_reset = Signal()  # the run was thrown away (the run's readouts should clear)

    def __init__(self, session, controller, loader, preset: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.controller, self.loader = session, controller, loader
        self.preset_name = preset
        # Set while the loaded data and the chosen model do not go together (e.g. 1x1 images through a 3x3
        # 'valid' convolution): the message shown, and the model the user chose, to fit when the data changes.
        self.data_problem = ""
        self._pending_spec: ModelSpec | None = None
        self.loaded_config: DataConfig = session.recipe.data  # what the data was prepared from
        self.closing = False
        self.confirm = lambda title, text: True  # the window asks the user
        session.spec_changed.connect(self._on_spec_changed)
        loader.loaded.connect(self._on_data_loaded)
        loader.failed.connect(self._on_load_failed)

    # -- the run -------------------------------------------------------------------------------------------
    def reset_run(self) -> None:
        """Throw the current run away (its process too): the next Train starts a fresh one."""
        self.controller.shutdown()
        self.controller.forget_run()
        self.session.set_state(IDLE)
        self.run_reset.emit()

    def _ask_reset(self, what: str) -> bool:
        """Model changes discard training: ask first when there is something to lose."""
        if not (self.session.trained or self.controller.active):
            return True
        return self.confirm("Change the model", f"{what} resets the model and discards its training. Continue?")

    # -- experiment changes --------------------------------------------------------------------------------
    @Slot(str)
    def apply_preset(self, name: str) -> None:
        if name not in PRESETS or not self._ask_reset(f"Switching to preset {name!r}"):
            self.preset_changed.emit(self.preset_name)
            return
        preset = PRESETS[name]
        current = self.session.recipe.data
        recipe = dataclasses.replace(preset.recipe, data=dataclasses.replace(
            preset.recipe.data, dataset=current.dataset, data_dir=current.data_dir))
        self.preset_name = name
        self.reset_run()
        self.session.set_recipe(recipe)
        self.recipe_shown.emit(recipe)
        self.preset_changed.emit(name)
        self._set_spec_for_data(preset.spec, f"preset '{name}'")
        self.reload_data_if_needed(recipe.data)

    @Slot(object)
    def apply_recipe(self, recipe: Recipe) -> None:
        old = self.session.recipe
        if self.controller.active:  # only lr and batch size change while running (forwarded live)
            return
        self.session.set_recipe(recipe)
        if recipe.data.one_vs_rest != old.data.one_vs_rest:
            classes = 2 if recipe.data.one_vs_rest is not None else 10
            if classes != self.session.spec.num_classes:
                self.reset_run()
                self._set_spec_for_data(self._pending_spec or self.session.spec)
        self.reload_data_if_needed(recipe.data)

    @Slot(object, object)
    def apply_model_override(self, activation, dropout) -> None:
        spec = PRESETS[self.preset_name].spec if self.preset_name in PRESETS else self.session.spec
        if activation:
            spec = spec.with_activation(activation)
        if dropout is not None:
            spec = spec.with_dropout(dropout)
        self.apply_spec(spec)

    @Slot(object)
    def apply_spec(self, spec: ModelSpec) -> None:
        if not self._ask_reset("Applying this model"):
            return
        self.reset_run()
        self._set_spec_for_data(spec)

    def _set_spec_for_data(self, spec: ModelSpec, what: str | None = None) -> bool:
        """Make ``spec``, fitted to the loaded data's image size and classes, the session's model.

        When it cannot take the data's images, the session keeps its model, the problem is shown
        (banner, data panel) and Train is refused until the model or the data changes. Returns whether
        the spec was set.
        """
        data = self.session.data
        classes = data.num_classes if data is not None else spec.num_classes
        if self.session.recipe.data.one_vs_rest is not None:
            classes = 2  # the data is reloaded for the binary task after this
        shape = image_shape(data) if data is not None else tuple(spec.input_shape)
        try:
            fitted = fit_to_images(spec, shape, classes, what or self._model_label(spec))
        except SpecError as exc:
            self._set_data_problem(str(exc), spec)
            return False
        self.session.set_spec(fitted)
        self._set_data_problem("")
        return True

    def _model_label(self, spec: ModelSpec) -> str:
        """``"preset 'gorner'"`` while ``spec`` has the current preset's layers, else ``"the model"``."""
        preset = PRESETS.get(self.preset_name)
        if preset is not None and preset.spec.named().layers == spec.named().layers:
            return f"preset '{self.preset_name}'"
        return "the model"

    def _set_data_problem(self, text: str, wanted: ModelSpec | None = None) -> None:
        """Show (or with "" clear) why the model cannot train on the data; ``wanted`` is the model the
        user chose, fitted again when other data loads."""
        self.data_problem = text
        self._pending_spec = wanted if text else None
        self.data_problem_changed.emit(text)

    @Slot(object)
    def _on_spec_changed(self, spec: ModelSpec) -> None:
        # A model set another way (a run opened from disk) that takes the loaded data ends the problem.
        data = self.session.data
        if self.data_problem and data is not None and input_mismatch(spec, data) is None \
                and spec.num_classes == data.num_classes:
            self._set_data_problem("")

    # -- data ----------------------------------------------------------------------------------------------
    @Slot(str, object)
    def request_dataset(self, dataset: str, data_dir) -> None:
        if self.controller.active:
            self.session.message.emit("warning", "Stop training before switching datasets.")
            self.dataset_shown.emit(self.session.recipe.data.dataset, self.session.recipe.data.data_dir)
            return
        data = dataclasses.replace(self.session.recipe.data, dataset=dataset, data_dir=data_dir)
        self.reload_data_if_needed(data, force=True)

    def reload_data_if_needed(self, config: DataConfig, force: bool = False) -> None:
        current = self.session.recipe.data
        same = all(getattr(config, k) == getattr(current, k) for k in _DATA_KEYS)
        if self.session.data is not None and same and not force and self.loaded_config == config:
            return
        if self.closing:  # a retry still queued when the window closed must not start a load nobody waits for
            return
        if self.loader.busy:
            self.loader.cancel()
            QTimer.singleShot(100, self, lambda: self.reload_data_if_needed(config, force))
            return
        self.status.emit("Loading data…", 0)
        self.loader.load(config)

    @Slot(object, object)
    def _on_data_loaded(self, data: PreparedData, config: DataConfig) -> None:
        self.loaded_config = config
        if data.notice:
            self.session.message.emit("warning", data.notice)
            config = dataclasses.replace(config, dataset="sample", data_dir=None)
        recipe = dataclasses.replace(self.session.recipe, data=config)
        self.session.set_recipe(recipe)
        self.recipe_shown.emit(recipe)
        self.dataset_shown.emit(config.dataset, config.data_dir)
        # The model takes the data's image size and classes. Data the model cannot take is still loaded
        # (it is good data; the model is what does not fit): the problem is shown and Train waits for a
        # model that fits, which then needs no reload.
        wanted = self._pending_spec or self.session.spec
        problem = ""
        try:
            fitted = spec_for_data(wanted, data, self._model_label(wanted))
        except SpecError as exc:
            fitted, problem = None, str(exc)
        if fitted is not None and fitted != self.session.spec:
            self.reset_run()
            self.session.set_spec(fitted)
        self.session.set_data(data)
        self._set_data_problem(problem, wanted)
        channels, h, w = image_shape(data)
        self.status.emit(f"{data.name}: {len(data.train):,} training, {len(data.test):,} test images ({h}x{w}"
                         f"{', colour' if channels == 3 else ''})", 8000)

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.status.emit("", 0)  # the progress line; cleared first so the message below stays
        if message in ("download cancelled", "loading cancelled"):  # a download, or a folder of images
            self.session.message.emit("info", f"{message.capitalize()}; the previous data is still loaded.")
        else:
            self.session.message.emit("error", message)
        self.dataset_shown.emit(self.session.recipe.data.dataset, self.session.recipe.data.data_dir)

    # -- runs on disk ------------------------------------------------------------------------------------
    def open_run(self, path: str) -> bool:
        """Open a saved run (a run folder or its checkpoint): its model, weights, history and recipe; Train
        then continues it. A bad file is a message, and the current run stays."""
        from cnnviz.training.checkpoint import load_checkpoint
        from cnnviz.training.trainer import evaluate

        try:
            ckpt = load_checkpoint(path)
        except CnnvizError as exc:
            self.session.message.emit("error", f"Could not open the run: {exc}")
            return False
        if self.controller.active and not self.confirm("Open run", "Opening a run stops the current training. "
                                                      "Continue?"):
            return False
        self.reset_run()
        s = self.session
        s.set_recipe(ckpt.recipe)
        self.recipe_shown.emit(ckpt.recipe)
        self.preset_name = preset_of(ckpt.spec)
        self.preset_changed.emit(self.preset_name)
        s.set_spec(ckpt.spec)
        s.load_weights(ckpt.model_state, ckpt.step)
        s.reset_history(ckpt.history)
        s.set_surgeries(ckpt.surgery)
        self.controller.resume_from = Path(path)
        self.controller.last_checkpoint = Path(path)
        if s.data is not None and s.data.num_classes == ckpt.spec.num_classes and ckpt.step > 0 \
                and input_mismatch(ckpt.spec, s.data) is None:  # a run on other-sized images waits for its data
            test = dataclasses.replace(s.data.test, images=ckpt.normalization.apply(s.data.test.raw))
            s.set_evaluation(evaluate(s.model, test, "test", ckpt.step))
        self.reload_data_if_needed(ckpt.recipe.data)
        s.set_state(STOPPED if ckpt.step > 0 else s.state)
        self.status.emit(f"Opened {path}: {ckpt.epoch} epochs, {ckpt.step:,} steps. Press Continue to train on.",
                         10000)
        return True

    def follow_run(self, path: str) -> bool:
        """Follow a run that another process is writing into the folder `path` (cnnviz train --out, on this
        machine or through a shared folder): its model and recipe from the folder, then every step live."""
        from cnnviz.models import ModelSpec
        from cnnviz.config import Recipe
        from cnnviz.timeline.reader import read_header

        try:
            header = read_header(Path(path))
            spec, recipe = ModelSpec.from_dict(header["spec"]), Recipe.from_dict(header["recipe"]).validate()
        except (CnnvizError, KeyError, TypeError) as exc:
            detail = "it has no run description yet" if isinstance(exc, (KeyError, TypeError)) else str(exc)
            self.session.message.emit("error", f"Cannot follow {path}: {detail}")
            return False
        if self.controller.active and not self.confirm("Follow run", "Following a run stops the current "
                                                      "training. Continue?"):
            return False
        self.reset_run()
        s = self.session
        s.set_recipe(recipe)
        self.recipe_shown.emit(recipe)
        self.preset_name = preset_of(spec)
        self.preset_changed.emit(self.preset_name)
        s.set_spec(spec)
        self.reload_data_if_needed(recipe.data)
        self.controller.follow(path)
        self.status.emit(f"Following {path}: the window shows the run as it trains; closing it leaves the "
                         "training going.", 10000)
        return True

    def save_run(self, path: str) -> bool:
        """Save the current run: a path ending in ``.safetensors`` gets its checkpoint; any other path becomes a
        run folder, a copy of the run's own with its whole timeline (while a run trains, its checkpoint is
        written there by the training process and the timeline is copied as it stands). False, with a
        message, when there is nothing to save yet or it cannot be written."""
        if path.endswith(".safetensors"):
            return self._save_checkpoint(path)
        source = self.controller.run_folder.path if self.controller.following is None else self.controller.following
        if self.controller.resume_from is not None and not self.controller.active:
            opened = Path(self.controller.resume_from)
            source = opened if opened.is_dir() else opened.parent
        target = Path(path)
        if not (source / "checkpoint.safetensors").is_file() and not self.controller.active:
            return self._save_checkpoint(str(target / "checkpoint.safetensors"))
        if target.exists() and any(target.iterdir()) if target.is_dir() else target.exists():
            self.session.message.emit("error", f"Could not save the run: {target} exists already; choose a new name")
            return False
        try:
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("RUNNING", ".incoming-*", "*.tmp"),
                            dirs_exist_ok=True)
        except (OSError, shutil.Error) as exc:
            self.session.message.emit("error", f"Could not save the run to {target}: {exc}")
            return False
        if self.controller.active:  # the newest state, from the training process itself
            return self._save_checkpoint(str(target / "checkpoint.safetensors"))
        self.status.emit(f"Saved the run and its timeline to {target}", 8000)
        return True

    def _save_checkpoint(self, path: str) -> bool:
        try:
            ok = self.controller.save(path)
        except OSError as exc:
            self.session.message.emit("error", f"Could not save {path}: {exc.strerror or exc}")
            return False
        if not ok:
            self.session.message.emit("warning", "Nothing to save yet: train the model first.")
        return ok
