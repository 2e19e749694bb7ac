"""t-SNE of the embedding for the projector, with progress and cancel: a thin wrapper around openTSNE.

openTSNE was chosen over scikit-learn and umap-learn because it reports progress through callbacks (and a
callback that answers True stops it, which gives Cancel), it is FFT-accelerated (10,000 points of 64
features in about 35 s on two cores) and ``TSNEEmbedding.transform`` places a new point (the drawing) into a
finished embedding without moving the others.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from cnnviz.errors import CnnvizError, SpecError
from cnnviz.inspect.embedding import nearest

EARLY_ITERATIONS = 250  # openTSNE's defaults: early exaggeration, then the normal phase
ITERATIONS = 500
TOTAL_ITERATIONS = EARLY_ITERATIONS + ITERATIONS
_EVERY = 10  # iterations between progress reports (and cancel checks)
PCA_DIMS = 50  # wider embeddings are first reduced to their 50 principal components (10,000 x 200: 72 s -> less)


class TsneCancelled(CnnvizError):
    """The user cancelled a t-SNE run."""


def tsne(x: np.ndarray, seed: int = 0, progress: Callable[[int, int], None] | None = None,
         cancel: threading.Event | None = None, perplexity: float = 30.0, n_jobs: int | None = None):
    """The t-SNE embedding (an openTSNE ``TSNEEmbedding``, an (N, 2) array) of ``x`` (N, D).

    ``progress(done, total)`` is called every few iterations (``total`` = :data:`TOTAL_ITERATIONS`; 0 done
    while the neighbour affinities are computed); setting ``cancel`` stops at the next report with
    :class:`TsneCancelled`. The same ``x`` and ``seed`` give the same picture. The result is centred, so
    :func:`place` does not shift it. ``n_jobs`` None: one thread below 2,000 points (openTSNE's thread pool
    costs more than it gains there: 150 points took 20 s on two busy cores against 1 s on one), else two.
    """
    from openTSNE import TSNE  # imported when used: it takes a second to load

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 4:
        raise SpecError(f"t-SNE needs at least 4 points of (points, features); got shape {x.shape}")
    cancel = cancel or threading.Event()
    report = progress or (lambda done, total: None)
    done = [0]

    def callback(iteration: int, error: float, embedding) -> bool:
        done[0] += _EVERY
        report(min(done[0], TOTAL_ITERATIONS), TOTAL_ITERATIONS)
        return cancel.is_set()

    report(0, TOTAL_ITERATIONS)
    if x.shape[1] > PCA_DIMS:  # the usual first step: the neighbour search on 50 features, not hundreds
        centred = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(centred[:: max(1, x.shape[0] // 2000)], full_matrices=False)
        x = np.ascontiguousarray(centred @ vt[:PCA_DIMS].T, dtype=np.float32)
    if n_jobs is None:
        n_jobs = 1 if x.shape[0] < 2000 else min(2, os.cpu_count() or 1)
    runner = TSNE(n_components=2, perplexity=min(perplexity, (x.shape[0] - 1) / 3.0),
                  early_exaggeration_iter=EARLY_ITERATIONS, n_iter=ITERATIONS, initialization="pca",
                  random_state=seed, n_jobs=n_jobs, callbacks=callback, callbacks_every_iters=_EVERY,
                  verbose=False)
    if cancel.is_set():
        raise TsneCancelled("t-SNE cancelled")
    embedding = runner.fit(x)
    if cancel.is_set():
        raise TsneCancelled("t-SNE cancelled")
    embedding -= (np.max(embedding, axis=0) + np.min(embedding, axis=0)) / 2  # what transform() would do
    report(TOTAL_ITERATIONS, TOTAL_ITERATIONS)
    return embedding


def place(embedding, x: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Where one more point ``x`` (D,) or several (M, D) falls in a finished t-SNE ``embedding``: (M, 2).

    The others do not move. A few iterations suffice for one point placed among its neighbours.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    return np.asarray(embedding.transform(x, n_iter=iterations), dtype=np.float32)


def near_position(coords: np.ndarray, bank: np.ndarray, query: np.ndarray, k: int = 10) -> np.ndarray:
    """A quick (2,) position for ``query`` (D,): the median picture position of its ``k`` nearest rows of ``bank``.

    ``coords`` (N, 2) are the pictured positions of ``bank`` (N, D). It is where :func:`place` starts from
    (openTSNE's "median" initialisation), cheap enough to follow the pen.
    """
    found = nearest(bank, query, k=k)
    return np.median(np.asarray(coords, dtype=np.float32)[found.indices], axis=0).astype(np.float32)
