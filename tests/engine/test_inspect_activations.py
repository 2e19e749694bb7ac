"""feature_maps / predict_proba: hooks, modes, copies, shapes."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.inspect import LayerActivation, feature_maps, predict_proba


class Net(nn.Module):
    """Stand-in for CnnvizNet: the layers are the named children of `self.layers`."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        return self.layers(x)


class Boom(nn.Module):
    def forward(self, x):
        raise ValueError("boom")


def conv_net(extra=()):
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


def image(seed=0):
    return torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_one_entry_per_layer_with_names_kinds_shapes_and_values():
    model, x = conv_net(), image()
    acts = feature_maps(model, x)
    assert [a.name for a in acts] == ["input", "conv1", "conv1_relu", "pool1", "flatten", "dense1"]
    assert [a.kind for a in acts] == ["Input", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert [a.shape for a in acts] == [(1, 28, 28), (4, 26, 26), (4, 26, 26), (4, 13, 13), (676,), (10,)]
    assert all(isinstance(a, LayerActivation) and a.values.shape == a.shape for a in acts)
    assert all(a.values.dtype == np.float32 for a in acts)
    np.testing.assert_array_equal(acts[0].values, x[0].numpy())
    with torch.no_grad():
        np.testing.assert_allclose(acts[1].values, model.layers.conv1(x)[0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(acts[-1].values, model(x)[0].numpy(), rtol=1e-5, atol=1e-6)


def test_activations_are_read_only_copies():
    model, x = conv_net(), image()
    acts = feature_maps(model, x)
    before = [a.values.copy() for a in acts]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    for a, b in zip(acts, before):
        np.testing.assert_array_equal(a.values, b)
        assert not a.values.flags.writeable
    x.add_(5.0)  # the caller's input tensor too
    np.testing.assert_array_equal(acts[0].values, before[0])


def test_hooks_removed_after_success_and_after_forward_raises():
    model = conv_net()
    feature_maps(model, image())
    assert no_hooks(model)

    broken = conv_net(extra=[("boom", Boom())])
    with pytest.raises(ValueError, match="boom"):
        feature_maps(broken, image())
    assert no_hooks(broken)


def test_wrong_input_shape_is_a_spec_error_naming_the_layer():
    model = conv_net()
    with pytest.raises(SpecError) as info:
        feature_maps(model, torch.zeros(1, 1, 20, 20))
    assert "dense1" in str(info.value) and "(1, 1, 20, 20)" in str(info.value)
    assert no_hooks(model)
    with pytest.raises(SpecError, match="shape"):
        feature_maps(model, torch.zeros(2, 2, 2, 2, 2))


def test_runs_in_eval_mode_and_restores_each_modules_mode():
    model = conv_net(extra=[("drop", nn.Dropout(0.5)), ("bn", nn.BatchNorm2d(4))])
    model.train()
    model.layers.bn.eval()  # a deliberately frozen submodule must stay frozen
    bn_stats = model.layers.bn.running_mean.clone()
    a1 = feature_maps(model, image())
    a2 = feature_maps(model, image())
    # Dropout off (eval): the pass is deterministic and the dropout layer passes values through.
    by_name = {a.name: a.values for a in a1}
    np.testing.assert_array_equal(by_name["drop"], by_name["pool1"])
    for a, b in zip(a1, a2):
        np.testing.assert_array_equal(a.values, b.values)
    assert model.training and model.layers.training and model.layers.drop.training
    assert not model.layers.bn.training
    torch.testing.assert_close(model.layers.bn.running_mean, bn_stats)  # eval: stats untouched

    model.eval()
    feature_maps(model, image())
    assert not any(m.training for m in model.modules())


def test_any_module_and_any_image_layout():
    plain = nn.Sequential(OrderedDict([("flat", nn.Flatten()), ("fc", nn.Linear(784, 3))]))
    acts = feature_maps(plain, np.zeros((28, 28), dtype=np.float64))
    assert [(a.name, a.shape) for a in acts] == [("input", (1, 28, 28)), ("flat", (784,)), ("fc", (3,))]
    acts = feature_maps(conv_net(), torch.zeros(1, 28, 28))
    assert acts[0].shape == (1, 28, 28)
    # A batch: the first image is the one reported.
    batch = torch.cat([image(1), image(2)])
    np.testing.assert_array_equal(feature_maps(conv_net(), batch)[0].values, batch[0].numpy())


def test_predict_proba_shapes_and_values():
    model, x = conv_net(), image()
    p = predict_proba(model, x)
    assert p.shape == (10,) and p.dtype == np.float32
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)[0].numpy()
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-7)
    assert p.sum() == pytest.approx(1.0, abs=1e-5)

    batch = torch.randn(600, 1, 28, 28, generator=torch.Generator().manual_seed(3))  # > one chunk
    pb = predict_proba(model, batch)
    assert pb.shape == (600, 10)
    with torch.no_grad():
        np.testing.assert_allclose(pb, torch.softmax(model(batch), dim=1).numpy(), rtol=1e-4, atol=1e-6)


def test_predict_proba_eval_mode_restored_and_no_double_softmax():
    model = conv_net(extra=[("drop", nn.Dropout(0.9))])
    model.train()
    x = image()
    p1, p2 = predict_proba(model, x), predict_proba(model, x)
    np.testing.assert_array_equal(p1, p2)  # dropout was off
    assert model.training and model.layers.drop.training

    torch.manual_seed(0)
    logsoft = conv_net()
    logsoft.layers.add_module("out", nn.LogSoftmax(dim=1))
    np.testing.assert_allclose(predict_proba(logsoft, x), predict_proba(conv_net(), x), rtol=1e-5, atol=1e-7)
