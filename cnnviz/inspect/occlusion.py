"""Occlusion sensitivity: how much the answer drops when a square of the image is hidden.

A ``window`` x ``window`` square is covered with the background (by default the image's darkest value:
blank paper for digits) at every ``stride`` pixels, the covered images go through the model as one batch,
and each pixel gets the mean drop of the target's probability over the squares that cover it. Unlike
gradients it needs no backward pass and reads what the model does, not a local slope; a coarse stride
(4 on a 28 x 28 digit: 36 images) is cheap enough to follow a drawing as it is drawn.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cnnviz.errors import ConfigError
from cnnviz.inspect._model import as_batch, eval_mode, run_failed

DEFAULT_WINDOW = 7
DEFAULT_STRIDE = 3
DRAW_WINDOW, DRAW_STRIDE = 8, 4  # the coarse setting used while drawing


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Window starts from 0 every ``stride``, with the last window flush with the edge."""
    last = max(0, size - window)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def occlusion(model: nn.Module, x: torch.Tensor | np.ndarray, target: int | None = None,
              window: int = DEFAULT_WINDOW, stride: int = DEFAULT_STRIDE, fill: float | None = None,
              batch: int = 256) -> np.ndarray:
    """The occlusion map of one image: float32 (H, W) in [0, 1], 1 where hiding hurts the answer most.

    Parameters
    ----------
    model : torch.nn.Module
    x : tensor or array
        One image, (1, C, H, W) (or (C, H, W), (H, W)), normalised as for training.
    target : int, optional
        The class whose probability is watched; default the predicted class.
    window, stride : int
        The side of the hidden square and the step between two squares, in pixels (>= 1).
    fill : float, optional
        The value hidden pixels get (in the model's normalised units); default the image's minimum.

    All zeros when no square lowers the target's probability.
    """
    if int(window) < 1 or int(stride) < 1:
        raise ConfigError(f"the occlusion window and stride must be at least 1 pixel (got {window}, {stride})")
    xb = as_batch(x, model, max_images=1)
    _, _, height, width = xb.shape
    window_h, window_w = min(int(window), height), min(int(window), width)
    value = float(xb.min()) if fill is None else float(fill)
    boxes = [(r, c) for r in _starts(height, window_h, int(stride)) for c in _starts(width, window_w, int(stride))]
    with eval_mode(model), torch.no_grad():
        try:
            probs = torch.softmax(model(xb).reshape(1, -1).float(), dim=1)[0]
        except RuntimeError as err:
            raise run_failed(xb, None, err) from err
        if target is None:
            target = int(probs.argmax())
        elif not 0 <= int(target) < probs.shape[0]:
            n = probs.shape[0]
            raise ConfigError(f"class {target} does not exist: the model has {n} outputs (0 to {n - 1})")
        base = float(probs[int(target)])
        drops = []
        for start in range(0, len(boxes), batch):
            part = boxes[start : start + batch]
            covered = xb.repeat(len(part), 1, 1, 1)
            for i, (r, c) in enumerate(part):
                covered[i, :, r : r + window_h, c : c + window_w] = value
            p = torch.softmax(model(covered).reshape(len(part), -1).float(), dim=1)[:, int(target)]
            drops.append(base - p.cpu().numpy())
    drop = np.concatenate(drops).astype(np.float64)
    total = np.zeros((height, width), np.float64)
    hits = np.zeros((height, width), np.float64)
    for d, (r, c) in zip(drop, boxes):
        total[r : r + window_h, c : c + window_w] += d
        hits[r : r + window_h, c : c + window_w] += 1
    heat = np.clip(np.where(hits > 0, total / np.maximum(hits, 1), 0.0), 0.0, None)
    peak = float(heat.max())
    return (heat / peak).astype(np.float32) if peak > 1e-12 and np.isfinite(peak) else np.zeros((height, width), np.float32)
