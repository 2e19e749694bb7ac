"""Shape inference and validation of a :class:`~cnnviz.models.spec.ModelSpec` without torch.

:func:`infer_shapes` walks the layers the way the builder will, computing every output shape and
Keras-style parameter count, and raises :class:`SpecError` naming the layer and the numbers for
anything the builder could not build. The builder and the summary table both start from here, so
the shapes shown to the user are the shapes torch will produce.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from cnnviz.errors import SpecError
from cnnviz.models.spec import LayerSpec, ModelSpec, article, check_header, field_problem

BYTES_PER_VALUE = 4  # float32
# Guards against typos (100000 filters) that would otherwise die in torch with an allocation error.
MAX_PARAMETERS = 100_000_000
MAX_ACTIVATION_BYTES = 1 << 30  # per image, per layer


@dataclass(frozen=True)
class LayerShape:
    """What one layer does to one image.

    Attributes
    ----------
    name, kind : str
        The layer's (filled-in) name and kind.
    input_shape, output_shape : tuple of int
        ``(C, H, W)`` or ``(N,)``.
    trainable, non_trainable : int
        Parameter counts, Keras-style (batchnorm running mean/var are non-trainable).
    activation_bytes : int
        float32 bytes of the layer's output for one image.
    detail : str
        A human-readable explanation, e.g. ``"8 filters 5x5 stride 2 ...; (28 + 2*2 - 5) / 2 + 1 = 14"``.
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    trainable: int
    non_trainable: int
    activation_bytes: int
    detail: str


def layer_label(index: int, layer: LayerSpec) -> str:
    """``"layer 3 'conv2'"``: how messages name a layer (1-based position)."""
    return f"layer {index} '{layer.name}'" if layer.name else f"layer {index}"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF/Keras "same" padding (before, after) of one spatial dimension; odd totals pad more after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def spatial_padding(layer: LayerSpec, height: int, width: int) -> tuple[int, int, int, int]:
    """Padding ``(top, bottom, left, right)`` of a conv/pool layer on a ``height x width`` input."""
    if layer.padding == "same":
        top, bottom = same_padding(height, layer.kernel, layer.stride)
        left, right = same_padding(width, layer.kernel, layer.stride)
        return top, bottom, left, right
    p = 0 if layer.padding == "valid" else int(layer.padding)
    return p, p, p, p


def infer_shapes(spec: ModelSpec) -> list[LayerShape]:
    """Validate ``spec`` and compute every layer's shapes and parameter counts.

    Parameters
    ----------
    spec : ModelSpec
        The model; empty names are filled in as :meth:`ModelSpec.named` does.

    Returns
    -------
    list of LayerShape
        One entry per layer, in order.

    Raises
    ------
    SpecError
        If the builder could not build the spec; the message names the layer and the numbers.
    """
    if not isinstance(spec, ModelSpec):
        raise SpecError(f"expected a model spec, got {type(spec).__name__}")
    check_header(spec)
    spec = spec.named()
    for i, layer in enumerate(spec.layers, start=1):
        problem = field_problem(layer)
        if problem:
            raise SpecError(f"{layer_label(i, layer)}: {problem}")
    last = spec.layers[-1]
    if last.kind != "dense" or last.size != spec.num_classes:
        has = f"has {last.size}" if last.kind == "dense" else f"is a {last.kind} layer"
        raise SpecError(
            f"the last layer must be a dense layer with num_classes={spec.num_classes} outputs; "
            f"'{last.name}' {has}"
        )

    rows: list[LayerShape] = []
    shape: tuple[int, ...] = tuple(spec.input_shape)
    total_params = 0
    for i, layer in enumerate(spec.layers, start=1):
        row = _infer_layer(i, layer, shape)
        total_params += row.trainable + row.non_trainable
        if total_params > MAX_PARAMETERS:
            raise SpecError(
                f"{layer_label(i, layer)}: the model reaches {total_params:,} parameters here, more than "
                f"the {MAX_PARAMETERS:,} cnnviz can train; use fewer filters or units"
            )
        if row.activation_bytes > MAX_ACTIVATION_BYTES:
            raise SpecError(
                f"{layer_label(i, layer)}: its output {_fmt_shape(row.output_shape)} takes "
                f"{row.activation_bytes / 2**20:,.0f} MB per image, more than the "
                f"{MAX_ACTIVATION_BYTES // 2**20:,} MB cnnviz allows; use fewer filters or a larger stride"
            )
        rows.append(row)
        shape = row.output_shape
    return rows


def _infer_layer(index: int, layer: LayerSpec, shape: tuple[int, ...]) -> LayerShape:
    label = layer_label(index, layer)
    kind = layer.kind
    trainable = non_trainable = 0
    if kind in ("conv", "maxpool", "avgpool"):
        if len(shape) != 3:
            raise SpecError(
                f"{label}: {article(kind)} {kind} layer needs a (channels, height, width) input, but it comes "
                f"after a flatten or dense layer (its input is {shape[0]} flat values)"
            )
        channels, height, width = shape
        top, bottom, left, right = spatial_padding(layer, height, width)
        k, s = layer.kernel, layer.stride
        if k > height + top + bottom or k > width + left + right:
            pad = layer.padding if layer.padding != "valid" else 0
            raise SpecError(
                f"{label}: kernel {k} is larger than its {height}x{width} input padded by {pad}"
            )
        if kind != "conv" and isinstance(layer.padding, int) and layer.padding > k // 2:
            # torch's pooling refuses padding over half the kernel (a window could hold only padding).
            raise SpecError(
                f"{label}: padding {layer.padding} is more than half the {k}x{k} pooling window "
                f"(at most {k // 2})"
            )
        out_h = (height + top + bottom - k) // s + 1
        out_w = (width + left + right - k) // s + 1
        eq_h = _equation(height, k, s, top, bottom, out_h)
        eq_w = _equation(width, k, s, left, right, out_w)
        equation = eq_h if eq_h == eq_w else f"height {eq_h}; width {eq_w}"
        pad_text = f" padding {layer.padding}" if layer.padding not in (0, "valid") else ""
        if kind == "conv":
            out_shape = (layer.size, out_h, out_w)
            trainable = channels * k * k * layer.size + layer.size
            act_text = f", {layer.activation}" if layer.activation else ""
            detail = f"{layer.size} filters {k}x{k} stride {s}{pad_text}{act_text}; {equation}"
        else:
            out_shape = (channels, out_h, out_w)
            detail = f"{kind[:3]} {k}x{k} stride {s}{pad_text}; {equation}"
    elif kind == "batchnorm":
        features = shape[0]
        trainable, non_trainable = 2 * features, 2 * features
        out_shape = shape
        what = "channels" if len(shape) == 3 else "features"
        detail = f"normalizes {features} {what} (gamma, beta; running mean, variance)"
    elif kind == "activation":
        out_shape, detail = shape, str(layer.activation)
    elif kind == "dropout":
        out_shape, detail = shape, f"drops {layer.rate:g} of the values while training"
    elif kind == "flatten":
        n = math.prod(shape)
        out_shape, detail = (n,), f"{_fmt_shape(shape)} = {n}" if len(shape) == 3 else "already flat"
    else:  # dense
        n_in = math.prod(shape)
        out_shape = (layer.size,)
        trainable = n_in * layer.size + layer.size
        flat_text = f"flattens {_fmt_shape(shape)} = {n_in}; " if len(shape) == 3 else ""
        act_text = f", {layer.activation}" if layer.activation else ""
        detail = f"{flat_text}{n_in} -> {layer.size} units{act_text}"
    return LayerShape(
        name=layer.name,
        kind=kind,
        input_shape=tuple(shape),
        output_shape=tuple(out_shape),
        trainable=trainable,
        non_trainable=non_trainable,
        activation_bytes=BYTES_PER_VALUE * math.prod(out_shape),
        detail=detail,
    )


def _equation(size: int, kernel: int, stride: int, before: int, after: int, out: int) -> str:
    # "(28 + 2*2 - 5) / 2 + 1 = 14"; "floor(...)" when the division is not exact.
    if before == after == 0:
        pad = ""
    elif before == after:
        pad = f" + 2*{before}"
    else:
        pad = f" + {before}+{after}"
    body = f"({size}{pad} - {kernel}) / {stride}"
    if (size + before + after - kernel) % stride:
        body = f"floor({body})"
    return f"{body} + 1 = {out}"


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)
