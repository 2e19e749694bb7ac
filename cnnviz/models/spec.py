"""Plain-data description of a network: a list of layers, the input shape and the class count.

A :class:`ModelSpec` is what presets ship, the model editor edits, checkpoints store as JSON and
:func:`cnnviz.models.build.build_model` turns into a torch module. It holds no torch objects, so it
crosses threads and processes freely. Shape checks live in :mod:`cnnviz.models.shapes`; this module
only checks what can be checked per field (types, known kinds, known activations, names).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from cnnviz import limits
from cnnviz.errors import SpecError

LAYER_KINDS = ("conv", "maxpool", "avgpool", "batchnorm", "activation", "dropout", "flatten", "dense")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "elu")
PADDING_MODES = ("same", "valid")

# Prefix of automatic names; max and average pooling share "pool" like the tutorials' pool1, pool2.
_PREFIXES = {
    "conv": "conv",
    "maxpool": "pool",
    "avgpool": "pool",
    "batchnorm": "bn",
    "activation": "act",
    "dropout": "drop",
    "flatten": "flatten",
    "dense": "dense",
}

# Fields each kind uses besides `kind` and `name`; every other field must keep its default so a
# spec never carries a setting that silently does nothing (a dense layer with a kernel, ...). The model
# editor's layer form shows these fields and no others.
USED_FIELDS = {
    "conv": ("size", "kernel", "stride", "padding", "activation"),
    "maxpool": ("kernel", "stride", "padding"),
    "avgpool": ("kernel", "stride", "padding"),
    "batchnorm": (),
    "activation": ("activation",),
    "dropout": ("rate",),
    "flatten": (),
    "dense": ("size", "activation"),
}

# Module names become state_dict keys (`layers.<name>.weight`), so keep them simple and dot-free.
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a :class:`ModelSpec`.

    Parameters
    ----------
    kind : str
        One of :data:`LAYER_KINDS`.
    size : int
        conv: output channels; dense: units; 0 for the other kinds.
    kernel : int
        conv/pool: square kernel size.
    stride : int
        conv/pool stride.
    padding : int or str
        An int >= 0, ``"same"`` (TF/Keras: output = ceil(W / S)) or ``"valid"`` (= 0).
    activation : str or None
        conv/dense: activation applied after the layer; ``"activation"`` layers: the function.
    rate : float
        Dropout rate in [0, 1).
    name : str
        Stable name; ``""`` is filled in by :meth:`ModelSpec.named`.
    """

    kind: str
    size: int = 0
    kernel: int = 3
    stride: int = 1
    padding: int | str = 0
    activation: str | None = None
    rate: float = 0.0
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "LayerSpec":
        """Read a layer from a dict; raises :class:`SpecError` on unknown keys or bad values."""
        try:
            return _layer_from_dict(d)
        except SpecError as exc:
            raise SpecError(f"{_where(d)}: {exc}") from None


def _layer_from_dict(d: Any) -> LayerSpec:
    # Raises SpecError with the bare problem; callers add where it is.
    if not isinstance(d, dict):
        raise SpecError(f"a layer must be a JSON object, got {type(d).__name__}")
    unknown = sorted(str(k) for k in set(d) - _FIELD_NAMES)
    if unknown:
        raise SpecError(f"unknown layer setting(s): {', '.join(unknown)}")
    if "kind" not in d:
        raise SpecError("a layer needs a 'kind' (one of " + ", ".join(LAYER_KINDS) + ")")
    layer = LayerSpec(**d)
    problem = field_problem(layer)
    if problem:
        raise SpecError(problem)
    return layer


def _where(d: Any, index: int | None = None) -> str:
    where = "layer" if index is None else f"layer {index}"
    name = d.get("name") if isinstance(d, dict) else None
    return f"{where} '{name}'" if isinstance(name, str) and name else where


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(LayerSpec))
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(LayerSpec) if f.name != "kind"}


@dataclass(frozen=True)
class ModelSpec:
    """A network: layers in order, the (C, H, W) input shape and the number of classes.

    The last layer must be a dense layer with ``num_classes`` units (checked by
    :func:`cnnviz.models.shapes.infer_shapes`).
    """

    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10

    def __post_init__(self) -> None:
        # Accept lists for convenience but store tuples so specs stay hashable and immutable.
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        if isinstance(self.input_shape, list):
            object.__setattr__(self, "input_shape", tuple(self.input_shape))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``{"layers": [...], "input_shape": [C, H, W], "num_classes": n}``."""
        return {
            "layers": [layer.to_dict() for layer in self.layers],
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_dict(cls, d: Any) -> "ModelSpec":
        """Read a spec from :meth:`to_dict`'s format; raises :class:`SpecError` on bad data."""
        if not isinstance(d, dict):
            raise SpecError(f"a model spec must be a JSON object, got {type(d).__name__}")
        unknown = sorted(str(k) for k in set(d) - {"layers", "input_shape", "num_classes"})
        if unknown:
            raise SpecError(f"unknown model setting(s): {', '.join(unknown)}")
        layers = d.get("layers")
        if not isinstance(layers, (list, tuple)):
            raise SpecError("a model spec needs a 'layers' list")
        if len(layers) > limits.MAX_LAYERS:
            raise SpecError(f"the model has {len(layers):,} layers; at most {limits.MAX_LAYERS:,} are allowed")
        parsed = []
        for i, item in enumerate(layers, start=1):
            try:
                parsed.append(_layer_from_dict(item))
            except SpecError as exc:
                raise SpecError(f"{_where(item, i)}: {exc}") from None
        input_shape = d.get("input_shape", (1, 28, 28))
        if not isinstance(input_shape, (list, tuple)):
            raise SpecError(f"input_shape must be a list of 3 positive integers, got {_short(input_shape)}")
        spec = cls(layers=tuple(parsed), input_shape=tuple(input_shape), num_classes=d.get("num_classes", 10))
        check_header(spec)
        return spec

    def named(self) -> "ModelSpec":
        """Copy with every empty name filled in (conv1, pool1, bn1, act1, drop1, flatten1, dense1...).

        Numbers count the layers with the same prefix in order, whether named or not, so a layer
        keeps its automatic name when another layer is renamed. User-given names are kept; an
        automatic name already taken by the user moves on to the next free number. Raises
        :class:`SpecError` on duplicate or malformed names.
        """
        if not isinstance(self.layers, tuple):
            raise SpecError(f"layers must be a list of layer specs, got {type(self.layers).__name__}")
        taken: dict[str, int] = {}
        for i, layer in enumerate(self.layers, start=1):
            if not isinstance(layer, LayerSpec):
                raise SpecError(f"layer {i} is not a layer spec (got {type(layer).__name__})")
            if not isinstance(layer.name, str):
                raise SpecError(f"layer {i}: name must be text, got {_short(layer.name)}")
            if layer.name:
                if not _NAME_RE.match(layer.name):
                    raise SpecError(
                        f"layer {i}: name {_short(layer.name)} must start with a letter and use only letters, "
                        "digits, '_' and '-' (at most 48 characters)"
                    )
                if layer.name in taken:
                    raise SpecError(
                        f"layers {taken[layer.name]} and {i} are both named '{layer.name}'; names must be unique"
                    )
                taken[layer.name] = i
        counters: dict[str, int] = {}
        out = []
        for layer in self.layers:
            prefix = _PREFIXES.get(layer.kind, "layer") if isinstance(layer.kind, str) else "layer"
            counters[prefix] = counters.get(prefix, 0) + 1
            if not layer.name:
                n = counters[prefix]
                while f"{prefix}{n}" in taken:
                    n += 1
                name = f"{prefix}{n}"
                taken[name] = len(out) + 1
                layer = dataclasses.replace(layer, name=name)
            out.append(layer)
        _check_module_names(out)
        return dataclasses.replace(self, layers=tuple(out))

    def with_activation(self, name: str) -> "ModelSpec":
        """Copy with every fused activation and every ``"activation"`` layer set to ``name``.

        Layers without an activation (the logits layer) keep none.
        """
        if name not in ACTIVATIONS:
            raise SpecError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
        layers = tuple(
            dataclasses.replace(layer, activation=name)
            if layer.kind == "activation" or (layer.kind in ("conv", "dense") and layer.activation is not None)
            else layer
            for layer in self.layers
        )
        return dataclasses.replace(self, layers=layers)

    def with_dropout(self, rate: float) -> "ModelSpec":
        """Copy with every dropout layer's rate set to ``rate`` (in [0, 1))."""
        if not _is_real(rate) or not 0.0 <= rate < 1.0:
            raise SpecError(f"dropout rate must be in [0, 1), got {rate!r}")
        layers = tuple(
            dataclasses.replace(layer, rate=float(rate)) if layer.kind == "dropout" else layer
            for layer in self.layers
        )
        return dataclasses.replace(self, layers=layers)

    def with_num_classes(self, n: int) -> "ModelSpec":
        """Copy whose last dense layer has ``n`` units and whose ``num_classes`` is ``n``."""
        if not _is_int(n) or n < 2:
            raise SpecError(f"a classifier needs at least 2 classes, got {n!r}")
        dense_at = [i for i, layer in enumerate(self.layers) if layer.kind == "dense"]
        if not dense_at:
            raise SpecError("the model has no dense layer to set the number of classes on")
        layers = list(self.layers)
        layers[dense_at[-1]] = dataclasses.replace(layers[dense_at[-1]], size=n)
        return dataclasses.replace(self, layers=tuple(layers), num_classes=n)

    def with_input_shape(self, shape: tuple[int, int, int]) -> "ModelSpec":
        """Copy that takes ``(C, H, W)`` images; the layers stay as they are.

        Only the shape itself is checked here (three positive integers); whether the layers fit it is
        :func:`cnnviz.models.shapes.infer_shapes`'s job (see :func:`cnnviz.models.fit.fit_to_images`).
        """
        spec = dataclasses.replace(self, input_shape=tuple(shape))
        check_header(spec)
        return spec


# ---------------------------------------------------------------------------------------------
# Short constructors used by presets.


def conv(filters: int, kernel: int, stride: int = 1, padding: int | str = 0, activation: str | None = "relu",
         name: str = "") -> LayerSpec:
    """A 2-D convolution with ``filters`` output channels and a fused activation (None for none)."""
    return LayerSpec("conv", size=filters, kernel=kernel, stride=stride, padding=padding,
                     activation=activation, name=name)


def maxpool(kernel: int = 2, stride: int | None = None, name: str = "") -> LayerSpec:
    """Max pooling; ``stride`` defaults to ``kernel`` (non-overlapping windows)."""
    return LayerSpec("maxpool", kernel=kernel, stride=kernel if stride is None else stride, name=name)


def avgpool(kernel: int = 2, stride: int | None = None, name: str = "") -> LayerSpec:
    """Average pooling; ``stride`` defaults to ``kernel``."""
    return LayerSpec("avgpool", kernel=kernel, stride=kernel if stride is None else stride, name=name)


def batchnorm(name: str = "") -> LayerSpec:
    """Batch normalization over channels (after conv) or features (after dense)."""
    return LayerSpec("batchnorm", name=name)


def act(name: str = "relu") -> LayerSpec:
    """A standalone activation layer."""
    return LayerSpec("activation", activation=name)


def dropout(rate: float) -> LayerSpec:
    """Dropout with the given rate in [0, 1)."""
    return LayerSpec("dropout", rate=rate)


def flatten() -> LayerSpec:
    """Flatten (C, H, W) to C*H*W values."""
    return LayerSpec("flatten")


def dense(units: int, activation: str | None = None, name: str = "") -> LayerSpec:
    """A fully connected layer; flattens a (C, H, W) input by itself."""
    return LayerSpec("dense", size=units, activation=activation, name=name)


# ---------------------------------------------------------------------------------------------
# Per-field checks shared by from_dict and infer_shapes.


def field_problem(layer: LayerSpec) -> str | None:
    """What is wrong with ``layer``'s fields on their own (no shapes), or None.

    The message is written to follow a ``"layer 3 'conv2': "`` prefix.
    """
    kind = layer.kind
    if kind not in LAYER_KINDS:
        return f"unknown layer kind {_short(kind)}; choose one of {', '.join(LAYER_KINDS)}"
    if not isinstance(layer.name, str):
        return f"name must be text, got {_short(layer.name)}"
    used = USED_FIELDS[kind]
    for field_name, default in _DEFAULTS.items():
        if field_name == "name" or field_name in used:
            continue
        value = getattr(layer, field_name)
        if not _is_default(value, default):
            return f"{article(kind)} {kind} layer has no {field_name} setting (got {_short(value)})"
    if "size" in used:
        what = "filters" if kind == "conv" else "units"
        if not _is_int(layer.size):
            return f"number of {what} must be an integer, got {_short(layer.size)}"
        if layer.size < 1:
            return f"{article(kind)} {kind} layer needs at least 1 of its {what}, got {layer.size}"
    if "kernel" in used:
        if not _is_int(layer.kernel):
            return f"kernel size must be an integer, got {_short(layer.kernel)}"
        if layer.kernel < 1:
            return f"kernel size must be at least 1, got {layer.kernel}"
        if not _is_int(layer.stride):
            return f"stride must be an integer, got {_short(layer.stride)}"
        if layer.stride < 1:
            return f"stride must be at least 1, got {layer.stride}"
        pad = layer.padding
        if isinstance(pad, str):
            if pad not in PADDING_MODES:
                return f"padding must be an integer >= 0, 'same' or 'valid'; got {_short(pad)}"
        elif not _is_int(pad):
            return f"padding must be an integer >= 0, 'same' or 'valid'; got {_short(pad)}"
        elif pad < 0:
            return f"padding must be at least 0, got {pad}"
    if "activation" in used:
        a = layer.activation
        if kind == "activation" and a is None:
            return f"an activation layer needs a function: one of {', '.join(ACTIVATIONS)}"
        if a is not None and a not in ACTIVATIONS:
            return f"unknown activation {_short(a)}; choose one of {', '.join(ACTIVATIONS)}"
    if "rate" in used:
        if not _is_real(layer.rate) or not 0.0 <= layer.rate < 1.0:
            return f"dropout rate must be in [0, 1), got {_short(layer.rate)}"
    return None


def check_header(spec: ModelSpec) -> None:
    """Check the spec's container fields: layers tuple, input shape and class count."""
    shape = spec.input_shape
    if not isinstance(shape, tuple) or len(shape) != 3 or not all(_is_int(v) and v > 0 for v in shape):
        raise SpecError(f"input_shape must be 3 positive integers (channels, height, width), got {_short(shape)}")
    if not _is_int(spec.num_classes) or spec.num_classes < 2:
        raise SpecError(f"num_classes must be an integer of at least 2, got {_short(spec.num_classes)}")
    if spec.num_classes > limits.MAX_CLASSES:
        raise SpecError(f"num_classes must be at most {limits.MAX_CLASSES:,}, got {_big(spec.num_classes)}")
    if not isinstance(spec.layers, tuple):
        raise SpecError(f"layers must be a list of layer specs, got {type(spec.layers).__name__}")
    if not spec.layers:
        raise SpecError("the model has no layers; it needs at least a dense output layer")
    if len(spec.layers) > limits.MAX_LAYERS:
        raise SpecError(f"the model has {len(spec.layers):,} layers; at most {limits.MAX_LAYERS:,} are allowed")
    for i, layer in enumerate(spec.layers, start=1):
        if not isinstance(layer, LayerSpec):
            raise SpecError(f"layer {i} is not a layer spec (got {type(layer).__name__})")


def article(kind: str) -> str:
    """``"an"`` before avgpool/activation, ``"a"`` before the other kinds."""
    return "an" if kind[:1] in "aeiou" else "a"


def derived_module_names(layer: LayerSpec) -> list[str]:
    """Names of the extra modules the builder may add for ``layer`` (fused activation, flatten)."""
    names = []
    if layer.kind == "dense":
        names.append(f"{layer.name}_flatten")
    if layer.kind in ("conv", "dense") and layer.activation is not None:
        names.append(f"{layer.name}_{layer.activation}")
    return names


def _check_module_names(layers: list[LayerSpec]) -> None:
    # The builder adds modules like "conv1_relu" and "dense1_flatten"; a user name equal to one of
    # them would collide inside nn.Sequential, and names like "forward" shadow its attributes.
    owner: dict[str, str] = {layer.name: layer.name for layer in layers}
    for layer in layers:
        for extra in derived_module_names(layer):
            if extra in owner:
                raise SpecError(
                    f"layer '{owner[extra]}' has the name the builder uses for '{layer.name}''s "
                    f"{extra[len(layer.name) + 1:]} step ('{extra}'); rename it"
                )
            owner[extra] = layer.name
    reserved = _reserved_names()
    for name in owner:
        if name in reserved:
            raise SpecError(f"'{name}' cannot be used as a layer name (it is reserved by torch); rename it")


_RESERVED: frozenset[str] | None = None


def _reserved_names() -> frozenset[str]:
    global _RESERVED
    if _RESERVED is None:
        import torch.nn as nn  # lazy: spec handling alone should not pay for importing torch

        _RESERVED = frozenset(dir(nn.Sequential()))
    return _RESERVED


def _is_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    # Only compare plain scalars: True == 1 would pass for a default int, and arrays cannot be compared.
    return type(value) in (int, float, str) and type(default) in (int, float, str) and value == default


def _short(value: Any) -> str:
    """``repr(value)``, cut to a length a one-line message can hold (file data can be huge)."""
    from cnnviz.validation import describe

    return describe(value)


def _big(value: int) -> str:
    return _short(value) if abs(value) >= 10**30 else f"{value:,}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
