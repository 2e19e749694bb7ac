"""Typed, frozen configuration for one experiment: data, optimizer and training loop.

A :class:`Recipe` bundles the three; presets carry one as their defaults and checkpoints store it as
JSON. Every field is plain data (str/int/float/bool/None) so configs cross threads and processes and
round-trip through ``to_dict``/``from_dict`` unchanged.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cnnviz.errors import ConfigError

DATASETS = ("sample", "mnist", "fashion", "kmnist")
VALIDATION_MODES = ("none", "train", "test")
NORMALIZATIONS = ("scale", "standardize")
OPTIMIZERS = ("sgd", "adam", "adadelta", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "gorner")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DataConfig:
    """Which data to train on and how to prepare it."""

    dataset: str = "sample"  # embedded sample, or a downloadable set: mnist / fashion / kmnist
    data_dir: str | None = None  # a folder holding the four IDX files; overrides `dataset`
    train_subset: int | None = None  # train on a stratified subset of this many examples
    validation: str = "train"  # "none"; "train": hold out part of train; "test": 20% of test, stratified
    validation_fraction: float = 0.1  # share of train held out when validation == "train"
    normalization: str = "scale"  # "scale": pixels to [0, 1]; "standardize": (x - mean) / std of train
    one_vs_rest: int | None = None  # binary task "this class vs the rest" (the six-vs-not-six notebook)
    balance_classes: bool = True  # binary task: weight the loss so both classes count equally
    seed: int = 0  # seed of splits and subsets

    def validate(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        _choice("validation", self.validation, VALIDATION_MODES)
        _choice("normalization", self.normalization, NORMALIZATIONS)
        if self.train_subset is not None and self.train_subset < 1:
            raise ConfigError(f"train subset must be at least 1 example, got {self.train_subset}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"validation fraction must be between 0 and 1, got {self.validation_fraction}")
        if self.one_vs_rest is not None and not 0 <= self.one_vs_rest <= 9:
            raise ConfigError(f"one-vs-rest class must be 0-9, got {self.one_vs_rest}")


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer and learning-rate schedule."""

    name: str = "sgd"  # sgd / adam / adadelta / rmsprop
    lr: float = 0.01  # initial (maximum) learning rate
    momentum: float = 0.0  # SGD and RMSprop momentum
    nesterov: bool = False  # SGD Nesterov momentum (needs momentum > 0)
    weight_decay: float = 0.0
    rho: float = 0.95  # Adadelta / RMSprop decay of the squared-gradient average
    eps: float = 1e-7  # Keras' epsilon for Adam / Adadelta / RMSprop
    schedule: str = "constant"  # constant / step / exponential / gorner
    step_epochs: int = 1  # step schedule: multiply by `gamma` every this many epochs
    gamma: float = 0.1  # step: factor per step; exponential: factor per `decay_steps` batches
    decay_steps: int = 2000  # exponential and gorner: batches per e-fold (gorner) or per `gamma`
    lr_min: float = 0.0001  # gorner: lr = lr_min + (lr - lr_min) * exp(-step / decay_steps)

    def validate(self) -> None:
        _choice("optimizer", self.name, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        if not self.lr > 0 or self.lr != self.lr:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if self.momentum < 0 or self.momentum >= 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.name == "sgd" and self.momentum <= 0:
            raise ConfigError("Nesterov momentum needs momentum > 0")
        if self.step_epochs < 1 or self.decay_steps < 1:
            raise ConfigError("schedule step sizes must be at least 1")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"schedule factor gamma must be in (0, 1], got {self.gamma}")
        if self.schedule == "gorner" and not 0 <= self.lr_min <= self.lr:
            raise ConfigError(f"minimum learning rate must be between 0 and lr, got {self.lr_min}")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop: length, batch size, seed and device."""

    epochs: int = 5
    batch_size: int = 64
    seed: int = 0  # seeds weights, shuffling and dropout
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    threads: int | None = None  # torch threads; None: max(1, cores - 1)
    max_steps: int | None = None  # stop after this many batches in all (quick looks, tests)
    evaluate_test: bool = True  # evaluate the test set at every epoch end

    def validate(self) -> None:
        _choice("device", self.device, DEVICES)
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max steps must be at least 1, got {self.max_steps}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1, got {self.threads}")


@dataclass(frozen=True)
class Recipe:
    """Everything but the model: data, optimizer and loop."""

    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "Recipe":
        self.data.validate()
        self.optimizer.validate()
        self.train.validate()
        return self

    def replace(self, **changes: Any) -> "Recipe":
        """Copy with changed fields, addressed as ``section__field`` (e.g. ``optimizer__lr=0.1``)."""
        parts: dict[str, dict[str, Any]] = {"data": {}, "optimizer": {}, "train": {}}
        for key, value in changes.items():
            section, _, name = key.partition("__")
            if section not in parts or not name:
                raise ConfigError(f"unknown recipe setting {key!r}")
            parts[section][name] = value
        try:
            return Recipe(
                data=dataclasses.replace(self.data, **parts["data"]),
                optimizer=dataclasses.replace(self.optimizer, **parts["optimizer"]),
                train=dataclasses.replace(self.train, **parts["train"]),
            )
        except TypeError as exc:
            raise ConfigError(f"unknown recipe setting: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "Recipe":
        if not isinstance(data, dict):
            raise ConfigError("recipe must be a JSON object")
        return cls(
            data=_section(DataConfig, data.get("data", {})),
            optimizer=_section(OptimizerConfig, data.get("optimizer", {})),
            train=_section(TrainConfig, data.get("train", {})),
        )


def _section(kind: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{kind.__name__} must be a JSON object")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {kind.__name__} setting(s): {', '.join(unknown)}")
    return kind(**values)


def _choice(what: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
