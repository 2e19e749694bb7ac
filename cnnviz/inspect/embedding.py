"""Where an image sits for the network: its embedding (the input of the classifier) and its nearest neighbours.

The embedding is what the model's last linear layer reads: for the presets, the flattened or dense features
just before the class scores. The projector draws it in 2-D, and "nearest training digits" are the training
images closest to a drawing in it (Euclidean distance, the space the classifier separates linearly).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.inspect._model import as_batch, eval_mode, named_layers, run_failed
from cnnviz.inspect.activations import probabilities

# Images per forward pass: keeps the conv activations of a 60,000-image set out of memory at once.
EMBED_BATCH = 512


def embedding_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """The ``(name, module)`` of the model's classifier: its last ``nn.Linear`` layer.

    Raises SpecError for a model without one (the embedding is defined as that layer's input).
    """
    last = None
    for name, module in named_layers(model):
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise SpecError("the model has no dense (linear) layer, so it has no embedding before a classifier")
    return last


def embed(model: nn.Module, images: torch.Tensor | np.ndarray, batch: int = EMBED_BATCH) -> np.ndarray:
    """The embeddings (N, D) float32 of ``images`` (N, C, H, W), normalised as for training, in eval mode.

    A single image (H, W) or (C, H, W) gives (1, D).
    """
    xb = as_batch(images, model)
    _, classifier = embedding_layer(model)
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple) -> None:
        captured.append(args[0].detach().reshape(args[0].shape[0], -1).float().cpu())

    handle = classifier.register_forward_pre_hook(hook)
    try:
        with eval_mode(model), torch.no_grad():
            for start in range(0, xb.shape[0], batch):
                chunk = xb[start : start + batch]
                try:
                    model(chunk)
                except RuntimeError as err:
                    raise run_failed(chunk, None, err) from err
    finally:
        handle.remove()
    return torch.cat(captured).numpy().astype(np.float32, copy=False)


def predict_and_embed(model: nn.Module, image: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """One image's class probabilities (C,) and its embedding (D,) from a single forward pass in eval mode.

    What :func:`~cnnviz.inspect.activations.predict_proba` and :func:`embed` answer for one image, for half the
    cost: the drawing needs both after every pen move. The embedding is None for a model without a dense layer.
    """
    xb = as_batch(image, model)[:1]
    try:
        _, classifier = embedding_layer(model)
    except SpecError:
        classifier = None
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple) -> None:
        captured.append(args[0].detach().reshape(args[0].shape[0], -1).float().cpu())

    handle = classifier.register_forward_pre_hook(hook) if classifier is not None else None
    try:
        with eval_mode(model), torch.no_grad():
            try:
                output = model(xb)
            except RuntimeError as err:
                raise run_failed(xb, None, err) from err
    finally:
        if handle is not None:
            handle.remove()
    probs = probabilities(output, named_layers(model)[-1][1]).cpu().numpy().astype(np.float32, copy=False)[0]
    embedding = captured[-1].numpy().astype(np.float32, copy=False)[0] if captured else None
    return probs, embedding


@dataclass(frozen=True, eq=False)
class Neighbours:
    """The ``k`` nearest rows of a bank to one query: their ``indices`` into the bank, and ``distances``."""

    indices: np.ndarray  # int64 (k,), nearest first
    distances: np.ndarray  # float32 (k,), Euclidean


def nearest(bank: np.ndarray, query: np.ndarray, k: int = 8) -> Neighbours:
    """The ``k`` rows of ``bank`` (N, D) nearest to ``query`` (D,) in Euclidean distance, nearest first.

    Ties are broken by the lower index, so the answer is deterministic. ``k`` is capped at N.
    """
    bank = np.asarray(bank, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if bank.ndim != 2 or bank.shape[1] != q.shape[0]:
        raise SpecError(f"a query of {q.shape[0]} features cannot be compared with a bank of shape {bank.shape}")
    k = max(0, min(int(k), bank.shape[0]))
    if k == 0:
        return Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32))
    # |b - q|^2 = |b|^2 - 2 b.q + |q|^2, in float64 so near-duplicates keep their order
    d2 = np.einsum("ij,ij->i", bank, bank, dtype=np.float64) - 2.0 * (bank @ q).astype(np.float64) + float(q @ q)
    np.maximum(d2, 0.0, out=d2)
    part = np.argpartition(d2, k - 1)[:k] if k < len(d2) else np.arange(len(d2))
    order = part[np.lexsort((part, d2[part]))]
    return Neighbours(order.astype(np.int64), np.sqrt(d2[order]).astype(np.float32))
