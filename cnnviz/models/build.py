"""Turn a :class:`~cnnviz.models.spec.ModelSpec` into a torch module with stable names.

Every layer of the spec becomes one module of ``CnnvizNet.layers`` named by the layer's name, so
state_dict keys read ``layers.conv1.weight``, ``layers.bn1.running_mean``, ``layers.dense1.bias``.
A fused activation becomes a separate following module ``<name>_<activation>`` (``conv1_relu``),
and a dense layer on a (C, H, W) input gets a ``<name>_flatten`` module before it. Neither has
parameters, so they never change the state_dict keys.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.models.shapes import LayerShape, infer_shapes, spatial_padding
from cnnviz.models.spec import LayerSpec, ModelSpec


class PaddedConv2d(nn.Conv2d):
    """A Conv2d whose input is padded asymmetrically first (TF "same" with an odd padding total).

    Subclassing keeps the state_dict keys ``weight``/``bias`` of a plain Conv2d.
    """

    def __init__(self, *args, pad: tuple[int, int, int, int], **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)
        self.pad = pad  # F.pad order: (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pad={self.pad}"


class PaddedMaxPool2d(nn.MaxPool2d):
    """Max pooling after asymmetric -inf padding, so padding never wins a window (TF "same")."""

    def __init__(self, kernel: int, stride: int, pad: tuple[int, int, int, int]) -> None:
        super().__init__(kernel, stride)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad, value=float("-inf")))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pad={self.pad}"


class PaddedAvgPool2d(nn.AvgPool2d):
    """Average pooling after asymmetric padding that, like TF "same", averages only real pixels."""

    def __init__(self, kernel: int, stride: int, pad: tuple[int, int, int, int]) -> None:
        super().__init__(kernel, stride)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = super().forward(F.pad(x, self.pad))
        # Share of real pixels in each window (never 0: every "same" window holds one).
        share = super().forward(F.pad(torch.ones_like(x[:1, :1]), self.pad))
        return total / share

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pad={self.pad}"


def make_activation(name: str) -> nn.Module:
    """The torch module of an activation name from :data:`~cnnviz.models.spec.ACTIVATIONS`."""
    factories = {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "leaky_relu": lambda: nn.LeakyReLU(0.01),
        "elu": nn.ELU,
    }
    return factories[name]()


class CnnvizNet(nn.Module):
    """A sequential network built from a spec; ``forward`` returns logits (no softmax).

    Attributes
    ----------
    spec : ModelSpec
        The spec with every name filled in.
    shapes : list of LayerShape
        The inferred shapes, one per spec layer.
    layers : nn.Sequential
        The modules, named as described in the module docstring.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.shapes: list[LayerShape] = infer_shapes(spec)
        self.spec = spec.named()
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        # Spec layer name -> name of the module whose output is that layer's output.
        self._output_modules: dict[str, str] = {}
        for layer, shape in zip(self.spec.layers, self.shapes):
            steps = _modules_for(layer, shape)
            modules.update(steps)
            self._output_modules[layer.name] = steps[-1][0]
        self.layers = nn.Sequential(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def layer_names(self) -> list[str]:
        """Names of the modules of ``self.layers`` in order (including ``conv1_relu``-style steps)."""
        return [name for name, _ in self.layers.named_children()]

    def conv_layer_names(self) -> list[str]:
        """Names of the conv layers in order (the modules holding the filters)."""
        return [layer.name for layer in self.spec.layers if layer.kind == "conv"]

    def output_module_names(self) -> dict[str, str]:
        """Spec layer name -> the module whose output is that layer's output (after its activation).

        E.g. ``{"conv1": "conv1_relu", "pool1": "pool1", ...}``: hook these to see each layer's
        result as :func:`~cnnviz.models.shapes.infer_shapes` describes it.
        """
        return dict(self._output_modules)


def build_model(spec: ModelSpec) -> CnnvizNet:
    """Validate ``spec`` and build its network.

    Raises
    ------
    SpecError
        If the spec is impossible (see :func:`~cnnviz.models.shapes.infer_shapes`).
    """
    return CnnvizNet(spec)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Keras-style ``(trainable, non_trainable)`` counts of ``model``.

    Frozen parameters and buffers such as batchnorm running mean/variance are non-trainable;
    torch's ``num_batches_tracked`` counter is not a parameter and is left out.
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    return trainable, frozen + buffers


def _modules_for(layer: LayerSpec, shape: LayerShape) -> list[tuple[str, nn.Module]]:
    kind, name = layer.kind, layer.name
    out: list[tuple[str, nn.Module]] = []
    if kind in ("conv", "maxpool", "avgpool"):
        _, height, width = shape.input_shape
        top, bottom, left, right = spatial_padding(layer, height, width)
        symmetric = top == bottom and left == right
        k, s = layer.kernel, layer.stride
        if kind == "conv":
            channels = shape.input_shape[0]
            if symmetric:
                module = nn.Conv2d(channels, layer.size, k, s, padding=(top, left))
            else:
                module = PaddedConv2d(channels, layer.size, k, s, pad=(left, right, top, bottom))
        elif kind == "maxpool":
            # torch's own pool padding is -inf for max, so the symmetric case needs no subclass.
            module = nn.MaxPool2d(k, s, padding=(top, left)) if symmetric else \
                PaddedMaxPool2d(k, s, pad=(left, right, top, bottom))
        elif symmetric:
            # TF "same" averages real pixels only; numeric padding keeps torch's default (zeros count).
            module = nn.AvgPool2d(k, s, padding=(top, left), count_include_pad=layer.padding != "same")
        else:
            module = PaddedAvgPool2d(k, s, pad=(left, right, top, bottom))
        out.append((name, module))
    elif kind == "batchnorm":
        features = shape.input_shape[0]
        out.append((name, nn.BatchNorm2d(features) if len(shape.input_shape) == 3 else nn.BatchNorm1d(features)))
    elif kind == "activation":
        out.append((name, make_activation(layer.activation)))
    elif kind == "dropout":
        out.append((name, nn.Dropout(layer.rate)))
    elif kind == "flatten":
        out.append((name, nn.Flatten()))
    else:  # dense
        if len(shape.input_shape) == 3:
            out.append((f"{name}_flatten", nn.Flatten()))
        out.append((name, nn.Linear(math.prod(shape.input_shape), layer.size)))
    if kind in ("conv", "dense") and layer.activation is not None:
        out.append((f"{name}_{layer.activation}", make_activation(layer.activation)))
    return out

