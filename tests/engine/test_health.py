"""Health warnings from layer statistics: known answers on hand-built records, and on records taken from a
real network whose ReLUs are forced dead."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.timeline.health import HealthMonitor, HealthWarning, find_warnings, followed_layer
from cnnviz.timeline.stats import LayerStats


def records(module: str, figure: str, values, first=10, every=10, **more):
    """One stats record per value: `module`'s `figure` takes the values in turn (and `more` figures stay)."""
    return [{"t": "stats", "step": first + i * every, "layers": {module: {figure: v, **more}}}
            for i, v in enumerate(values)]


def spans(warnings):
    return [(w.kind, w.layer, w.start_step, w.last_step) for w in warnings]


def test_more_than_half_dead_names_the_layer_it_follows_and_where_it_started():
    found = find_warnings(records("conv1_relu", "dead_fraction", [0.1, 0.2, 0.6, 0.7, 0.8, 0.3, 0.2, 0.1, 0.1]))
    assert spans(found) == [("dead", "conv1", 30, 50)]
    assert isinstance(found[0], HealthWarning)
    assert "conv1_relu" in found[0].text and "80%" in found[0].text and "steps 30-50" in found[0].text
    assert find_warnings(records("conv1_relu", "dead_fraction", [0.5, 0.5, 0.1])) == []  # half is not more


def test_a_flickering_figure_is_one_warning_until_it_stays_away():
    found = find_warnings(records("dense1_relu", "dead_fraction", [0.6, 0.4, 0.6, 0.4, 0.4, 0.4, 0.6], first=1,
                                  every=1))
    assert spans(found) == [("dead", "dense1", 1, 3), ("dead", "dense1", 7, 7)]
    assert "at step 7" not in found[1].text and "step 7" in found[1].text


def test_saturated_sigmoid_or_tanh():
    found = find_warnings(records("dense2_sigmoid", "saturated_fraction", [0.2, 0.51, 0.9, 0.1, 0.1, 0.1]))
    assert spans(found) == [("saturated", "dense2", 20, 30)]
    assert "dense2_sigmoid" in found[0].text and "90%" in found[0].text


def test_exploding_gradients_above_1e3_or_100_times_the_median_before():
    found = find_warnings(records("conv1", "grad_norm", [1.0, 1.0, 1.0, 2000.0, 1.0]))
    assert spans(found) == [("exploding", "conv1", 40, 40)]
    assert "2e+03" in found[0].text and "at" not in found[0].text.split(",")[-1].split()[0]
    # the median of the healthy records before (0.9, 1, 1.1, 1.2 -> 1.1): 150 is more than 100 times it
    found = find_warnings(records("conv1", "grad_norm", [1.0, 1.2, 0.9, 1.1, 150.0, 200.0, 1.0]))
    assert spans(found) == [("exploding", "conv1", 50, 60)]
    assert "up to 200" in found[0].text and "typically 1.1 before" in found[0].text
    # a jump after fewer than 3 records is the start of training, not an explosion; 99 times is not 100
    assert find_warnings(records("conv1", "grad_norm", [1e-3, 0.5, 0.5])) == []
    assert find_warnings(records("conv1", "grad_norm", [1.0, 1.0, 1.0, 99.0])) == []


def test_a_gradient_that_is_not_finite_explodes():
    found = find_warnings(records("dense1", "grad_norm", [1.0, None, None, 2.0]))
    assert spans(found) == [("exploding", "dense1", 20, 30)]
    assert "not finite" in found[0].text


def test_vanishing_gradients_only_once_they_were_larger():
    found = find_warnings(records("conv2", "grad_norm", [0.0, 0.0, 1e-2, 1e-2, 1e-9, 1e-9], update_ratio=1e-3))
    assert spans(found) == [("vanishing", "conv2", 50, 60)]
    assert "vanishing gradients" in found[0].text and "1e-09" in found[0].text


def test_weights_that_barely_move_are_vanishing_too():
    found = find_warnings(records("dense1", "update_ratio", [1e-3, 5e-8, 0.0, 1e-3, 1e-3, 1e-3], grad_norm=0.1))
    assert spans(found) == [("vanishing", "dense1", 20, 30)]
    assert "update/weight ratio down to 0" in found[0].text
    found = find_warnings(records("dense1", "update_ratio", [0.0, 0.0]))  # a layer with no gradient recorded
    assert spans(found) == [("vanishing", "dense1", 10, 20)]


def test_warnings_come_by_start_step_most_urgent_kind_first():
    rows = [{"step": 5, "layers": {"conv1_relu": {"dead_fraction": 0.9}, "conv1": {"grad_norm": 5e3}}},
            {"step": 9, "layers": {"conv2_relu": {"dead_fraction": 0.1}, "conv1": {"grad_norm": 1.0}}},
            {"step": 12, "layers": {"conv2_relu": {"dead_fraction": 0.7}}}]
    assert [(w.kind, w.layer, w.start_step) for w in find_warnings(rows)] == \
        [("exploding", "conv1", 5), ("dead", "conv1", 5), ("dead", "conv2", 12)]


def test_the_layer_an_activation_follows():
    assert followed_layer("conv1_relu") == "conv1"
    assert followed_layer("dense3_leaky_relu") == "dense3"
    assert followed_layer("act1") == "act1"
    assert followed_layer("conv2", {"conv1", "conv2"}, ["conv1", "conv2"]) == "conv2"  # a weighted layer is itself
    assert followed_layer("act1", {"conv1"}, ["conv1", "conv1_relu", "pool1", "act1", "conv2"]) == "conv1"
    rows = [{"step": 1, "layers": {"conv1": {"weight_norm": 1.0}, "act1": {"dead_fraction": 1.0}}}]
    assert [w.layer for w in find_warnings(rows, order=["conv1", "pool1", "act1"])] == ["conv1"]
    assert "act1" in find_warnings(rows, order=["conv1", "pool1", "act1"])[0].text


def test_damaged_records_are_skipped():
    rows = [{"step": "x", "layers": {"conv1_relu": {"dead_fraction": 1.0}}},
            {"step": 3, "layers": ["conv1_relu"]}, {"step": True, "layers": {}}, "a line", None,
            {"step": 4, "layers": {"conv1_relu": "dead", 7: {}, "conv1": {"grad_norm": "big", "update_ratio": [1]}}},
            {"step": 5, "layers": {"conv1_relu": {"dead_fraction": "much"}}},
            {"step": 6, "layers": {"conv1_relu": {"dead_fraction": 0.75}}},
            {"step": 2, "layers": {"conv1_relu": {"dead_fraction": 0.75}}}]  # before the last: out of order
    monitor = HealthMonitor()
    monitor.update(rows)
    assert spans(monitor.warnings()) == [("dead", "conv1", 6, 6)] and monitor.records == 3


figure = st.one_of(st.none(), st.sampled_from([0.0, 1e-9, 1e-3, 0.3, 0.6, 1.0, 50.0, 5e3]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(figure, figure, figure), max_size=25), st.integers(1, 5))
def test_fed_in_pieces_or_at_once_the_warnings_are_the_same(rows, piece):
    built = [{"step": i, "layers": {"conv1": {"grad_norm": g, "update_ratio": u}, "conv1_relu": {"dead_fraction": d}}}
             for i, (g, u, d) in enumerate(rows)]
    monitor = HealthMonitor()
    for start in range(0, len(built), piece):
        monitor.update(built[start:start + piece])
    assert monitor.warnings() == find_warnings(built)


def test_a_real_network_with_dead_relus():
    """Statistics taken by LayerStats while training a net whose first layer's bias is -100: every ReLU unit is
    dead from the first record, so no gradient reaches the first layer and its weights never move; nor do the
    second layer's weights (their inputs are all 0; only its bias learns)."""
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("dense1", nn.Linear(4, 6))
    net.add_module("dense1_relu", nn.ReLU())
    net.add_module("dense2", nn.Linear(6, 3))
    with torch.no_grad():
        net.dense1.bias[:] = -100.0
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    stats, taken = LayerStats(net), []
    x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
    for step in range(1, 9):
        if step % 2 == 1:
            stats.arm()
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
        if step % 2 == 0:
            taken.append({"t": "stats", "step": step, "layers": stats.collect()})
    found = find_warnings(taken, order=[name for name, _ in net.named_children()])
    assert spans(found) == [("vanishing", "dense1", 2, 8), ("vanishing", "dense2", 2, 8), ("dead", "dense1", 2, 8)]
    assert "dense1_relu: up to 100% of units dead" in found[2].text
    assert "update/weight ratio down to 0" in found[0].text
