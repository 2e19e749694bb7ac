"""Which pixels a prediction depends on: gradient saliency and Grad-CAM.

Written here rather than taken from captum: the two methods are ~60 lines on plain autograd, and
captum would be a large dependency for them. Gradients are taken with ``torch.autograd.grad``
with respect to the input / the chosen activation only, so no ``.grad`` is ever written on the
model's parameters (the model may be training in the background).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.errors import ConfigError, SpecError
from cnnviz.inspect._model import as_batch, eval_mode, find_layer, named_layers, run_failed


def _scores(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    try:
        out = model(xb)
    except RuntimeError as err:
        raise run_failed(xb, None, err) from err
    return out.reshape(out.shape[0], -1)


def _target_score(logits: torch.Tensor, target: int | None) -> torch.Tensor:
    n = logits.shape[1]
    if target is None:
        target = int(logits[0].argmax())
    elif not 0 <= int(target) < n:
        raise ConfigError(f"class {target} does not exist: the model has {n} outputs (0 to {n - 1})")
    return logits[0, int(target)]


def _unit_range(m: torch.Tensor) -> np.ndarray:
    """``m`` scaled to [0, 1] by its maximum; all zeros (never NaN) when the maximum is not > 0."""
    a = m.detach().cpu().numpy().astype(np.float32)
    a = np.where(np.isfinite(a), a, 0).astype(np.float32)
    peak = float(a.max()) if a.size else 0.0
    return a / peak if peak > 0 else np.zeros_like(a)


def saliency(model: nn.Module, x: torch.Tensor | np.ndarray, target: int | None = None) -> np.ndarray:
    """Gradient saliency: ``|d logit_target / d x|``, max over input channels, scaled to [0, 1].

    Parameters
    ----------
    model : torch.nn.Module
    x : tensor or array
        One image, (1, C, H, W) (or (C, H, W), (H, W)).
    target : int, optional
        The class to explain; default the predicted class.

    Returns
    -------
    numpy.ndarray
        float32 (H, W) in [0, 1]; all zeros where the gradient vanishes.
    """
    xb = as_batch(x, model, max_images=1).requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        score = _target_score(_scores(model, xb), target)
        (grad,) = torch.autograd.grad(score, xb, allow_unused=True)
    if grad is None:  # the output does not depend on the input at all
        return np.zeros(tuple(xb.shape[-2:]), dtype=np.float32)
    return _unit_range(grad[0].abs().amax(dim=0))


def grad_cam(
    model: nn.Module, x: torch.Tensor | np.ndarray, target: int | None = None, layer: str | None = None
) -> np.ndarray:
    """Grad-CAM: ``ReLU(sum_k alpha_k A_k)`` on a conv-like layer, upsampled to the input size.

    ``alpha_k`` is the spatial mean of ``d logit_target / d A_k``.

    Parameters
    ----------
    model : torch.nn.Module
    x : tensor or array
        One image, (1, C, H, W) (or (C, H, W), (H, W)).
    target : int, optional
        The class to explain; default the predicted class.
    layer : str, optional
        Name of a layer with a (C, h, w) output; default the last such layer (the last conv, pool or
        activation before the flatten/dense part).

    Returns
    -------
    numpy.ndarray
        float32 (H, W) in [0, 1], bilinearly upsampled; all zeros when the gradients vanish. A model
        with no (C, h, w) layer (dense only) gets :func:`saliency` instead.
    """
    xb = as_batch(x, model, max_images=1)
    # Record the outputs (still in the graph) of the named layer, or of every layer to pick from.
    chosen = [(layer, find_layer(model, layer))] if layer is not None else named_layers(model)
    outputs: list[tuple[str, torch.Tensor]] = []

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                outputs.append((name, output))

        return record

    handles = []
    try:
        for name, module in chosen:
            handles.append(module.register_forward_hook(hook(name)))
        # The input needs a graph too, or a model with frozen parameters gives no gradient at all.
        xb.requires_grad_(True)
        with eval_mode(model), torch.enable_grad():
            logits = _scores(model, xb)
            maps = [(name, out) for name, out in outputs if out.ndim == 4]
            if layer is not None and not maps:
                shape = tuple(outputs[-1][1].shape[1:]) if outputs else "nothing"
                raise SpecError(
                    f"Grad-CAM needs a layer with a (channels, height, width) output; "
                    f"layer '{layer}' outputs {shape}"
                )
            if maps:
                activation = maps[-1][1]
                score = _target_score(logits, target)
                (grad,) = torch.autograd.grad(score, activation, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    if not maps:  # dense-only model: nothing spatial to weight, explain the pixels instead
        return saliency(model, xb, target)
    if grad is None:
        return np.zeros(tuple(xb.shape[-2:]), dtype=np.float32)
    with torch.no_grad():
        alpha = grad[0].mean(dim=(1, 2))  # (K,)
        cam = torch.relu((alpha[:, None, None] * activation[0]).sum(dim=0))
        cam = F.interpolate(cam[None, None], size=tuple(xb.shape[-2:]), mode="bilinear", align_corners=False)
    return _unit_range(cam[0, 0].clamp_min(0))
