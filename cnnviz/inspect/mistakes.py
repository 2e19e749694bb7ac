"""Where a classifier goes wrong: confusion matrix, per-class accuracy and galleries of mistakes."""
from __future__ import annotations

import numpy as np
import torch

from cnnviz.errors import DataError


def _ints(name: str, a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
        raise DataError(f"{name} must be a 1-D array of class indices; got {a.dtype} of shape {a.shape}")
    return a.astype(np.int64, copy=False)


def _pair(predicted: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = _ints("predicted", predicted), _ints("labels", labels)
    if p.shape != y.shape:
        raise DataError(f"{p.size} predictions but {y.size} labels; they must match one to one")
    return p, y


def confusion_matrix(
    predicted: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, num_classes: int
) -> np.ndarray:
    """Counts of (true class, predicted class).

    Returns
    -------
    numpy.ndarray
        int64 (C, C); row = true class, column = predicted class.

    Raises
    ------
    DataError
        Lengths differ, or a class index is outside 0..num_classes-1.
    """
    p, y = _pair(predicted, labels)
    for name, a in (("label", y), ("prediction", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            bad = int(a.min() if a.min() < 0 else a.max())
            raise DataError(f"{name} {bad} is outside the {num_classes} classes (0 to {num_classes - 1})")
    return np.bincount(y * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Share of each true class predicted correctly (float64 (C,)); 0 for a class with no examples."""
    c = np.asarray(confusion, dtype=np.float64)
    totals = c.sum(axis=1)
    return np.divide(np.diag(c), totals, out=np.zeros_like(totals), where=totals > 0)


def most_confident_mistakes(
    probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, k: int = 16
) -> np.ndarray:
    """Indices of the (at most ``k``) wrong predictions the model was surest of.

    Parameters
    ----------
    probs : array (N, C)
        Class probabilities.
    labels : array (N,)
        True classes.

    Returns
    -------
    numpy.ndarray
        int64 indices of wrong predictions, by the predicted class's probability, highest first.
    """
    pr = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    y = _ints("labels", labels)
    if pr.ndim != 2 or pr.shape[0] != y.size:
        raise DataError(f"probabilities of shape {pr.shape} do not match {y.size} labels")
    predicted = pr.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    confidence = pr[wrong, predicted[wrong]]
    order = np.argsort(-confidence, kind="stable")  # stable: ties keep dataset order
    return wrong[order][: max(0, k)].astype(np.int64)


def cell_examples(
    predicted: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    true_class: int,
    predicted_class: int,
    probs: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the examples in one confusion-matrix cell (true ``true_class``, predicted ``predicted_class``).

    With ``probs`` (N, C) they are sorted by the predicted class's probability, highest first;
    otherwise they are in dataset order.
    """
    p, y = _pair(predicted, labels)
    idx = np.flatnonzero((y == true_class) & (p == predicted_class))
    if probs is not None:
        confidence = np.asarray(probs)[idx, predicted_class]
        idx = idx[np.argsort(-confidence, kind="stable")]
    return idx.astype(np.int64)


def most_confused_pairs(confusion: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` largest off-diagonal cells as ``(true, predicted, count)``, count > 0, largest first."""
    c = np.asarray(confusion).copy()
    np.fill_diagonal(c, 0)
    flat = c.ravel()
    order = np.argsort(-flat, kind="stable")  # stable: ties in (true, predicted) order
    pairs = []
    for i in order[: max(0, k)]:
        if flat[i] <= 0:
            break
        t, p = divmod(int(i), c.shape[1])
        pairs.append((t, p, int(flat[i])))
    return pairs
