"""PCA, Procrustes alignment and the lasso test of the projector, with known answers."""
import numpy as np
import pytest
import torch

from cnnviz.errors import SpecError
from cnnviz.inspect.projection import (
    inside_polygon,
    pca_fit,
    pca_projection,
    procrustes,
    project_model,
    subset_indices,
)
from cnnviz.models import build_model
from cnnviz.presets import get_preset


def test_pca_of_points_on_a_line_gives_that_line():
    rng = np.random.default_rng(0)
    direction = np.array([3.0, -1.0, 2.0, 0.5, 0.0])
    direction /= np.linalg.norm(direction)
    t = rng.normal(size=200)
    x = 7.0 + t[:, None] * direction[None, :]
    basis = pca_fit(x)
    assert abs(abs(basis.axes[:, 0] @ direction) - 1) < 1e-9  # the first axis is the line
    coords = basis.project(x)
    assert np.allclose(np.abs(coords[:, 0]), np.abs(t - t.mean()), atol=1e-4)
    assert np.allclose(coords[:, 1], 0, atol=1e-4)  # nothing off the line


def test_procrustes_undoes_a_rotation_and_a_flip():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(100, 2))
    a -= a.mean(axis=0)
    angle = 1.1
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    for turn in (rot, rot @ np.diag([1.0, -1.0]), np.diag([-1.0, 1.0])):
        b = a @ turn
        assert np.allclose(b @ procrustes(b, a), a, atol=1e-9)


def test_a_new_step_is_aligned_to_the_previous_picture():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(300, 8)) * np.array([5, 3, 1, 1, 1, 1, 1, 1])
    labels = predicted = np.zeros(300, np.int64)
    idx = np.arange(300)
    first = pca_projection(emb, labels, predicted, idx, step=1)
    # the same embedding with its two main directions swapped and one flipped: PCA alone would redraw it turned
    turned = emb.copy()
    turned[:, [0, 1]] = emb[:, [1, 0]] * np.array([-1.0, 1.0])
    turned[:, 1] *= 1.0  # variances now 3 and 5: the axes come back in the other order
    plain = pca_projection(turned, labels, predicted, idx, step=2)
    aligned = pca_projection(turned, labels, predicted, idx, step=2, previous=first)
    err_plain = np.linalg.norm(plain.coords - first.coords)
    err_aligned = np.linalg.norm(aligned.coords - first.coords)
    assert err_aligned < 0.5 * err_plain
    # the drawing is placed with the same turn as the points
    assert np.allclose(aligned.place(turned[5]), aligned.coords[5], atol=1e-4)


def test_subset_is_fixed_per_seed_and_all_when_small():
    assert list(subset_indices(5, 10)) == [0, 1, 2, 3, 4]
    a, b = subset_indices(10000, 2000, seed=3), subset_indices(10000, 2000, seed=3)
    assert len(a) == 2000 and np.array_equal(a, b) and np.all(np.diff(a) > 0)


def test_project_model_predicts_as_the_model_does():
    torch.manual_seed(0)
    model = build_model(get_preset("gorner").spec).eval()
    x = torch.rand(20, 1, 28, 28)
    proj = project_model(model, x, np.arange(20) % 10, np.arange(20), step=4)
    with torch.no_grad():
        assert np.array_equal(proj.predicted, model(x).argmax(1).numpy())
    assert proj.coords.shape == (20, 2) and proj.step == 4 and proj.mistakes.dtype == bool


def test_inside_polygon_and_bad_input():
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]])
    pts = np.array([[1, 1], [3, 1], [1.9, 0.1], [-0.1, 1]])
    assert list(inside_polygon(pts, square)) == [True, False, True, False]
    assert not inside_polygon(pts, square[:2]).any()
    with pytest.raises(SpecError):
        pca_fit(np.zeros((0, 3)))


def test_pca_of_diverged_embeddings_is_one_clear_error():
    x = np.random.default_rng(0).normal(size=(20, 4))
    x[3, 1] = np.nan
    with pytest.raises(SpecError, match="not finite"):
        pca_fit(x)
