"""Two runs that differ in one setting see identical batches in the same order."""
from __future__ import annotations

import pytest
import torch

from cnnviz.config import DataConfig
from cnnviz.data.prepare import load_data
from cnnviz.errors import ConfigError
from cnnviz.presets import get_preset
from cnnviz.training.trainer import Trainer
from cnnviz.training.variants import variant


def batches_seen(trainer: Trainer, steps: int) -> list[list[int]]:
    """The example indices of each batch the trainer trains on, for `steps` batches."""
    seen = []
    plan = trainer._epoch_plan

    def recording_plan():
        order, images, labels, size, starts = plan()
        seen.extend(order[s:s + size].tolist() for s in starts)
        return order, images, labels, size, starts

    trainer._epoch_plan = recording_plan
    trainer.recipe = trainer.recipe.replace(train__max_steps=steps, train__evaluate_test=False)
    trainer.fit()
    return seen[:steps]


@pytest.mark.parametrize("change, value", [("activation", "sigmoid"), ("normalization", "standardize"),
                                           ("dropout", 0.5), ("optimizer", "sgd"), ("model", "cntk-conv")])
def test_a_variant_trains_on_the_same_batches_in_the_same_order(change, value):
    preset = get_preset("gorner-dropout")
    recipe = preset.recipe.replace(data__train_subset=300, data__validation="none", train__epochs=2,
                                   train__batch_size=50)
    other = variant(preset.spec, recipe, change, value)
    a = Trainer(preset.spec, recipe, load_data(recipe.data))
    b = Trainer(other.spec, other.recipe, load_data(other.recipe.data))
    assert a.spec != b.spec or a.recipe != b.recipe  # it is another run
    assert batches_seen(a, 9) == batches_seen(b, 9)  # across the epoch end: reshuffled alike
    assert not all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_variants_say_what_changed_and_refuse_what_cannot_change():
    preset = get_preset("gorner")
    assert variant(preset.spec, preset.recipe, "activation", "tanh").label == "activation: tanh"
    assert variant(preset.spec, preset.recipe, "optimizer", "sgd").recipe.optimizer.lr == 0.01
    with pytest.raises(ConfigError, match="no dropout layer"):
        variant(preset.spec, preset.recipe, "dropout", 0.5)  # gorner has none
    with pytest.raises(ConfigError, match="unknown setting"):
        variant(preset.spec, preset.recipe, "colour", "red")
    with pytest.raises(ConfigError):
        variant(preset.spec, preset.recipe, "activation", "swish")
    data = load_data(DataConfig(validation="none", train_subset=100))
    assert data.num_classes == 10
