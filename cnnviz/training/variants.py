"""Two runs that differ in one setting: the experiments of the tutorials (ReLU vs sigmoid, standardize on or
off, with or without dropout, one optimizer or another, a dense network vs a CNN).

:func:`variant` turns the current model and recipe into the compared one. Everything it does not change stays,
the seed above all: the training order comes from a generator seeded by the recipe alone (never by the
model), so both runs see identical batches in the same order, and what differs between their curves is the
setting.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cnnviz.config import OPTIMIZERS, Recipe
from cnnviz.errors import ConfigError
from cnnviz.models import ACTIVATIONS, ModelSpec

# The learning rate an optimizer starts from when the comparison switches to it: the one it is used with
# (Keras' and PyTorch's defaults; Adadelta's Keras example), so that the comparison is of the optimizers.
OPTIMIZER_LR = {"sgd": 0.01, "adam": 0.001, "adadelta": 1.0, "rmsprop": 0.001}
DROPOUT_RATES = (0.0, 0.25, 0.5)

CHANGES = {  # what can differ, and the values it can take
    "activation": ACTIVATIONS,
    "normalization": ("scale", "standardize"),
    "dropout": DROPOUT_RATES,
    "optimizer": OPTIMIZERS,
    "model": None,  # any preset (cnnviz.presets.PRESETS)
}


@dataclass(frozen=True)
class Variant:
    """The compared run: its model, its recipe, and what was changed, in words."""

    spec: ModelSpec
    recipe: Recipe
    label: str  # e.g. "activation: sigmoid"


def variant(spec: ModelSpec, recipe: Recipe, change: str, value) -> Variant:
    """The run that differs from (spec, recipe) in `change` only. ConfigError for an unknown change or value."""
    if change == "activation":
        if value not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {value!r}")
        return Variant(spec.with_activation(value), recipe, f"activation: {value}")
    if change == "normalization":
        if value not in CHANGES["normalization"]:
            raise ConfigError(f"normalization must be scale or standardize; got {value!r}")
        return Variant(spec, recipe.replace(data__normalization=value).validate(), f"pixels: {value}")
    if change == "dropout":
        if not any(layer.kind == "dropout" for layer in spec.layers):
            raise ConfigError("this model has no dropout layer to change; choose a model with dropout")
        return Variant(spec.with_dropout(float(value)), recipe, f"dropout: {float(value):g}")
    if change == "optimizer":
        if value not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {value!r}")
        lr = OPTIMIZER_LR[value]
        changed = recipe.replace(optimizer__name=value, optimizer__lr=lr, optimizer__schedule="constant",
                                 optimizer__nesterov=False, optimizer__momentum=0.9 if value == "sgd" else 0.0)
        return Variant(spec, changed.validate(), f"optimizer: {value} (lr {lr:g})")
    if change == "model":
        from cnnviz.presets import get_preset

        other = get_preset(str(value)).spec
        other = dataclasses.replace(other, input_shape=spec.input_shape)
        if other.num_classes != spec.num_classes:
            other = other.with_num_classes(spec.num_classes)
        return Variant(other, recipe, f"model: {value}")
    raise ConfigError(f"unknown setting to compare {change!r}; choose one of {', '.join(CHANGES)}")
