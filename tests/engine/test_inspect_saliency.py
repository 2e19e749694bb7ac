"""saliency / grad_cam: shapes, ranges, no parameter grads, hooks, and that they point at the right place."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.errors import ConfigError, SpecError
from cnnviz.inspect import grad_cam, saliency


class Net(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        return self.layers(x)


class Boom(nn.Module):
    def forward(self, x):
        raise ValueError("boom")


def random_conv_net(extra=()):
    torch.manual_seed(0)
    return Net(
        [
            ("conv1", nn.Conv2d(1, 4, 3)),
            ("conv1_relu", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            *extra,
            ("flatten", nn.Flatten()),
            ("dense1", nn.Linear(4 * 13 * 13, 10)),
        ]
    )


def quadrant_net():
    """Two 1x1 conv channels, relu(x) and relu(-x); class 0 reads channel 0 in the top-left quadrant
    only, class 1 reads channel 1 in the bottom-right quadrant only."""
    conv = nn.Conv2d(1, 2, 1, bias=False)
    dense = nn.Linear(2 * 28 * 28, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
        w = torch.zeros(2, 2, 28, 28)
        w[0, 0, :14, :14] = 1.0
        w[1, 1, 14:, 14:] = 1.0
        dense.weight.copy_(w.reshape(2, -1))
    return Net([("conv1", conv), ("conv1_relu", nn.ReLU()), ("flatten", nn.Flatten()), ("dense1", dense)])


def two_blobs():
    """A bright blob in the top-left quadrant and a dark (negative) blob in the bottom-right one."""
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4:10, 3:11] = 1.0
    x[0, 0, 18:25, 17:24] = -1.0
    return x


def image(seed=0):
    return torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def quadrant_mass(m):
    total = m.sum()
    return {"tl": m[:14, :14].sum() / total, "br": m[14:, 14:].sum() / total}


@pytest.mark.parametrize("explain", [saliency, grad_cam])
def test_shape_range_and_dtype(explain):
    m = explain(random_conv_net(), image())
    assert m.shape == (28, 28) and m.dtype == np.float32
    assert np.isfinite(m).all() and m.min() >= 0 and m.max() == pytest.approx(1.0)


@pytest.mark.parametrize("explain", [saliency, grad_cam])
def test_no_parameter_grads_and_mode_restored(explain):
    model = random_conv_net(extra=[("drop", nn.Dropout(0.5))])
    model.train()
    existing = torch.full_like(model.layers.dense1.weight, 7.0)
    model.layers.dense1.weight.grad = existing.clone()  # a training step's grad must survive
    first = explain(model, image())
    np.testing.assert_array_equal(first, explain(model, image()))  # dropout off: eval mode was used
    assert model.training and model.layers.drop.training
    for name, p in model.named_parameters():
        if name == "layers.dense1.weight":
            torch.testing.assert_close(p.grad, existing)
        else:
            assert p.grad is None, name


def test_saliency_only_where_the_model_looks():
    model = quadrant_net()
    m = saliency(model, image(), target=0)
    assert np.all(m[14:, :] == 0) and np.all(m[:, 14:] == 0)
    assert m[:14, :14].min() >= 0 and m[:14, :14].max() == 1.0


def test_grad_cam_highlights_the_quadrant_that_drives_the_class():
    model, x = quadrant_net(), two_blobs()
    cam0 = grad_cam(model, x, target=0)
    cam1 = grad_cam(model, x, target=1)
    assert quadrant_mass(cam0)["tl"] > 0.95
    assert quadrant_mass(cam1)["br"] > 0.95
    # Default target = the predicted class (class 1 here: its blob has 49 pixels against 48).
    with torch.no_grad():
        predicted = int(model(x).argmax())
    assert predicted == 1
    np.testing.assert_array_equal(grad_cam(model, x), grad_cam(model, x, target=predicted))


def test_grad_cam_default_layer_is_the_last_spatial_one_and_is_upsampled():
    model, x = random_conv_net(), image()
    default = grad_cam(model, x)
    np.testing.assert_array_equal(default, grad_cam(model, x, layer="pool1"))
    assert default.shape == (28, 28)
    conv = grad_cam(model, x, layer="conv1")
    assert conv.shape == (28, 28) and not np.array_equal(conv, default)


def test_grad_cam_layer_errors():
    model = random_conv_net()
    with pytest.raises(SpecError, match="no layer named 'nope'.*conv1"):
        grad_cam(model, image(), layer="nope")
    with pytest.raises(SpecError, match="'dense1' outputs \\(10,\\)"):
        grad_cam(model, image(), layer="dense1")
    with pytest.raises(ConfigError, match="class 10"):
        grad_cam(model, image(), target=10)
    with pytest.raises(ConfigError, match="class -1"):
        saliency(model, image(), target=-1)
    assert all(not m._forward_hooks for m in model.modules())


def test_vanishing_gradients_give_zeros_not_nan():
    model = random_conv_net()
    with torch.no_grad():
        model.layers.dense1.weight.zero_()
    for explain in (saliency, grad_cam):
        m = explain(model, image(), target=3)
        assert m.shape == (28, 28) and np.all(m == 0)


def test_dense_only_model_falls_back_to_saliency():
    torch.manual_seed(1)
    model = Net([("flatten", nn.Flatten()), ("dense1", nn.Linear(784, 16)), ("relu", nn.ReLU()), ("out", nn.Linear(16, 10))])
    np.testing.assert_array_equal(grad_cam(model, image(), target=2), saliency(model, image(), target=2))


def test_hooks_removed_when_forward_raises():
    model = random_conv_net(extra=[("boom", Boom())])
    with pytest.raises(ValueError, match="boom"):
        grad_cam(model, image())
    assert all(not m._forward_hooks for m in model.modules())


def test_frozen_parameters_and_numpy_input():
    model = random_conv_net()
    for p in model.parameters():
        p.requires_grad_(False)
    m = grad_cam(model, image()[0, 0].numpy())
    assert m.max() == pytest.approx(1.0)
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
