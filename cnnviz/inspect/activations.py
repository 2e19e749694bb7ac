"""What every layer outputs for one image, and the class probabilities.

One forward pass with a forward hook on each layer records the outputs; the hooks are removed and the
model's train/eval mode is restored whatever happens, because the same model object keeps training
in the background while the window inspects it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.inspect._model import as_batch, eval_mode, named_layers, run_failed

# Images per forward pass in predict_proba: a 10,000-image test set at once would hold ~1 GB of
# conv activations; 512 keeps memory small and is as fast.
_PREDICT_BATCH = 512


# eq=False: the generated __eq__/__hash__ would compare/hash the numpy array, which raises.
@dataclass(frozen=True, eq=False)
class LayerActivation:
    """One layer's output for one image.

    Attributes
    ----------
    name : str
        The layer's name (``"input"`` for the image itself).
    kind : str
        The module's class name (``"Conv2d"``, ``"ReLU"``, ...; ``"Input"`` for the image).
    shape : tuple of int
        The output's shape without the batch dimension, e.g. ``(32, 26, 26)`` or ``(128,)``.
    values : numpy.ndarray
        A read-only float32 copy of the output, of shape ``shape``.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    values: np.ndarray


def _activation(name: str, kind: str, t: torch.Tensor) -> LayerActivation:
    # A copy, so that the next optimizer step (or an in-place op further on) cannot change it.
    values = np.array(t[0].detach().cpu().numpy(), dtype=np.float32, copy=True)
    values.setflags(write=False)
    return LayerActivation(name=name, kind=kind, shape=tuple(values.shape), values=values)


def feature_maps(model: nn.Module, x: torch.Tensor | np.ndarray) -> list[LayerActivation]:
    """Run ``x`` through ``model`` once and return every layer's output.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`CnnvizNet` (its ``layers`` children are hooked) or any module (its own children).
    x : tensor or array
        One image, (1, 1, 28, 28) normalised as for training; (28, 28) and (1, 28, 28) are accepted.
        Only the first image of a larger batch is kept.

    Returns
    -------
    list of LayerActivation
        The input first (name ``"input"``), then each layer's output in the order the layers ran.
        Layers whose output is not a tensor are skipped.

    Raises
    ------
    SpecError
        The model cannot run on an input of this shape (names the layer that failed).
    """
    xb = as_batch(x, model, max_images=1)
    out: list[LayerActivation] = [_activation("input", "Input", xb)]
    running: list[str | None] = [None]  # the layer being run, to name it when it fails

    def pre_hook(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            running[0] = name

        return hook

    def post_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            running[0] = None
            if isinstance(output, torch.Tensor):
                out.append(_activation(name, type(module).__name__, output))

        return hook

    handles = []
    try:
        for name, module in named_layers(model):
            handles.append(module.register_forward_pre_hook(pre_hook(name)))
            handles.append(module.register_forward_hook(post_hook(name)))
        with eval_mode(model), torch.no_grad():
            try:
                model(xb)
            except RuntimeError as err:  # shape mismatches; anything else is a bug and propagates
                raise run_failed(xb, running[0], err) from err
    finally:
        for handle in handles:
            handle.remove()
    return out


def probabilities(output: torch.Tensor, last: nn.Module) -> torch.Tensor:
    """(N, C) float probabilities from a model's output, given its last layer: softmax of logits, or the
    output itself after a ``Softmax`` (exponentiated after a ``LogSoftmax``)."""
    output = output.reshape(output.shape[0], -1).float()
    if isinstance(last, nn.Softmax):
        return output
    if isinstance(last, nn.LogSoftmax):
        return output.exp()
    return torch.softmax(output, dim=1)


def predict_proba(model: nn.Module, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Class probabilities (softmax of the model's logits) in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits of shape (N, C); a model whose last layer is already a
        ``Softmax`` or ``LogSoftmax`` is recognised and not softmaxed twice.
    x : tensor or array
        (1, 1, H, W) / (1, H, W) / (H, W) for one image, (N, 1, H, W) for a batch.

    Returns
    -------
    numpy.ndarray
        float32 of shape (C,) for one image (a batch of one included), (N, C) for N > 1.
    """
    xb = as_batch(x, model)
    last = named_layers(model)[-1][1]
    chunks = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, xb.shape[0], _PREDICT_BATCH):
            batch = xb[start : start + _PREDICT_BATCH]
            try:
                logits = model(batch)
            except RuntimeError as err:
                raise run_failed(batch, None, err) from err
            chunks.append(probabilities(logits, last).cpu().numpy())
    probs = np.concatenate(chunks).astype(np.float32, copy=False)
    return probs[0] if probs.shape[0] == 1 else probs
