"""Activation maximisation: a vertical-edge filter gets vertical stripes, a class its own logit raised."""
import threading

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.inspect.feature_vis import ActmaxCancelled, ActmaxSettings, maximise
from cnnviz.models import build_model
from cnnviz.presets import get_preset


class _EdgeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential()
        self.layers.add_module("conv", nn.Conv2d(1, 2, 3, padding=1, bias=False))
        self.layers.add_module("flat", nn.Flatten())
        self.layers.add_module("fc", nn.Linear(2 * 16 * 16, 3))
        with torch.no_grad():
            edge = torch.tensor([[-1.0, 0.0, 1.0]] * 3)  # dark on the left, ink on the right: a vertical edge
            self.layers.conv.weight[0, 0] = edge
            self.layers.conv.weight[1, 0] = edge.T

    def forward(self, x):
        return self.layers(x)


def test_a_vertical_edge_filter_is_excited_by_vertical_structure():
    model = _EdgeNet()
    result = maximise(model, (16, 16), layer="conv", index=0, settings=ActmaxSettings(steps=60, seed=0))
    img = result.image
    assert img.shape == (16, 16) and img.min() >= 0 and img.max() <= 1
    assert result.score > result.start_score + 0.1
    # vertical structure: the image changes across columns far more than down rows
    across = np.abs(np.diff(img, axis=1)).mean()
    down = np.abs(np.diff(img, axis=0)).mean()
    assert across > 2 * down
    again = maximise(model, (16, 16), layer="conv", index=0, settings=ActmaxSettings(steps=60, seed=0))
    assert np.array_equal(again.image, img)  # deterministic for a seed
    assert result.target == "conv filter 0"


def test_a_class_actmax_draws_that_class_template():
    # a linear classifier whose class 1 reads a plus sign: the input that excites class 1 most is a plus
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 3))
    template = -np.ones((16, 16), np.float32)
    template[6:10, :] = template[:, 6:10] = 1.0
    with torch.no_grad():
        model[1].weight[1] = torch.from_numpy(template.reshape(-1)) * 0.05
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = maximise(model, (16, 16), layer=None, index=1, mean=0.13, std=0.31, settings=ActmaxSettings(steps=80))
    assert result.score > result.start_score + 1.0 and result.target == "class 1"
    assert np.corrcoef(result.image.reshape(-1), template.reshape(-1))[0, 1] > 0.8
    with torch.no_grad():
        assert int(model((torch.from_numpy(result.image)[None, None] - 0.13) / 0.31)[0].argmax()) == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the weights are left alone


def test_a_class_actmax_of_a_preset_raises_that_logit_most():
    torch.manual_seed(0)
    model = build_model(get_preset("gorner").spec).eval()
    faint = (torch.full((1, 1, 28, 28), 0.05) - 0.13) / 0.31
    result = maximise(model, (28, 28), layer=None, index=7, mean=0.13, std=0.31, settings=ActmaxSettings(steps=60))
    with torch.no_grad():
        gain = model((torch.from_numpy(result.image)[None, None] - 0.13) / 0.31)[0] - model(faint)[0]
    assert int(gain.argmax()) == 7 and result.score > result.start_score


def test_cancel_and_bad_targets():
    model = _EdgeNet()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ActmaxCancelled):
        maximise(model, (16, 16), layer="conv", index=0, cancel=cancel)
    with pytest.raises(SpecError):
        maximise(model, (16, 16), layer="conv", index=5, settings=ActmaxSettings(steps=2))
    with pytest.raises(SpecError):
        maximise(model, (16, 16), layer=None, index=9, settings=ActmaxSettings(steps=2))


def test_diverged_weights_give_one_clear_error_not_a_picture_of_nan():
    from cnnviz.errors import CnnvizError

    model = _EdgeNet()
    with torch.no_grad():
        model.layers.fc.weight.fill_(float("nan"))
    with pytest.raises(CnnvizError, match="not finite"):
        maximise(model, (16, 16), layer=None, index=1, settings=ActmaxSettings(steps=8, seed=0))
