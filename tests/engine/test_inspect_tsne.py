"""The openTSNE wrapper: clusters stay apart, progress is reported, cancel stops it, a point is placed."""
import threading

import numpy as np
import pytest

from cnnviz.inspect.tsne import TOTAL_ITERATIONS, TsneCancelled, near_position, place, tsne


def _blobs(n=60):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0] * 8, [20.0] * 8, [-20.0] + [0.0] * 7])
    x = np.concatenate([c + rng.normal(size=(n, 8)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), n)


def test_tsne_keeps_clusters_apart_and_reports_progress():
    x, labels = _blobs()
    seen = []
    emb = tsne(x, seed=1, progress=lambda d, t: seen.append((d, t)), n_jobs=1)
    assert emb.shape == (len(x), 2)
    assert seen[0] == (0, TOTAL_ITERATIONS) and seen[-1] == (TOTAL_ITERATIONS, TOTAL_ITERATIONS)
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))
    centres = np.array([np.asarray(emb)[labels == c].mean(axis=0) for c in range(3)])
    spread = max(np.asarray(emb)[labels == c].std(axis=0).max() for c in range(3))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 3 * spread
    # a new point from cluster 1 lands among cluster 1
    new = place(emb, x[labels == 1].mean(axis=0))
    assert np.argmin(np.linalg.norm(centres - new[0], axis=1)) == 1
    quick = near_position(np.asarray(emb), x, x[labels == 2][0])
    assert np.argmin(np.linalg.norm(centres - quick, axis=1)) == 2


def test_cancel_stops_tsne():
    x, _ = _blobs(30)
    cancel = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        if done >= 20:
            cancel.set()

    with pytest.raises(TsneCancelled):
        tsne(x, progress=progress, cancel=cancel, n_jobs=1)
    assert max(calls) < TOTAL_ITERATIONS
