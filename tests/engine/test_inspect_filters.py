"""conv_weights / filter_mosaic / filter_change."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.inspect import conv_weights, filter_change, filter_mosaic


class Net(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        return self.layers(x)


def two_conv_net():
    torch.manual_seed(0)
    return Net(
        [
            ("conv1", nn.Conv2d(1, 8, 5)),
            ("conv1_relu", nn.ReLU()),
            ("block", nn.Sequential(OrderedDict([("conv", nn.Conv2d(8, 6, 3))]))),
            ("flatten", nn.Flatten()),
            ("dense1", nn.Linear(6 * 22 * 22, 10)),
        ]
    )


def weights(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_conv_weights_lists_every_conv_in_order_as_copies():
    model = two_conv_net()
    found = conv_weights(model)
    assert [(name, w.shape) for name, w in found] == [("conv1", (8, 1, 5, 5)), ("block.conv", (6, 8, 3, 3))]
    assert all(w.dtype == np.float32 for _, w in found)
    before = found[0][1].copy()
    with torch.no_grad():
        model.layers.conv1.weight.add_(1.0)
    np.testing.assert_array_equal(found[0][1], before)
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 3))
    assert [name for name, _ in conv_weights(plain)] == ["0", "2"]


def test_first_layer_filters_are_kernels_with_one_shared_scale():
    w = weights(8, 1, 5, 5)
    m = filter_mosaic(w)
    assert m.signed and m.count == 8 and (m.tile_h, m.tile_w) == (5, 5)
    assert m.scale == pytest.approx(np.abs(w).max())
    assert m.image.min() >= -1 and m.image.max() <= 1 and np.abs(m.image).max() == pytest.approx(1.0)
    for k in range(8):
        top, left, h, w_ = m.tile_rect(k)
        np.testing.assert_allclose(m.image[top : top + h, left : left + w_], w[k, 0] / m.scale, rtol=1e-5)


def test_deeper_filters_show_their_input_kernels_in_a_block_like_the_enlarged_view():
    w = weights(6, 4, 3, 3)
    m = filter_mosaic(w)
    # 4 kernels of 3x3 in a 2x2 block with 1 px between: 7x7 per filter; filters 2 px apart.
    assert m.count == 6 and (m.tile_h, m.tile_w) == (7, 7) and m.pad == 2
    assert m.scale == pytest.approx(np.abs(w).max())
    for k in range(6):
        one = filter_mosaic(w, out_channel=k)
        assert one.count == 4 and (one.tile_h, one.tile_w) == (3, 3) and one.scale == m.scale
        top, left, h, w_ = m.tile_rect(k)
        np.testing.assert_allclose(m.image[top : top + h, left : left + w_], one.image, atol=1e-6)
        t, l, _, _ = one.tile_rect(3)
        np.testing.assert_allclose(one.image[t : t + 3, l : l + 3], w[k, 3] / m.scale, rtol=1e-5)


def test_filter_mosaic_accepts_tensors_and_rejects_bad_input():
    m = filter_mosaic(torch.ones(2, 1, 3, 3))
    assert m.scale == 1.0 and np.all(m.image[:3, :3] == 1.0)
    with pytest.raises(SpecError, match="filter 5"):
        filter_mosaic(weights(4, 2, 3, 3), out_channel=5)
    with pytest.raises(SpecError, match="shape"):
        filter_mosaic(weights(4, 3, 3))
    assert np.all(filter_mosaic(np.zeros((3, 2, 3, 3))).image == 0)  # all-zero layer: no NaN


def test_filter_change_is_relative_l2_per_output_filter():
    prev = weights(5, 3, 3, 3)
    np.testing.assert_array_equal(filter_change(prev, prev.copy()), np.zeros(5))
    cur = prev.copy()
    cur[2] *= 1.5  # filter 2 grows by half its norm; the others are untouched
    change = filter_change(torch.from_numpy(prev), torch.from_numpy(cur))
    assert change.shape == (5,)
    np.testing.assert_allclose(change, [0, 0, 0.5, 0, 0], atol=1e-6)
    assert np.isfinite(filter_change(np.zeros((2, 1, 3, 3)), np.ones((2, 1, 3, 3)))).all()
    with pytest.raises(SpecError, match=r"\(5, 3, 3, 3\).*\(4, 3, 3, 3\)"):
        filter_change(prev, prev[:4])
