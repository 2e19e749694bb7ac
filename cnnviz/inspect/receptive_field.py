"""Which input pixels a unit of a conv layer sees: its receptive field, worked out from the layers' geometry.

Each layer before it (conv, pooling; activations, batch norm and dropout keep the geometry) maps an output
position ``o`` to the input window ``[o * stride - pad, o * stride - pad + span)``, where ``pad`` is the
top/left padding (the asymmetric "same" padding of :class:`~cnnviz.models.build.PaddedConv2d` included) and
``span`` is ``dilation * (kernel - 1) + 1``. Composed from the input on, a unit at ``(row, col)`` of the layer
sees the box starting at ``offset + row * jump`` of side ``size`` (clipped to the image).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnviz.errors import SpecError
from cnnviz.inspect._model import find_layer, named_layers


@dataclass(frozen=True)
class Axis:
    """One axis of a receptive field: ``size`` pixels, starting at ``offset + position * jump``."""

    size: int = 1
    jump: int = 1
    offset: int = 0

    def then(self, kernel: int, stride: int, pad: int, dilation: int = 1) -> "Axis":
        """The axis after a window of ``kernel`` taps (``dilation`` apart), ``stride`` and top/left ``pad``."""
        span = dilation * (kernel - 1) + 1
        return Axis(self.size + (span - 1) * self.jump, self.jump * stride, self.offset - pad * self.jump)


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of the units of one layer, in input pixels."""

    rows: Axis
    cols: Axis

    def box(self, row: int, col: int, image_shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` (bottom/right exclusive) that unit ``(row, col)`` sees, clipped to
        an image of ``(H, W)``."""
        height, width = int(image_shape[0]), int(image_shape[1])
        top = self.rows.offset + int(row) * self.rows.jump
        left = self.cols.offset + int(col) * self.cols.jump
        return (max(0, top), max(0, left), min(height, top + self.rows.size), min(width, left + self.cols.size))


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _geometry(module: nn.Module) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """``(kernel, stride, top/left pad, dilation)`` as (rows, cols) pairs of a windowed layer; None otherwise."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        padding = module.padding if not isinstance(module.padding, str) else None
        if padding is None:  # padding="same" of a stride-1 conv: PyTorch pads (span - 1) // 2 before
            dil = _pair(module.dilation)
            padding = tuple((d * (k - 1)) // 2 for k, d in zip(kernel, dil))
        pad = list(_pair(padding))
        extra = getattr(module, "pad", None)  # F.pad order (left, right, top, bottom), applied first
        if extra is not None:
            pad = [pad[0] + int(extra[2]), pad[1] + int(extra[0])]
        dilation = _pair(getattr(module, "dilation", 1))
        return kernel, stride, (pad[0], pad[1]), dilation
    return None


def receptive_field(model: nn.Module, layer: str) -> ReceptiveField:
    """The receptive field of the units of ``layer`` (a name of :func:`named_layers`, usually a conv layer).

    Raises SpecError for an unknown layer or one after the flatten (its units see the whole image).
    """
    target = find_layer(model, layer)
    rows, cols = Axis(), Axis()
    for name, module in named_layers(model):
        if isinstance(module, (nn.Flatten, nn.Linear)):
            raise SpecError(f"layer '{layer}' comes after the flatten: its units see the whole image")
        geometry = _geometry(module)
        if geometry is not None:
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry
            rows, cols = rows.then(kh, sh, ph, dh), cols.then(kw, sw, pw, dw)
        if module is target:
            return ReceptiveField(rows, cols)
    raise SpecError(f"layer '{layer}' is not one of the model's layers in order")
