"""Histograms over time on one value axis (the distributions view's data), and which records are histograms."""
import numpy as np
import pytest

from cnnviz.inspect.distributions import spread, valid_histogram


def test_recorded_bins_are_spread_over_the_common_bins_they_overlap():
    matrix, low, high = spread([{"counts": [2, 2], "low": 0.0, "high": 1.0},
                                {"counts": [1, 0, 3], "low": 0.5, "high": 2.0},
                                {"counts": [0, 0], "low": 1.0, "high": 2.0},
                                {"counts": [5], "low": 1.5, "high": 1.5}], bins=4)
    assert (low, high) == (0.0, 2.0)
    np.testing.assert_allclose(matrix, [[0.5, 0.5, 0, 0], [0, 0.25, 0, 0.75], [0, 0, 0, 0], [0, 0, 0, 1]],
                               atol=1e-7)
    # a quarter of the values evenly in [-1, 0], three quarters in [0, 1], on 8 bins: no bin left empty
    np.testing.assert_allclose(spread([{"counts": [1, 3], "low": -1.0, "high": 1.0}], bins=8)[0],
                               [[0.0625] * 4 + [0.1875] * 4], atol=1e-7)
    assert spread([], bins=8)[0].shape == (0, 8)


def test_grids_that_nearly_line_up_leave_no_stripes():
    """32 recorded bins on 64 common ones over almost the same range: every common bin gets about half a
    recorded bin's share (putting each recorded bin whole at its centre left every other row empty)."""
    matrix, _, _ = spread([{"counts": [10] * 32, "low": -1.0, "high": 1.0},
                           {"counts": [10] * 32, "low": -1.01, "high": 0.99}], bins=64)
    assert matrix[:, 1:-1].min() > 0.012 and matrix.sum(axis=1) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("bad", [
    {"counts": "many", "low": 0, "high": 1}, {"counts": [1, 2], "low": float("nan"), "high": 1},
    {"counts": [1, -2], "low": 0, "high": 1}, {"counts": [], "low": 0, "high": 1},
    {"counts": [1, True], "low": 0, "high": 1}, {"counts": [1], "low": 2, "high": 1},
    {"counts": [1], "low": 0, "high": 1e300}, {"counts": [1e300], "low": 0, "high": 1},
    {"counts": [1] * 70000, "low": 0, "high": 1}, {"counts": [1], "low": "0", "high": 1}, None, [1]])
def test_damaged_histograms_are_refused(bad):
    assert not valid_histogram(bad)


def test_recorded_histograms_are_accepted():
    assert valid_histogram({"counts": [0, 3, 1], "low": -0.5, "high": 0.25})
    assert valid_histogram({"counts": [4], "low": 1.0, "high": 1.0})
