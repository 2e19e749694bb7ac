"""Random specs, valid or not: each one builds a model whose real shapes match infer_shapes, or raises
SpecError. Nothing else may escape."""
from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz.errors import SpecError
from cnnviz.models import (
    ACTIVATIONS,
    LAYER_KINDS,
    LayerSpec,
    ModelSpec,
    build_model,
    count_parameters,
    infer_shapes,
    summarize,
)

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def mostly(good, *bad):
    """``good`` most of the time, now and then one of the invalid values ``bad``."""
    # Hypothesis favours small integers, so pick a middle value for the rare branch.
    return st.integers(0, 11).flatmap(lambda roll: st.sampled_from(bad) if roll == 7 else good)


# Channels and units stay tiny so 200 forward passes take a few seconds.
sizes = mostly(st.integers(1, 6), 0, -2)
kernels = mostly(st.integers(1, 4), 0, 9)
strides = mostly(st.integers(1, 3), 0)
paddings = mostly(st.sampled_from([0, 0, 1, 2, "same", "same", "valid"]), -1, "full", 3)
activations = mostly(st.sampled_from((None, *ACTIVATIONS)), "gelu")
rates = mostly(st.sampled_from([0.0, 0.25, 0.5, 0.9]), -0.5, 1.0, 1.5, float("nan"))
names = mostly(st.just(""), "a", "conv1", "conv1_relu", "a.b", "forward", 7)
# Every kind, with the spatial ones weighted up so models get deep enough to be interesting.
kinds = mostly(st.sampled_from((*LAYER_KINDS, "conv", "conv", "conv", "maxpool", "avgpool")), "bogus", "Conv")


@st.composite
def layers(draw):
    kind = draw(kinds)
    fields = {"kind": kind, "name": draw(names)}
    if kind == "conv":
        fields.update(size=draw(sizes), kernel=draw(kernels), stride=draw(strides), padding=draw(paddings),
                      activation=draw(activations))
    elif kind in ("maxpool", "avgpool"):
        fields.update(kernel=draw(kernels), stride=draw(strides), padding=draw(paddings))
    elif kind == "dense":
        fields.update(size=draw(sizes), activation=draw(activations))
    elif kind == "activation":
        fields.update(activation=draw(mostly(st.sampled_from(ACTIVATIONS), None, "gelu")))
    elif kind == "dropout":
        fields.update(rate=draw(rates))
    if draw(st.integers(0, 24)) == 0:
        # A setting the kind does not use.
        fields[draw(st.sampled_from(["size", "kernel", "rate", "activation"]))] = draw(
            st.sampled_from([2, 5, 0.5, "relu"]))
    return LayerSpec(**fields)


@st.composite
def specs(draw):
    num_classes = draw(mostly(st.integers(2, 5), 1, 0))
    body = draw(st.lists(layers(), min_size=1, max_size=6))
    # Usually end with the required output layer so most examples get past that check.
    if draw(st.integers(0, 9)) != 7:
        body.append(LayerSpec("dense", size=num_classes, activation=draw(st.sampled_from([None, None, "relu"]))))
    shape = draw(mostly(st.tuples(st.integers(1, 3), st.integers(1, 14), st.integers(1, 14)),
                        (0, 5, 5), (1, -3, 4), (1, 4), (1, 4.0, 4)))
    return ModelSpec(tuple(body), input_shape=shape, num_classes=num_classes)


def _check_builds_or_refuses(spec: ModelSpec) -> bool:
    """Build and run ``spec``; True if it built, False if it was refused with SpecError."""
    try:
        rows = infer_shapes(spec)
        model = build_model(spec)
    except SpecError as exc:
        assert str(exc)  # a message for the user
        return False
    seen: dict[str, tuple[int, ...]] = {}
    module_to_layer = {module: layer for layer, module in model.output_module_names().items()}
    hooks = [
        getattr(model.layers, module).register_forward_hook(
            lambda mod, inp, out, layer=layer: seen.__setitem__(layer, tuple(out.shape[1:])))
        for module, layer in module_to_layer.items()
    ]
    with torch.no_grad():
        out = model(torch.randn(2, *spec.input_shape))
    for hook in hooks:
        hook.remove()
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()  # e.g. -inf max-pool padding must never leak
    assert [seen[row.name] for row in rows] == [row.output_shape for row in rows]
    summary = summarize(spec)
    assert count_parameters(model) == (summary.trainable, summary.non_trainable)
    assert all(row.activation_bytes == 4 * math.prod(row.output_shape) for row in rows)
    return True


def test_fuzz_specs_build_or_raise_spec_error():
    torch.manual_seed(0)
    built = []

    @FUZZ
    @given(specs())
    def check(spec):
        built.append(_check_builds_or_refuses(spec))

    check()
    # The generator must exercise both outcomes, or the test proves little.
    assert sum(built) >= 40, sum(built)
    assert len(built) - sum(built) >= 40


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 30), st.floats(allow_nan=True),
              st.sampled_from(["conv", "dense", "same", "relu", "", "x"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["kind", "size", "layers", "name", "rate",
                                                             "padding", "input_shape", "num_classes", "zzz"]),
                                            inner, max_size=5)),
    max_leaves=20,
)


@FUZZ
@given(json_values)
def test_fuzz_from_dict_garbage(data):
    try:
        spec = ModelSpec.from_dict(data)
    except SpecError:
        return
    assert isinstance(spec, ModelSpec)


@FUZZ
@given(specs())
def test_fuzz_round_trip_of_valid_specs(spec):
    try:
        infer_shapes(spec)
    except SpecError:
        return
    assert ModelSpec.from_dict(spec.to_dict()) == spec


@st.composite
def spatial_specs(draw):
    # Valid-looking conv/pool chains with lots of "same" padding on odd, non-square inputs: the
    # asymmetric-padding modules must give exactly the shapes infer_shapes promises.
    body = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "maxpool", "avgpool"]))
        kernel = draw(st.integers(1, 6))
        padding = draw(st.sampled_from(["same", "same", "valid", 0, kernel // 2]))
        stride = draw(st.integers(1, 3))
        if kind == "conv":
            body.append(LayerSpec("conv", size=draw(st.integers(1, 3)), kernel=kernel, stride=stride,
                                  padding=padding, activation="relu"))
        else:
            body.append(LayerSpec(kind, kernel=kernel, stride=stride, padding=padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 17)), draw(st.integers(1, 17)))
    return ModelSpec((*body, LayerSpec("dense", size=3)), input_shape=shape, num_classes=3)


@FUZZ
@given(spatial_specs())
def test_fuzz_same_padding_chains(spec):
    torch.manual_seed(0)
    _check_builds_or_refuses(spec)
