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
from cnnviz.validation import Range, check_fields, check_instance, check_ranges, parse_json, ranged

DATASETS = ("sample", "mnist", "fashion", "kmnist", "cifar10")
VALIDATION_MODES = ("none", "train", "test")
NORMALIZATIONS = ("scale", "standardize")
OPTIMIZERS = ("sgd", "adam", "adadelta", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "gorner")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16")


# Every numeric setting declares its range beside it (``ranged(default, low, high)``); `validate()`
# checks them, and the CLI and the window's spin boxes read the same ranges (`RANGES`). The table in
# README.md ("Option ranges") lists them.
MAX_SEED = 2**31 - 1  # the window's spin box holds 32-bit signed integers; torch and numpy take more


@dataclass(frozen=True)
class DataConfig:
    """Which data to train on and how to prepare it."""

    dataset: str = "sample"  # embedded sample, or a downloadable set: mnist / fashion / kmnist / cifar10
    # a folder holding the four IDX files, or images in class subfolders; overrides `dataset`
    data_dir: str | None = None
    # train on a stratified subset of this many examples; None: all
    train_subset: int | None = ranged(None, 1, 10_000_000, label="train subset")
    validation: str = "train"  # "none"; "train": hold out part of train; "test": 20% of test, stratified
    # share of train held out when validation == "train" (the window shows whole percents, 1-50 %)
    validation_fraction: float = ranged(0.1, 0.01, 0.5, label="validation fraction")
    normalization: str = "scale"  # "scale": pixels to [0, 1]; "standardize": (x - mean) / std of train
    # binary task "this class vs the rest" (the six-vs-not-six notebook); a class of the 10-class sets
    one_vs_rest: int | None = ranged(None, 0, 9, label="one-vs-rest class")
    balance_classes: bool = True  # binary task: weight the loss so both classes count equally
    seed: int = ranged(0, 0, MAX_SEED, label="seed")  # seed of splits and subsets

    def validate(self) -> None:
        check_instance(self, ConfigError, "data")
        _choice("dataset", self.dataset, DATASETS)
        _choice("validation", self.validation, VALIDATION_MODES)
        _choice("normalization", self.normalization, NORMALIZATIONS)
        check_ranges(self, ConfigError)


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer and learning-rate schedule."""

    name: str = "sgd"  # sgd / adam / adadelta / rmsprop
    # initial (maximum) learning rate; 100 is far past divergence for every preset
    lr: float = ranged(0.01, 1e-6, 100.0, label="learning rate")
    momentum: float = ranged(0.0, 0.0, 1.0, high_open=True, label="momentum")  # SGD and RMSprop momentum
    nesterov: bool = False  # SGD Nesterov momentum (needs momentum > 0)
    weight_decay: float = ranged(0.0, 0.0, 1.0, high_open=True, label="weight decay")  # L2 penalty factor
    # Adadelta / RMSprop decay of the squared-gradient average
    rho: float = ranged(0.95, 0.0, 1.0, high_open=True, label="rho")
    # Keras' epsilon for Adam / Adadelta / RMSprop; 0 would divide 0 by 0
    eps: float = ranged(1e-7, 0.0, 1.0, low_open=True, label="epsilon")
    schedule: str = "constant"  # constant / step / exponential / gorner
    # step schedule: multiply by `gamma` every this many epochs
    step_epochs: int = ranged(1, 1, 10_000, label="schedule step (epochs)")
    # step: factor per step; exponential: factor per `decay_steps` batches
    gamma: float = ranged(0.1, 0.0, 1.0, low_open=True, label="schedule factor gamma")
    # exponential and gorner: batches per e-fold (gorner) or per `gamma`
    decay_steps: int = ranged(2000, 1, 10_000_000, label="decay steps")
    # gorner: lr = lr_min + (lr - lr_min) * exp(-step / decay_steps); also at most lr
    lr_min: float = ranged(0.0001, 0.0, 100.0, label="minimum learning rate")

    def validate(self) -> None:
        check_instance(self, ConfigError, "optimizer")
        _choice("optimizer", self.name, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        check_ranges(self, ConfigError)
        if self.nesterov and self.name == "sgd" and self.momentum <= 0:
            raise ConfigError("Nesterov momentum needs momentum > 0")
        if self.schedule == "gorner" and not self.lr_min <= self.lr:
            raise ConfigError(f"minimum learning rate must be between 0 and lr, got {self.lr_min}")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop: length, batch size, seed and device."""

    epochs: int = ranged(5, 1, 10_000, label="epochs")
    batch_size: int = ranged(64, 1, 65_536, label="batch size")
    seed: int = ranged(0, 0, MAX_SEED, label="seed")  # seeds weights, shuffling and dropout
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    threads: int | None = ranged(None, 1, 1024, label="threads")  # torch threads; None: max(1, cores - 1)
    # stop after this many batches in all (quick looks, tests); None: no limit
    max_steps: int | None = ranged(None, 1, 1_000_000_000, label="max steps")
    evaluate_test: bool = True  # evaluate the test set at every epoch end
    # read the losses back and check for divergence every this many steps, not after every step (a bad step
    # then rolls the run back to its last good state); None: every step on one CPU process, 32 on a GPU or
    # with several processes (see Trainer.check_every)
    check_every: int | None = ranged(None, 1, 100_000, label="divergence check interval")
    precision: str = "fp32"  # "bf16": the forward pass under bfloat16 autocast (for GPUs that have it)
    compile: bool = False  # torch.compile the model for training (a GPU's fast path; slow to start)

    def validate(self) -> None:
        check_instance(self, ConfigError, "train")
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        check_ranges(self, ConfigError)


@dataclass(frozen=True)
class Recipe:
    """Everything but the model: data, optimizer and loop."""

    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "Recipe":
        """Check every field's type and range; returns self; raises :class:`ConfigError`."""
        for name, kind in _SECTIONS.items():
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"recipe: {name} must be a {kind.__name__}, got {type(getattr(self, name)).__name__}")
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
        """Read a recipe from :meth:`to_dict`'s format, checking every field's type (not yet its range:
        :meth:`validate` does that); raises :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError("recipe must be a JSON object")
        unknown = sorted(str(k)[:40] for k in data if k not in _SECTIONS)
        if unknown:
            raise ConfigError(f"recipe: unknown section(s): {', '.join(unknown[:10])}")
        return cls(**{name: kind(**check_fields(kind, data.get(name, {}), ConfigError, name))
                      for name, kind in _SECTIONS.items()})

    @classmethod
    def from_json(cls, text: Any) -> "Recipe":
        """:meth:`from_dict` of JSON text, then :meth:`validate`: types and ranges."""
        return cls.from_dict(parse_json(text, "recipe", ConfigError)).validate()


_SECTIONS = {"data": DataConfig, "optimizer": OptimizerConfig, "train": TrainConfig}

# "section.field" -> its Range, for the CLI's help and the window's spin boxes.
RANGES: dict[str, Range] = {
    f"{section}.{f.name}": f.metadata["range"]
    for section, kind in _SECTIONS.items() for f in dataclasses.fields(kind) if "range" in f.metadata
}


def _choice(what: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
