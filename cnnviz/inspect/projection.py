"""The projector's 2-D picture of the embedding: PCA by SVD, aligned from step to step by orthogonal Procrustes.

Each step's embeddings (:mod:`cnnviz.inspect.embedding`) of a fixed subset of the test set are projected on
their first two principal axes. Principal axes are defined only up to sign and order (two axes of nearly equal
variance swap), so successive projections are rotated or flipped onto the previous one: the cloud moves as the
weights change instead of jumping. Plain numpy; no scikit-learn needed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.inspect.embedding import embed, embedding_layer

# Test images the live PCA projects: enough for a cloud per class, few enough to recompute several times a second.
PROJECTION_POINTS = 2000


def subset_indices(n: int, size: int = PROJECTION_POINTS, seed: int = 0) -> np.ndarray:
    """``size`` indices of ``range(n)`` (all of them when ``n <= size``), sorted, the same for the same seed."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False)).astype(np.int64)


def embed_and_predict(model: nn.Module, images: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings (N, D) of normalised ``images`` and the model's predicted class (N,) of each.

    The prediction is the argmax of the classifier's output on the embedding: the model's own logits.
    """
    emb = embed(model, images)
    _, classifier = embedding_layer(model)
    with torch.no_grad():
        logits = classifier(torch.from_numpy(emb).to(classifier.weight.device))
    return emb, logits.argmax(dim=1).cpu().numpy().astype(np.int64)


@dataclass(frozen=True, eq=False)
class PcaBasis:
    """A 2-D projection ``(x - mean) @ axes``: the mean (D,) and two orthonormal axes as columns (D, 2)."""

    mean: np.ndarray
    axes: np.ndarray

    def project(self, x: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) embeddings as (N, 2) float32 coordinates."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.mean.shape[0])
        return ((x - self.mean) @ self.axes).astype(np.float32)


def pca_fit(x: np.ndarray) -> PcaBasis:
    """The first two principal axes of ``x`` (N, D), by SVD of the centred data.

    Each axis's sign is fixed (its largest component positive) so the same data always gives the same picture.
    Fewer than two samples or dimensions leave the missing axes zero.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise SpecError(f"PCA needs a non-empty (points, features) array; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise SpecError("the embeddings are not finite numbers (the weights have diverged): nothing to project")
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = np.zeros((x.shape[1], 2))
    k = min(2, vt.shape[0])
    axes[:, :k] = vt[:k].T
    for j in range(k):
        if axes[np.argmax(np.abs(axes[:, j])), j] < 0:
            axes[:, j] = -axes[:, j]
    return PcaBasis(mean, axes)


def procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal (rotation or reflection) 2 x 2 matrix ``R`` minimising ``|source @ R - target|``.

    Both (N, 2), the same points in the same order, centred (PCA coordinates are).
    """
    m = np.asarray(source, dtype=np.float64).T @ np.asarray(target, dtype=np.float64)
    u, _, vt = np.linalg.svd(m)
    return u @ vt


@dataclass(frozen=True, eq=False)
class Projection:
    """One picture of the projector: a 2-D point per test image shown.

    ``indices`` are test-set indices; ``labels`` the true and ``predicted`` the model's classes; ``basis`` places
    a new embedding (the drawing) in the same picture (PCA only); ``step`` the training step of the weights.
    """

    coords: np.ndarray  # float32 (N, 2)
    labels: np.ndarray  # int64 (N,)
    predicted: np.ndarray  # int64 (N,)
    indices: np.ndarray  # int64 (N,)
    step: int = 0
    method: str = "PCA"
    basis: PcaBasis | None = None

    @property
    def mistakes(self) -> np.ndarray:
        """True where the model's prediction is wrong."""
        return self.labels != self.predicted

    def place(self, embedding: np.ndarray) -> np.ndarray | None:
        """The (2,) position of one more embedding (D,), or None when this picture has no basis (t-SNE)."""
        return None if self.basis is None else self.basis.project(embedding)[0]


def aligned(projection: Projection, previous: Projection | None) -> Projection:
    """``projection`` (PCA) turned onto ``previous`` when both picture the same points; else unchanged.

    The turn is a rotation or a flip only (no scaling), so distances in the picture stay PCA's; the basis
    turns with the points, so the drawing is placed the same way.
    """
    if (previous is None or previous.basis is None or projection.basis is None
            or previous.coords.shape != projection.coords.shape
            or not np.array_equal(previous.indices, projection.indices)):
        return projection
    rotation = procrustes(projection.coords, previous.coords)
    basis = PcaBasis(projection.basis.mean, projection.basis.axes @ rotation)
    coords = (projection.coords.astype(np.float64) @ rotation).astype(np.float32)
    return dataclasses.replace(projection, coords=coords, basis=basis)


def pca_projection(embeddings: np.ndarray, labels: np.ndarray, predicted: np.ndarray, indices: np.ndarray,
                   step: int = 0, previous: Projection | None = None) -> Projection:
    """The PCA picture of ``embeddings``, turned onto ``previous`` when it shows the same points (PCA).

    The alignment is a rotation or a flip only (no scaling), so distances in the picture stay PCA's.
    """
    basis = pca_fit(embeddings)
    projection = Projection(basis.project(embeddings), np.asarray(labels, np.int64),
                            np.asarray(predicted, np.int64), np.asarray(indices, np.int64), int(step), "PCA", basis)
    return aligned(projection, previous)


def project_model(model: nn.Module, images: torch.Tensor, labels: np.ndarray, indices: np.ndarray,
                  step: int = 0, previous: Projection | None = None) -> Projection:
    """Embed normalised ``images`` (N, 1, H, W) with ``model`` and project them by PCA (aligned to ``previous``)."""
    emb, predicted = embed_and_predict(model, images)
    return pca_projection(emb, labels, predicted, indices, step, previous)


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """A bool (N,) mask of the ``points`` (N, 2) inside ``polygon`` (M, 2) (even-odd rule; closed implicitly)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(pts), dtype=bool)
    if len(poly) < 3:
        return inside
    x, y = pts[:, 0], pts[:, 1]
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < at)
    return inside
