"""The window's shared state: one object every view wraps, and the signals that tell views what changed.

The training controller feeds it plain-data messages from the training process; views read from it and
never talk to the trainer. It also owns the *inference copy* of the model: a CPU model that gets the
latest weight snapshot, used by the canvas, the feature maps and the filters (never the model the
trainer is mutating).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from cnnviz.config import Recipe
from cnnviz.data.prepare import PreparedData
from cnnviz.data.prepare import Normalization
from cnnviz.inspect.inference import InferenceModel
from cnnviz.models import CnnvizNet, ModelSpec, build_model
from cnnviz.training.history import History
from cnnviz.training.messages import IDLE, EpochMetrics, Evaluation, StepBatch, WeightsSnapshot
from cnnviz.training.surgery import FilterOperation, SurgeryLog


@dataclass(frozen=True)
class InputImage:
    """The image whose feature maps are shown: H x W (or H x W x 3 in colour) float32 in [0, 1] (ink = 1), and
    where it came from.

    H x W is the model's input size (28 x 28 for MNIST): test images come at the data's size, which the
    model is fitted to, and drawings are prepared at :attr:`Session.input_size`.
    """

    pixels: np.ndarray
    label: str  # e.g. "test #17 (true 4)" or "drawing"
    source: str = "test"  # "test", "train" (a nearest training digit), "drawing" or "file"
    index: int | None = None  # test-set index when source == "test"


class Session(QObject):
    """The current experiment: model spec, recipe, data, weights, history, evaluation and selected input."""

    spec_changed = Signal(object)  # ModelSpec: a new model (views reset)
    recipe_changed = Signal(object)  # Recipe
    data_changed = Signal(object)  # PreparedData
    steps_added = Signal(object)  # StepBatch
    epoch_ended = Signal(object)  # EpochMetrics
    evaluation_ready = Signal(object)  # Evaluation
    weights_changed = Signal(object)  # WeightsSnapshot, already loaded into `model`
    state_changed = Signal(str)  # idle / running / paused / stopped / finished / failed
    history_reset = Signal(object)  # History: after a reset or when a run is opened
    input_changed = Signal(object)  # InputImage
    surgery_changed = Signal(object)  # tuple of FilterOperation: the run's filter operations
    message = Signal(str, str)  # level ("info", "warning", "error"), text

    def __init__(self, spec: ModelSpec, recipe: Recipe, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.recipe = recipe
        self.data: PreparedData | None = None
        self.state = IDLE
        self.history = History()
        self.evaluation: Evaluation | None = None
        self.selected_input: InputImage | None = None
        self.trained = False  # False while the weights are the random initial ones
        self.weights_step = 0  # the step of the weights on show
        self.live = True  # False while the views show an earlier step of the run (the timeline)
        self.latest: WeightsSnapshot | None = None  # the run's newest weights, shown or not
        self.latest_evaluation: Evaluation | None = None  # the run's newest evaluation, shown or not
        self.surgeries: tuple[FilterOperation, ...] = ()  # the filter operations of the run, in order
        self.spec = spec
        self.model: CnnvizNet = self._fresh_model(spec)

    # -- the model -------------------------------------------------------------------------------------
    def _fresh_model(self, spec: ModelSpec) -> CnnvizNet:
        torch.manual_seed(self.recipe.train.seed)  # the same initial weights the trainer will start from
        return build_model(spec).eval()

    def set_spec(self, spec: ModelSpec) -> None:
        """Switch to a new (untrained) model; clears history and evaluation."""
        self.live, self.latest, self.latest_evaluation = True, None, None
        self.model = self._fresh_model(spec)
        self.spec = self.model.spec
        self.trained, self.weights_step = False, 0
        self.reset_history()
        self.set_surgeries(())
        self.spec_changed.emit(self.spec)

    def reset_weights(self) -> None:
        """Back to the initial weights of the current spec (Reset)."""
        self.set_spec(self.spec)

    def apply_snapshot(self, snapshot: WeightsSnapshot) -> None:
        """The run's newest weights: shown when live; kept for later while the views show an earlier step."""
        self.latest = snapshot
        if self.live:
            self._load(snapshot)

    def show_weights(self, snapshot: WeightsSnapshot) -> None:
        """Show the weights of an earlier step (the timeline): every view renders from them until `go_live`."""
        self.live = False
        self._load(snapshot)

    def go_live(self) -> None:
        """Back to the run's newest weights and evaluation."""
        self.live = True
        if self.latest is not None:
            self._load(self.latest)
        if self.latest_evaluation is not None and self.evaluation is not self.latest_evaluation:
            self.evaluation = self.latest_evaluation
            self.evaluation_ready.emit(self.latest_evaluation)

    def show_evaluation(self, evaluation: Evaluation | None) -> None:
        """The evaluation that goes with the step on show (None: none recorded at or before it)."""
        self.evaluation = evaluation
        if evaluation is not None:
            self.evaluation_ready.emit(evaluation)

    def _load(self, snapshot: WeightsSnapshot) -> None:
        state = {k: torch.from_numpy(np.array(v)) for k, v in snapshot.state.items()}
        self.model.load_state_dict(state)
        self.model.eval()
        self.trained = snapshot.step > 0
        self.weights_step = snapshot.step
        self.weights_changed.emit(snapshot)

    def load_weights(self, state: dict[str, torch.Tensor], step: int) -> None:
        """Load weights from an opened run (same spec): the run's newest, shown live."""
        arrays = {k: v.detach().cpu().numpy().copy() for k, v in state.items()}
        self.live, self.latest = True, WeightsSnapshot(step, 0, arrays)
        self._load(self.latest)

    # -- recipe and data -------------------------------------------------------------------------------
    def set_recipe(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.recipe_changed.emit(recipe)

    def set_data(self, data: PreparedData) -> None:
        self.data = data
        self.evaluation = None
        self.data_changed.emit(data)
        if self.selected_input is None or self.selected_input.source in ("test", "train"):
            self.select_test_image(0)

    @property
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images the current model takes (the data's, once fitted to it)."""
        _, height, width = self.spec.input_shape
        return int(height), int(width)

    @property
    def class_names(self) -> tuple[str, ...]:
        if self.data is not None:
            return tuple(self.data.class_names)
        return tuple(str(i) for i in range(self.spec.num_classes))

    # -- metrics from the trainer ----------------------------------------------------------------------
    def add_steps(self, batch: StepBatch) -> None:
        self.history.add_steps(batch.losses, batch.accuracies, batch.lrs)
        self.steps_added.emit(batch)

    def add_epoch(self, metrics: EpochMetrics) -> None:
        if metrics.step is None:  # the trainer sends an epoch's last steps before its end: it ended here
            metrics = dataclasses.replace(metrics, step=self.history.steps)
        self.history.epochs.append(metrics)
        self.epoch_ended.emit(metrics)

    def set_evaluation(self, evaluation: Evaluation) -> None:
        self.latest_evaluation = evaluation
        if not self.live:  # the views show an earlier step: the history still learns of it
            if evaluation.split == "test" and len(self.history.test_accuracy) < len(self.history.epochs):
                self.history.test_accuracy.append(evaluation.accuracy)
            return
        self.evaluation = evaluation
        if evaluation.split == "test" and len(self.history.test_accuracy) < len(self.history.epochs):
            self.history.test_accuracy.append(evaluation.accuracy)
        self.evaluation_ready.emit(evaluation)

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def reset_history(self, history: History | None = None) -> None:
        self.history = history if history is not None else History()
        self.evaluation = None
        self.history_reset.emit(self.history)

    def set_surgeries(self, operations) -> None:
        """The run's filter operations (zeroed, frozen, ... filters), in the order they were applied."""
        operations = tuple(operations)
        if operations != self.surgeries:
            self.surgeries = operations
            self.surgery_changed.emit(operations)

    def frozen_filters(self) -> tuple[tuple[str, int], ...]:
        """(layer, filter) of the filters frozen in the weights on show (an earlier step: as they were then)."""
        ops = self.surgeries if self.live else [op for op in self.surgeries if op.step < self.weights_step]
        return SurgeryLog(list(ops)).frozen

    # -- inputs and predictions ------------------------------------------------------------------------
    def select_input(self, image: InputImage) -> None:
        self.selected_input = image
        self.input_changed.emit(image)

    def select_test_image(self, index: int) -> None:
        """Make test image `index` the feature-map input."""
        if self.data is None or len(self.data.test) == 0:
            return
        index = int(np.clip(index, 0, len(self.data.test) - 1))
        pixels = self.data.test.raw[index].astype(np.float32) / 255.0
        true = self.data.class_names[int(self.data.test.labels[index])]
        self.select_input(InputImage(pixels, f"test #{index} (true {true})", "test", index))

    def select_train_image(self, index: int) -> None:
        """Make training image `index` the feature-map input (a nearest training digit clicked)."""
        if self.data is None or not 0 <= int(index) < len(self.data.train):
            return
        pixels = self.data.train.raw[int(index)].astype(np.float32) / 255.0
        label = self.data.class_names[int(self.data.train.labels[int(index)])]
        self.select_input(InputImage(pixels, f"training #{int(index)} (label {label})", "train", int(index)))

    @property
    def inference(self) -> InferenceModel:
        """The latest weights with the data's normalisation: what the drawing and the inputs are judged by."""
        normalization = self.data.normalization if self.data is not None else Normalization()
        return InferenceModel(self.model, normalization, self.class_names)

    def to_tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """An H x W [0, 1] image as the (1, 1, H, W) input the model sees (SpecError for another size)."""
        return self.inference.to_tensor(pixels)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities of an H x W [0, 1] image (the model's input size) with the latest weights."""
        return self.inference.predict(pixels)

    def predict_embedded(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities and the embedding (None without a dense layer) of an image, in one forward pass."""
        return self.inference.predict_embedded(pixels)
