"""Top-activating patches, occlusion, counterfactuals and ablation on hand-built models with known answers."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.data.prepare import Normalization
from cnnviz.errors import CnnvizError
from cnnviz.inspect.ablation import AblationCancelled, ablate
from cnnviz.inspect.counterfactual import counterfactual, counterfactuals, quantize
from cnnviz.inspect.occlusion import occlusion
from cnnviz.inspect.receptive_field import receptive_field
from cnnviz.inspect.top_patches import TopPatchTracker, top_patches
from cnnviz.models import build_model
from cnnviz.presets import PRESETS


def _strokes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28 x 28 images, even ones a vertical stroke, odd ones a horizontal one, at random places."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, 28, 28), np.float32)
    vertical = np.arange(n) % 2 == 0
    for i in range(n):
        a, b = rng.integers(4, 20, size=2)
        if vertical[i]:
            images[i, 0, b : b + 8, a : a + 2] = 1.0
        else:
            images[i, 0, a : a + 2, b : b + 8] = 1.0
    return images, vertical


def _edge_model() -> nn.Module:
    """conv1: filter 0 detects a vertical dark-to-light edge, filter 1 a horizontal one."""
    conv = nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, 0] = torch.tensor([[-1.0, 0, 1], [-1, 0, 1], [-1, 0, 1]])
        conv.weight[1, 0] = conv.weight[0, 0].T
    return nn.Sequential(OrderedDict(conv1=conv, relu=nn.ReLU(), flat=nn.Flatten(), dense=nn.Linear(2 * 784, 10)))


def test_a_vertical_edge_filter_gets_vertical_strokes_and_a_horizontal_one_horizontal_strokes():
    images, vertical = _strokes(200)
    result = top_patches(_edge_model(), images, "conv1", k=8, chunk=64)
    assert result.indices.shape == (2, 8)
    assert vertical[result.indices[0]].all() and not vertical[result.indices[1]].any()
    assert (np.diff(result.activations, axis=1) <= 0).all()  # highest first
    assert len(set(result.indices[0].tolist())) == 8  # one patch per image
    # the patch box holds the stroke's left edge: the unit sees a 3 x 3 box around its position
    f, j = 0, 0
    top, left, bottom, right = result.box(f, j, (28, 28))
    assert (bottom - top, right - left) == (3, 3)
    crop = images[result.indices[f, j], 0, top:bottom, left:right]
    assert crop[:, 0].sum() == 0 and crop[:, 2].sum() == 3  # dark on the left, ink on the right


def test_the_tracker_merges_chunks_into_the_one_pass_answer_and_replaces_a_chunk_when_it_comes_round():
    images, _ = _strokes(130, seed=1)
    model = _edge_model()
    whole = top_patches(model, images, "conv1", k=5, chunk=1000)
    tracker = TopPatchTracker(model, len(images), ["conv1"], k=5, chunk=40)
    assert tracker.chunks == 4
    ran = [tracker.update(model, images) for _ in range(4)]
    assert ran == [0, 1, 2, 3] and tracker.covered == 4
    merged = tracker.result("conv1")
    np.testing.assert_array_equal(merged.indices, whole.indices)
    np.testing.assert_allclose(merged.activations, whole.activations)
    with torch.no_grad():  # the weights move on: flip the filters; one round later the answer follows them
        model.conv1.weight.mul_(-1)
    for _ in range(4):
        tracker.update(model, images)
    np.testing.assert_array_equal(tracker.result("conv1").indices, top_patches(model, images, "conv1", k=5).indices)


def test_receptive_fields_of_a_preset_match_the_gradient_support_of_its_units():
    torch.manual_seed(0)
    model = build_model(PRESETS["cntk-pool"].spec).eval()
    x = torch.rand(1, 1, 28, 28, requires_grad=True)
    for name in model.conv_layer_names():
        out = {}
        handle = getattr(model.layers, name).register_forward_hook(lambda m, a, o: out.setdefault("o", o))
        model(x)
        handle.remove()
        o = out["o"]
        r, c = o.shape[-2] // 2, o.shape[-1] // 2
        (g,) = torch.autograd.grad(o[0, 0, r, c], x)
        nz = (g[0, 0] != 0).nonzero()
        expected = (int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1)
        assert receptive_field(model, name).box(r, c, (28, 28)) == expected


def test_top_patches_of_a_dense_layer_is_a_user_error():
    with pytest.raises(CnnvizError, match="not a conv layer"):
        TopPatchTracker(_edge_model(), 10, ["dense"])


def _quadrant_model() -> nn.Module:
    """Class 0's score is the ink in the top-left 10 x 10 corner; class 1's a constant."""
    dense = nn.Linear(784, 2)
    with torch.no_grad():
        w = torch.zeros(2, 28, 28)
        w[0, :10, :10] = 0.2
        dense.weight.copy_(w.reshape(2, 784))
        dense.bias.copy_(torch.tensor([0.0, 5.0]))
    return nn.Sequential(OrderedDict(flat=nn.Flatten(), dense=dense))


def test_occlusion_heat_is_where_the_model_reads():
    x = np.ones((28, 28), np.float32)
    x[0, 27] = 0.0  # the background value the squares are filled with
    heat = occlusion(_quadrant_model(), x, target=0, window=4, stride=2)
    assert heat.shape == (28, 28) and heat.max() == pytest.approx(1.0)
    assert heat[:10, :10].mean() > 0.5
    assert heat[14:, :].max() == 0 and heat[:, 14:].max() == 0  # squares that miss the corner change nothing


def test_occlusion_rejects_a_zero_window_and_a_missing_class():
    with pytest.raises(CnnvizError, match="at least 1"):
        occlusion(_quadrant_model(), np.zeros((28, 28)), window=0)
    with pytest.raises(CnnvizError, match="class 5 does not exist"):
        occlusion(_quadrant_model(), np.zeros((28, 28)), target=5)


def _linear_model() -> nn.Module:
    torch.manual_seed(3)
    dense = nn.Linear(784, 3)
    with torch.no_grad():
        dense.weight.mul_(3.0)
    return nn.Sequential(OrderedDict(flat=nn.Flatten(), dense=dense)).eval()


def test_a_counterfactual_of_a_linear_model_is_the_analytic_smallest_change():
    model = _linear_model()
    x = quantize(np.full((28, 28), 0.5, np.float32))
    logits = model(torch.from_numpy(x)[None, None])[0].detach().numpy()
    w = model.dense.weight.detach().numpy()
    start = int(logits.argmax())
    for result in counterfactuals(model, Normalization(), x, [t for t in range(3) if t != start], margin=1.0):
        t = result.target
        others = [j for j in range(3) if j != t]
        # the cheapest way past every other class by the margin is at least the distance past the runner-up
        needed = max((logits[j] - logits[t] + 1.0) / np.linalg.norm(w[t] - w[j]) for j in others)
        assert result.success and result.prediction == t
        assert needed * 0.99 <= result.l2 <= needed * 1.25 + 0.05
        assert result.image.min() >= 0 and result.image.max() <= 1
        np.testing.assert_array_equal(np.round(result.image * 255), result.image * 255)  # on the 8-bit grid
        np.testing.assert_allclose(result.difference, result.image - x, atol=1e-6)


def test_a_masked_counterfactual_changes_only_the_allowed_pixels_and_an_impossible_one_says_so():
    model = _linear_model()
    x = quantize(np.full((28, 28), 0.5, np.float32))
    mask = np.zeros((28, 28), np.float32)
    mask[:, :14] = 1
    start = int(model(torch.from_numpy(x)[None, None]).argmax())
    target = (start + 1) % 3
    result = counterfactual(model, Normalization(), x, target, mask=mask)
    assert np.abs(result.difference[:, 14:]).max() == 0
    nothing = counterfactual(model, Normalization(), x, target, mask=np.zeros((28, 28)), max_steps=5)
    assert not nothing.success and nothing.l2 == 0 and nothing.prediction == start
    with pytest.raises(CnnvizError, match="class 7 does not exist"):
        counterfactual(model, Normalization(), x, 7)


def _ablation_model() -> nn.Module:
    """conv1 filter 0 copies the image, filter 1 is noise the classifier ignores; class 1 = a bright image."""
    conv = nn.Conv2d(1, 2, 1)
    dense = nn.Linear(2 * 784, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.7]).reshape(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 0.3]))
        dense.weight.zero_()
        dense.weight[1, :784] = 1.0
        dense.bias.copy_(torch.tensor([0.0, -784 * 0.45]))
    return nn.Sequential(OrderedDict(conv1=conv, flat=nn.Flatten(), dense=dense))


def test_ablating_an_ignored_filter_changes_nothing_and_a_needed_one_drops_accuracy():
    images = np.concatenate([np.full((30, 1, 28, 28), 0.8), np.full((30, 1, 28, 28), 0.1)]).astype(np.float32)
    labels = np.array([1] * 30 + [0] * 30)
    calls = []
    result = ablate(_ablation_model(), images, labels, "conv1", batch=25, progress=lambda d, t: calls.append((d, t)))
    assert result.baseline_accuracy == 1.0
    assert result.accuracy_without_filter.tolist() == [0.5, 1.0]
    assert result.drop.tolist() == [0.5, 0.0]
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_ablation_can_be_cancelled_and_refuses_a_dense_layer():
    import threading

    cancel = threading.Event()
    cancel.set()
    images = np.zeros((4, 1, 28, 28), np.float32)
    with pytest.raises(AblationCancelled):
        ablate(_ablation_model(), images, np.zeros(4), "conv1", cancel=cancel)
    with pytest.raises(CnnvizError, match="not a conv layer"):
        ablate(_ablation_model(), images, np.zeros(4), "dense")
