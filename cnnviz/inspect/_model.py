"""How the inspection functions drive a model: its layers, its input, its train/eval mode.

Shared plumbing of :mod:`activations`, :mod:`filters` and :mod:`saliency`; not public API.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from cnnviz.errors import SpecError


def layer_root(model: nn.Module) -> nn.Module:
    """The module whose children are the layers: ``model.layers`` when it exists, else ``model``."""
    layers = getattr(model, "layers", None)
    return layers if isinstance(layers, nn.Module) else model


def named_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's layers in order, as ``(name, module)``.

    The children of ``model.layers`` (a :class:`CnnvizNet`), else the model's own children; a model
    without children (a bare ``nn.Linear``) is its own single layer.
    """
    children = list(layer_root(model).named_children())
    return children or [(type(model).__name__, model)]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The layer called ``name`` (a child of the layer root, or a dotted path below it)."""
    modules = dict(layer_root(model).named_modules())
    modules.pop("", None)  # the root itself has the empty name
    if name not in modules:
        known = ", ".join(n for n, _ in named_layers(model))
        raise SpecError(f"the model has no layer named '{name}'; its layers are: {known}")
    return modules[name]


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters (or buffers) live; CPU for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def as_batch(x: torch.Tensor | np.ndarray, model: nn.Module, max_images: int | None = None) -> torch.Tensor:
    """``x`` as a float32 (N, C, H, W) tensor on the model's device, detached from any graph.

    Accepts (H, W), (C, H, W) and (N, C, H, W) tensors or arrays; ``max_images`` keeps the first N.
    """
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[None]
    elif t.ndim != 4:
        raise SpecError(
            f"an image must have shape (height, width), (channels, height, width) or "
            f"(batch, channels, height, width); got shape {tuple(t.shape)}"
        )
    if t.shape[0] == 0:
        raise SpecError(f"no image to run: the batch is empty (shape {tuple(t.shape)})")
    if max_images is not None:
        t = t[:max_images]
    return t.detach().to(device=model_device(model), dtype=torch.float32)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the block with the model in eval mode, then give every submodule its own mode back.

    Restoring each module's flag (rather than ``model.train(was_training)``) keeps a deliberately
    frozen submodule (a BatchNorm kept in eval mode during training) the way the caller left it.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def run_failed(x: torch.Tensor, failed_layer: str | None, err: Exception) -> SpecError:
    """A user-readable error for a forward pass that raised (usually an input of the wrong shape)."""
    where = f" at layer '{failed_layer}'" if failed_layer else ""
    return SpecError(f"the model cannot run on an input of shape {tuple(x.shape)}{where}: {err}")


def to_numpy(a: torch.Tensor | np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """A copy of ``a`` as a numpy array of ``dtype`` (tensors are detached and moved to the CPU)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.array(a, dtype=dtype, copy=True)
