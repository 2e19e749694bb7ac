"""Model specs: the tutorial architectures' exact counts, shapes, validation, naming and summaries."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.models import (
    LayerSpec,
    ModelSpec,
    act,
    avgpool,
    batchnorm,
    build_model,
    conv,
    count_parameters,
    dense,
    dropout,
    flatten,
    format_summary,
    infer_shapes,
    maxpool,
    summarize,
)

# The ten tutorial architectures and their (total, trainable) parameter counts.
TUTORIALS = {
    "cntk-conv": (
        ModelSpec((conv(8, 5, 2, "same"), conv(16, 5, 2, "same"), dense(10))),
        11_274, 11_274,
    ),
    "cntk-pool": (
        ModelSpec((conv(8, 5, 1, "same"), maxpool(2), conv(16, 5, 1, "same"), maxpool(3), dense(10))),
        5_994, 5_994,
    ),
    "basic-cnn": (
        ModelSpec((conv(32, 3), conv(64, 3), maxpool(2), dropout(0.25), dense(128, "relu"), dropout(0.5),
                   dense(10))),
        1_199_882, 1_199_882,
    ),
    "dense-baseline": (
        ModelSpec((dense(500), batchnorm(), act("relu"), dropout(0.2), dense(50), batchnorm(), act("relu"),
                   dropout(0.2), dense(10))),
        420_260, 419_160,
    ),
    "cnn1": (ModelSpec((conv(32, 3, padding="same"), dense(10))), 251_210, 251_210),
    "cnn2-bn": (
        ModelSpec((
            conv(32, 3, padding="same", activation=None), batchnorm(), act(),
            conv(32, 3, padding="same", activation=None), batchnorm(), act(),
            maxpool(2),
            conv(64, 3, padding="same", activation=None), batchnorm(), act(),
            conv(64, 3, padding="same", activation=None), batchnorm(), act(),
            maxpool(2),
            dense(200), batchnorm(), act(), dropout(0.2),
            dense(10),
        )),
        695_970, 695_186,
    ),
    "gorner": (
        ModelSpec((conv(4, 5, 1, "same"), conv(8, 5, 2, "same"), conv(12, 4, 2, "same"), dense(200, "relu"),
                   dense(10))),
        122_270, 122_270,
    ),
    "gorner-dropout": (
        ModelSpec((conv(6, 6, 1, "same"), conv(12, 5, 2, "same"), conv(24, 4, 2, "same"), dense(200, "relu"),
                   dropout(0.25), dense(10))),
        244_076, 244_076,
    ),
    "six-or-not": (ModelSpec((conv(32, 3), dense(2)), num_classes=2), 43_586, 43_586),
    "keras-deep": (
        ModelSpec((conv(32, 3, padding="same"), conv(32, 3), maxpool(2), dropout(0.25),
                   conv(64, 3, padding="same"), conv(64, 3), maxpool(2), dropout(0.25),
                   dense(512, "relu"), dropout(0.5), dense(10))),
        889_834, 889_834,
    ),
}


@pytest.mark.parametrize("key", sorted(TUTORIALS))
def test_tutorial_parameter_counts_and_forward(key):
    spec, total, trainable = TUTORIALS[key]
    torch.manual_seed(0)
    model = build_model(spec)
    assert count_parameters(model) == (trainable, total - trainable)
    summary = summarize(spec)
    assert (summary.trainable, summary.non_trainable, summary.total) == (trainable, total - trainable, total)
    out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()


def _shapes(spec):
    return [row.output_shape for row in infer_shapes(spec)]


def test_gorner_shapes_and_details():
    spec = TUTORIALS["gorner"][0]
    rows = infer_shapes(spec)
    assert [r.output_shape for r in rows] == [(4, 28, 28), (8, 14, 14), (12, 7, 7), (200,), (10,)]
    assert [r.name for r in rows] == ["conv1", "conv2", "conv3", "dense1", "dense2"]
    # 'same' with stride 2 on 28: total padding 3 split 1 before, 2 after, as TF does.
    assert "(28 + 1+2 - 5) / 2 + 1 = 14" in rows[1].detail
    assert rows[1].detail.startswith("8 filters 5x5 stride 2")
    assert "(14 + 2*1 - 4) / 2 + 1 = 7" in rows[2].detail
    assert "flattens 12x7x7 = 588" in rows[3].detail
    assert rows[0].activation_bytes == 4 * 4 * 28 * 28


def test_pool_details_floor_and_cntk_pool_shapes():
    spec = TUTORIALS["cntk-pool"][0]
    rows = infer_shapes(spec)
    assert [r.output_shape for r in rows] == [(8, 28, 28), (8, 14, 14), (16, 14, 14), (16, 4, 4), (10,)]
    assert "floor((14 - 3) / 3) + 1 = 4" in rows[3].detail
    assert "(28 - 2) / 2 + 1 = 14" in rows[1].detail


def test_numeric_padding_equation():
    rows = infer_shapes(ModelSpec((conv(8, 5, 2, 2), dense(10))))
    assert rows[0].output_shape == (8, 14, 14)
    assert "floor((28 + 2*2 - 5) / 2) + 1 = 14" in rows[0].detail


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_asymmetric_same_conv_matches_torch_same():
    spec = ModelSpec((conv(6, 6, 1, "same"), dense(10)))
    model = build_model(spec)
    conv1 = model.layers.conv1
    assert conv1.pad == (2, 3, 2, 3)
    ref = nn.Conv2d(1, 6, 6, padding="same")
    ref.load_state_dict(conv1.state_dict())
    x = torch.randn(2, 1, 28, 28)
    got = conv1(x)
    assert got.shape == (2, 6, 28, 28)
    torch.testing.assert_close(got, ref(x))
    torch.testing.assert_close(got, F.conv2d(F.pad(x, (2, 3, 2, 3)), conv1.weight, conv1.bias))


def test_non_square_input_gets_per_axis_padding():
    spec = ModelSpec((conv(2, 4, 2, "same"), dense(3)), input_shape=(2, 9, 6), num_classes=3)
    rows = infer_shapes(spec)
    assert rows[0].output_shape == (2, 5, 3)
    assert "height" in rows[0].detail and "width" in rows[0].detail
    model = build_model(spec)
    assert model(torch.randn(2, 2, 9, 6)).shape == (2, 3)


def test_same_pools_ignore_padding_like_tf():
    # 7x7 with 2x2/2 'same' gives 4x4: one row and column of padding after, which TF ignores.
    same_max = LayerSpec("maxpool", kernel=2, stride=2, padding="same")
    same_avg = LayerSpec("avgpool", kernel=2, stride=2, padding="same")
    spec = ModelSpec((same_max, same_avg, dense(2)), input_shape=(1, 7, 7), num_classes=2)
    assert _shapes(spec)[:2] == [(1, 4, 4), (1, 2, 2)]
    maxed = build_model(spec).layers.pool1(-torch.ones(1, 1, 7, 7))
    assert torch.equal(maxed, -torch.ones(1, 1, 4, 4))  # padded with -inf, not 0
    avg_only = ModelSpec((same_avg, dense(2)), input_shape=(1, 7, 7), num_classes=2)
    out = build_model(avg_only).layers.pool1(torch.full((1, 1, 7, 7), 3.0))
    assert out.shape == (1, 1, 4, 4)
    assert torch.allclose(out, torch.full_like(out, 3.0))  # the padded zeros are not averaged in


def test_symmetric_same_avgpool_excludes_padding():
    # 3x3/1 'same' pads 1 on each side symmetrically: torch's own padding with count_include_pad=False.
    spec = ModelSpec((LayerSpec("avgpool", kernel=3, stride=1, padding="same"), dense(2)),
                     input_shape=(1, 5, 5), num_classes=2)
    model = build_model(spec)
    assert isinstance(model.layers.pool1, nn.AvgPool2d)
    out = model.layers.pool1(torch.full((1, 1, 5, 5), 2.0))
    assert torch.allclose(out, torch.full((1, 1, 5, 5), 2.0))


def test_state_dict_keys_and_module_names():
    spec = TUTORIALS["cnn2-bn"][0]
    model = build_model(spec)
    keys = set(model.state_dict())
    assert {"layers.conv1.weight", "layers.conv1.bias", "layers.bn1.running_mean", "layers.bn1.running_var",
            "layers.dense1.weight", "layers.dense2.bias"} <= keys
    assert model.conv_layer_names() == ["conv1", "conv2", "conv3", "conv4"]
    assert model.layer_names()[:3] == ["conv1", "bn1", "act1"]
    assert "dense1_flatten" in model.layer_names()
    gorner = build_model(TUTORIALS["gorner"][0])
    assert gorner.layer_names() == ["conv1", "conv1_relu", "conv2", "conv2_relu", "conv3", "conv3_relu",
                                    "dense1_flatten", "dense1", "dense1_relu", "dense2"]
    assert gorner.output_module_names()["conv1"] == "conv1_relu"
    assert gorner.output_module_names()["dense2"] == "dense2"
    # Rebuilding gives the same keys: checkpoints stay loadable.
    assert list(build_model(TUTORIALS["gorner"][0]).state_dict()) == list(gorner.state_dict())


def test_named_fills_names_per_prefix_and_keeps_user_names():
    spec = ModelSpec((conv(4, 3), maxpool(2), conv(4, 3, name="edges"), avgpool(2), batchnorm(), act(),
                      dropout(0.1), flatten(), dense(8), dense(10)), input_shape=(1, 28, 28))
    named = spec.named()
    assert [layer.name for layer in named.layers] == [
        "conv1", "pool1", "edges", "pool2", "bn1", "act1", "drop1", "flatten1", "dense1", "dense2"]
    assert named.named() == named
    assert spec.layers[0].name == ""  # the original is untouched
    # Renaming one layer does not renumber the others.
    assert [layer.name for layer in ModelSpec((conv(4, 3, name="first"), conv(4, 3), dense(10))).named().layers] \
        == ["first", "conv2", "dense1"]
    # An automatic name the user already took moves on to a free number.
    names = [layer.name for layer in ModelSpec((conv(4, 3), conv(4, 3, name="conv1"), dense(10))).named().layers]
    assert names == ["conv2", "conv1", "dense1"]


@pytest.mark.parametrize("layers, message", [
    ((conv(4, 3, name="a"), conv(4, 3, name="a"), dense(10)), "layers 1 and 2 are both named 'a'"),
    ((conv(4, 3, name="x", activation="relu"), act(), dense(10, name="x_relu")), "x_relu"),
    ((conv(4, 3), dense(10, name="conv1_relu")), "conv1_relu"),
    ((conv(4, 3, name="forward"), dense(10)), "'forward' cannot be used"),
    ((conv(4, 3, name="a.b"), dense(10)), "'a.b'"),
    ((conv(4, 3, name="9lives"), dense(10)), "'9lives'"),
])
def test_bad_names_raise(layers, message):
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        infer_shapes(ModelSpec(layers))


def _raises(spec, *parts):
    with pytest.raises(SpecError) as info:
        build_model(spec)
    for part in parts:
        assert part in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("layers, input_shape, num_classes, parts", [
    # kernel larger than the padded input
    ((conv(4, 3), maxpool(2), maxpool(2), maxpool(2), conv(8, 5), dense(10)), (1, 28, 28), 10,
     ["layer 5 'conv2'", "kernel 5 is larger than its 3x3 input padded by 0"]),
    ((conv(4, 9, 1, 1), dense(10)), (1, 6, 6), 10, ["layer 1 'conv1'", "kernel 9", "6x6", "padded by 1"]),
    ((maxpool(4), dense(10)), (1, 3, 8), 10, ["layer 1 'pool1'", "kernel 4", "3x8"]),
    # channels, units, kernel, stride, padding
    ((conv(0, 3), dense(10)), (1, 28, 28), 10, ["layer 1 'conv1'", "at least 1", "got 0"]),
    ((conv(4, 3), dense(-5), dense(10)), (1, 28, 28), 10, ["layer 2 'dense1'", "got -5"]),
    ((conv(4, 0), dense(10)), (1, 28, 28), 10, ["layer 1 'conv1'", "kernel size must be at least 1, got 0"]),
    ((conv(4, 3, 0), dense(10)), (1, 28, 28), 10, ["layer 1 'conv1'", "stride must be at least 1, got 0"]),
    ((conv(4, 3, 1, -1), dense(10)), (1, 28, 28), 10, ["layer 1 'conv1'", "padding must be at least 0, got -1"]),
    ((conv(4, 3, 1, "full"), dense(10)), (1, 28, 28), 10, ["layer 1 'conv1'", "'full'"]),
    ((LayerSpec("maxpool", kernel=3, stride=1, padding=2), dense(10)), (1, 28, 28), 10,
     ["layer 1 'pool1'", "padding 2", "3x3", "at most 1"]),
    ((conv(4, 2.5), dense(10)), (1, 28, 28), 10, ["layer 1 'conv1'", "integer", "2.5"]),
    # dropout
    ((dropout(1.0), dense(10)), (1, 28, 28), 10, ["layer 1 'drop1'", "[0, 1)", "1.0"]),
    ((dropout(-0.1), dense(10)), (1, 28, 28), 10, ["layer 1 'drop1'", "-0.1"]),
    # unknown kind / activation
    ((LayerSpec("lstm"), dense(10)), (1, 28, 28), 10, ["layer 1 'layer1'", "unknown layer kind 'lstm'"]),
    ((conv(4, 3, activation="gelu"), dense(10)), (1, 28, 28), 10, ["layer 1 'conv1'", "'gelu'"]),
    ((act("swish"), dense(10)), (1, 28, 28), 10, ["layer 1 'act1'", "'swish'"]),
    ((LayerSpec("activation"), dense(10)), (1, 28, 28), 10, ["layer 1 'act1'", "needs a function"]),
    # wrong fields for the kind
    ((LayerSpec("dense", size=10, kernel=5),), (1, 28, 28), 10, ["layer 1 'dense1'", "no kernel", "5"]),
    ((LayerSpec("dropout", rate=0.5, size=3), dense(10)), (1, 28, 28), 10, ["layer 1 'drop1'", "no size"]),
    ((LayerSpec("maxpool", kernel=2, stride=2, activation="relu"), dense(10)), (1, 28, 28), 10,
     ["layer 1 'pool1'", "no activation"]),
    ((LayerSpec("conv", size=4, rate=0.5), dense(10)), (1, 28, 28), 10, ["layer 1 'conv1'", "no rate"]),
    ((LayerSpec("flatten", padding="same"), dense(10)), (1, 28, 28), 10, ["layer 1 'flatten1'", "no padding"]),
    # conv / pool on flat input
    ((flatten(), conv(4, 3), dense(10)), (1, 28, 28), 10,
     ["layer 2 'conv1'", "after a flatten or dense", "784 flat values"]),
    ((dense(20), maxpool(2), dense(10)), (1, 28, 28), 10, ["layer 2 'pool1'", "20 flat values"]),
    # the output layer
    ((conv(4, 3), dense(2)), (1, 28, 28), 10,
     ["the last layer must be a dense layer with num_classes=10 outputs; 'dense1' has 2"]),
    ((conv(4, 3), dense(10), dropout(0.5)), (1, 28, 28), 10, ["'drop1' is a dropout layer"]),
    ((), (1, 28, 28), 10, ["no layers"]),
    ((dense(1),), (1, 28, 28), 1, ["num_classes", "at least 2", "got 1"]),
    # input shape
    ((dense(10),), (28, 28), 10, ["input_shape", "(28, 28)"]),
    ((dense(10),), (1, 0, 28), 10, ["input_shape", "(1, 0, 28)"]),
    ((dense(10),), (1, 28.0, 28), 10, ["input_shape"]),
    # far too big
    ((dense(200_000), dense(10)), (1, 28, 28), 10, ["layer 1 'dense1'", "157,000,000 parameters"]),
])
def test_impossible_specs_raise_spec_error(layers, input_shape, num_classes, parts):
    _raises(ModelSpec(layers, input_shape=input_shape, num_classes=num_classes), *parts)


def test_summary_refuses_too():
    with pytest.raises(SpecError, match="layer 2 'conv1'"):
        summarize(ModelSpec((flatten(), conv(4, 3), dense(10))))


def test_round_trip_through_json():
    for spec, _, _ in TUTORIALS.values():
        data = json.loads(json.dumps(spec.to_dict()))
        assert ModelSpec.from_dict(data) == spec
        named = spec.named()
        assert ModelSpec.from_dict(json.loads(json.dumps(named.to_dict()))) == named
    layer = conv(8, 5, 2, "same", name="c")
    assert LayerSpec.from_dict(layer.to_dict()) == layer
    # Missing keys take defaults.
    assert ModelSpec.from_dict({"layers": [{"kind": "dense", "size": 10}]}) == ModelSpec((dense(10),))


@pytest.mark.parametrize("data, part", [
    (None, "JSON object"),
    ([], "JSON object"),
    ({"layers": [], "colour": "red"}, "colour"),
    ({"input_shape": [1, 28, 28]}, "'layers' list"),
    ({"layers": "conv"}, "'layers' list"),
    ({"layers": [7]}, "layer 1"),
    ({"layers": [{"size": 3}]}, "needs a 'kind'"),
    ({"layers": [{"kind": "dense", "size": 10, "units": 10}]}, "units"),
    ({"layers": [{"kind": "dense", "size": "10"}]}, "integer"),
    ({"layers": [{"kind": "dense", "size": 10}, {"kind": "pool"}]}, "layer 2"),
    ({"layers": [{"kind": "conv", "size": 4, "name": "c1", "activation": "soft"}]}, "layer 1 'c1'"),
    ({"layers": [{"kind": "dense", "size": 10, "name": 5}]}, "name must be text"),
    ({"layers": [{"kind": "dense", "size": 10}], "input_shape": "1x28x28"}, "input_shape"),
    ({"layers": [{"kind": "dense", "size": 10}], "input_shape": [1, 28]}, "input_shape"),
    ({"layers": [{"kind": "dense", "size": 10}], "num_classes": "10"}, "num_classes"),
    ({"layers": [{"kind": "dense", "size": 10}], "num_classes": True}, "num_classes"),
    ({"layers": [{"kind": "dropout", "rate": "0.5"}]}, "dropout rate"),
    ({"layers": [{"kind": "dropout", "rate": float("nan")}]}, "dropout rate"),
])
def test_garbage_dicts_raise_spec_error(data, part):
    with pytest.raises(SpecError, match=None) as info:
        ModelSpec.from_dict(data)
    assert part in str(info.value)


def test_layer_from_dict_names_the_layer():
    with pytest.raises(SpecError, match="layer 'c9': unknown activation 'soft'"):
        LayerSpec.from_dict({"kind": "conv", "size": 4, "name": "c9", "activation": "soft"})
    with pytest.raises(SpecError, match="unknown layer setting"):
        LayerSpec.from_dict({"kind": "conv", "filters": 4})


def test_with_activation_dropout_and_num_classes():
    spec = TUTORIALS["basic-cnn"][0]
    tanh = spec.with_activation("tanh")
    assert [layer.activation for layer in tanh.layers] == ["tanh", "tanh", None, None, "tanh", None, None]
    cnn2 = TUTORIALS["cnn2-bn"][0].with_activation("elu")
    assert {layer.activation for layer in cnn2.layers if layer.kind == "activation"} == {"elu"}
    assert all(layer.activation is None for layer in cnn2.layers if layer.kind == "conv")
    drop = spec.with_dropout(0.1)
    assert [layer.rate for layer in drop.layers if layer.kind == "dropout"] == [0.1, 0.1]
    three = spec.with_num_classes(3)
    assert three.num_classes == 3 and three.layers[-1].size == 3 and three.layers[4].size == 128
    assert build_model(three)(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    assert count_parameters(build_model(spec.with_activation("leaky_relu")))[0] == 1_199_882
    with pytest.raises(SpecError, match="unknown activation 'gelu'"):
        spec.with_activation("gelu")
    with pytest.raises(SpecError, match=r"\[0, 1\), got 1"):
        spec.with_dropout(1)
    with pytest.raises(SpecError, match="at least 2 classes, got 1"):
        spec.with_num_classes(1)
    with pytest.raises(SpecError, match="no dense layer"):
        ModelSpec((conv(4, 3),)).with_num_classes(3)


def test_activation_modules():
    spec = ModelSpec((conv(2, 3, activation="leaky_relu"), act("sigmoid"), act("tanh"), act("elu"), dense(10)))
    model = build_model(spec)
    assert isinstance(model.layers.conv1_leaky_relu, nn.LeakyReLU)
    assert model.layers.conv1_leaky_relu.negative_slope == 0.01
    assert [type(model.layers[i]).__name__ for i in range(2, 5)] == ["Sigmoid", "Tanh", "ELU"]


def test_count_parameters_counts_frozen_and_buffers():
    model = build_model(TUTORIALS["cnn2-bn"][0])
    model.layers.conv1.weight.requires_grad_(False)
    assert count_parameters(model) == (695_186 - 288, 784 + 288)


def test_format_summary_lists_every_layer_and_totals():
    for spec, total, _ in TUTORIALS.values():
        summary = summarize(spec)
        text = format_summary(summary)
        lines = text.splitlines()
        for row in summary.rows:
            assert any(line.split()[0] == row.name for line in lines), row.name
        assert f"Total params: {total:,}" in text
        assert summary.activation_bytes == sum(r.activation_bytes for r in summary.rows)
    text = format_summary(summarize(TUTORIALS["dense-baseline"][0]))
    lines = text.splitlines()
    bn1 = next(line for line in text.splitlines() if line.startswith("bn1"))
    assert bn1.split()[1:] == ["batchnorm", "500", "1,000", "1,000", "2.0", "KB"]
    assert "non-trainable 1,100" in text
    # Fixed width: every table line is as long as the rule or shorter.
    width = len(lines[1])
    assert all(len(line) <= width for line in lines[:-1])
