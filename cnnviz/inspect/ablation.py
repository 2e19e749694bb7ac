"""Ablation: the test accuracy with each filter of a conv layer zeroed, one at a time.

A zeroed filter outputs 0 everywhere (as if its weights and bias were 0). The model is never changed: its
layers are run in two parts, the part up to the layer once per batch and the rest once per filter with that
channel set to 0, so a layer of F filters costs about one full pass plus F passes of the layers after it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.errors import CnnvizError, SpecError
from cnnviz.inspect._model import as_batch, eval_mode, layer_root, run_failed
from cnnviz.inspect.top_patches import conv_layers

BATCH = 500
Progress = Callable[[int, int], None]  # (batches done, batches in all)


class AblationCancelled(CnnvizError):
    """The ablation was cancelled."""

    def __init__(self) -> None:
        super().__init__("the ablation was cancelled")


@dataclass(frozen=True, eq=False)
class Ablation:
    """``baseline_accuracy`` of the intact model and ``accuracy_without_filter[f]`` with filter f zeroed."""

    layer: str
    baseline_accuracy: float
    accuracy_without_filter: np.ndarray  # float64 (F,)
    examples: int

    @property
    def drop(self) -> np.ndarray:
        """How much each filter's removal costs: baseline - accuracy without it (negative: it helped)."""
        return self.baseline_accuracy - self.accuracy_without_filter


def _split(model: nn.Module, layer: str) -> tuple[nn.Module, nn.Module, int]:
    """(the layers up to and including ``layer``, the layers after it, its filter count)."""
    root = layer_root(model)
    if not isinstance(root, nn.Sequential):
        raise SpecError("ablation needs a model whose layers run one after another")
    names = [name for name, _ in root.named_children()]
    if layer not in names or not isinstance(getattr(root, layer), nn.Conv2d):
        raise SpecError(f"'{layer}' is not a conv layer of the model; its conv layers are: "
                        f"{', '.join(conv_layers(model)) or 'none'}")
    i = names.index(layer)
    return root[: i + 1], root[i + 1 :], int(getattr(root, layer).out_channels)


def ablate(model: nn.Module, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, layer: str,
           batch: int = BATCH, progress: Progress | None = None,
           cancel: threading.Event | None = None) -> Ablation:
    """The test accuracy of ``model`` on ``images`` (N, C, H, W, normalised as for training) and ``labels`` (N,)
    with each filter of conv ``layer`` zeroed in turn.

    ``progress(done, total)`` is called after each batch; a set ``cancel`` raises :class:`AblationCancelled`.
    """
    head, tail, filters = _split(model, layer)
    y = torch.as_tensor(np.asarray(labels)).long().reshape(-1)
    n = int(y.shape[0])
    if n == 0 or len(images) != n:
        raise SpecError(f"ablation needs as many labels as images (got {len(images)} images, {n} labels)")
    correct = np.zeros(filters, np.int64)
    base = 0
    total = (n + batch - 1) // batch
    with eval_mode(model), torch.no_grad():
        for b, start in enumerate(range(0, n, batch)):
            if cancel is not None and cancel.is_set():
                raise AblationCancelled()
            xb = as_batch(images[start : start + batch], model)
            yb = y[start : start + batch].to(xb.device)
            try:
                mid = head(xb)
                base += int((tail(mid).reshape(len(yb), -1).argmax(1) == yb).sum())
                for f in range(filters):
                    zeroed = mid.clone()
                    zeroed[:, f] = 0
                    correct[f] += int((tail(zeroed).reshape(len(yb), -1).argmax(1) == yb).sum())
            except RuntimeError as err:
                raise run_failed(xb, layer, err) from err
            if progress is not None:
                progress(b + 1, total)
    return Ablation(layer, base / n, correct / n, n)
