"""Activation maximisation: the input that excites a conv filter or a class most.

Gradient ascent on the input image from faint noise, with the usual regularisers that keep the answer an
image rather than adversarial noise: *jitter* (the image is rolled by a random few pixels before each step,
so the answer must work wherever it sits), *blur* (a small Gaussian every few steps removes the highest
frequencies) and *decay* (an L2 penalty keeps pixels that do not help dark). Pixels stay in the training
range [0, 1] (ink = 1) and go through the data's normalisation, as a real digit would.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.errors import CnnvizError, SpecError
from cnnviz.inspect._model import eval_mode, find_layer


class ActmaxCancelled(CnnvizError):
    """The user (or a newer request) cancelled an activation maximisation."""


@dataclass(frozen=True)
class ActmaxSettings:
    """The ascent: ``steps`` of Adam at ``lr`` on pixels; jitter, blur every ``blur_every`` steps, L2 ``decay``."""

    steps: int = 160
    lr: float = 0.05
    jitter: int = 2  # pixels, each way
    blur_every: int = 4
    blur_sigma: float = 0.6
    decay: float = 1e-4  # times the sum of squared pixels
    seed: int = 0


@dataclass(frozen=True, eq=False)
class ActmaxResult:
    """The image found (H, W) float32 in [0, 1], the objective it reaches and the one faint noise reached."""

    image: np.ndarray
    score: float
    start_score: float
    target: str  # e.g. "conv1 filter 3" or "class 7"


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def _objective(model: nn.Module, layer: str | None, index: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """f(x) -> scalar: the mean rectified activation of channel ``index`` of ``layer`` (how strongly the filter
    fires; the plain mean of a linear filter would depend only on the image's border), or the logit of class
    ``index``."""
    if layer is None:
        def class_logit(x: torch.Tensor) -> torch.Tensor:
            out = model(x)
            if index >= out.shape[1]:
                raise SpecError(f"the model has {out.shape[1]} classes; there is no class {index}")
            return out[0, index]
        return class_logit
    module = find_layer(model, layer)
    captured: list[torch.Tensor] = []

    def filter_mean(x: torch.Tensor) -> torch.Tensor:
        captured.clear()
        handle = module.register_forward_hook(lambda m, a, out: captured.append(out))
        try:
            model(x)
        finally:
            handle.remove()
        out = captured[0]
        if out.ndim < 2 or index >= out.shape[1]:
            raise SpecError(f"layer '{layer}' has no channel {index} (its output is {tuple(out.shape)})")
        return torch.relu(out[0, index]).mean()  # what the filter fires for (a pure linear mean telescopes)
    return filter_mean


def maximise(model: nn.Module, shape: tuple[int, int], layer: str | None = None, index: int = 0,
             mean: float = 0.0, std: float = 1.0, settings: ActmaxSettings = ActmaxSettings(),
             progress: Callable[[int, int], None] | None = None,
             cancel: threading.Event | None = None) -> ActmaxResult:
    """The (H, W) image in [0, 1] that maximises a conv filter's mean activation (``layer`` and its channel
    ``index``) or, with ``layer`` None, the logit of class ``index``.

    ``mean``/``std`` are the data's normalisation (the model sees ``(pixels - mean) / std``). Deterministic
    for a seed; ``progress(done, total)`` every few steps; ``cancel`` stops with :class:`ActmaxCancelled`.
    The model's weights are not changed (gradients are taken with respect to the input only).
    """
    h, w = int(shape[0]), int(shape[1])
    s = settings
    gen = torch.Generator().manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    x = (0.05 + 0.02 * torch.randn(1, 1, h, w, generator=gen)).clamp(0, 1).requires_grad_(True)
    objective = _objective(model, layer, index)
    kernel = _gaussian_kernel(s.blur_sigma)
    pad = kernel.shape[-1] // 2
    # Adam by hand (torch.optim's first step held the GIL for ~0.2 s, freezing the window's GUI thread)
    m1, m2 = torch.zeros_like(x), torch.zeros_like(x)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    report = progress or (lambda done, total: None)
    target = f"class {index}" if layer is None else f"{layer} filter {index}"
    with eval_mode(model), torch.enable_grad():
        with torch.no_grad():
            start = float(objective((x - mean) / std))
        for step in range(s.steps):
            if cancel is not None and cancel.is_set():
                raise ActmaxCancelled(f"activation maximisation of {target} cancelled")
            dy, dx = (int(v) for v in rng.integers(-s.jitter, s.jitter + 1, size=2)) if s.jitter else (0, 0)
            shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            value = objective((shifted - mean) / std)
            loss = -value + s.decay * (x ** 2).sum()
            (grad,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                m1.mul_(beta1).add_(grad, alpha=1 - beta1)
                m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                t = step + 1
                x.sub_(s.lr * (m1 / (1 - beta1 ** t)) / ((m2 / (1 - beta2 ** t)).sqrt() + eps))
                if s.blur_every and (step + 1) % s.blur_every == 0:
                    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
                    x.copy_(torch.nn.functional.conv2d(padded, kernel))
                x.clamp_(0.0, 1.0)
            time.sleep(0)  # let the GUI thread have the GIL between steps
            if (step + 1) % 16 == 0:
                report(step + 1, s.steps)
        with torch.no_grad():
            score = float(objective((x - mean) / std))
    report(s.steps, s.steps)
    image = x.detach()[0, 0].numpy().astype(np.float32).copy()
    if not (np.isfinite(image).all() and np.isfinite(score)):
        raise CnnvizError(f"no input for {target}: the weights are not finite numbers (the run has diverged)")
    return ActmaxResult(image, score, start, target)
