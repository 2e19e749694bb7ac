"""The experiment panel's spin boxes hold exactly the documented ranges of cnnviz.config.RANGES."""
import pytest

from cnnviz.config import RANGES
from cnnviz.gui.widgets.experiment_panel import ExperimentPanel

# spin box -> (recipe setting, how the box shows it)
SPINS = {
    "subset_spin": ("data.train_subset", 1), "fraction_spin": ("data.validation_fraction", 100),
    "ovr_spin": ("data.one_vs_rest", 1), "lr_spin": ("optimizer.lr", 1), "momentum_spin": ("optimizer.momentum", 1),
    "step_spin": ("optimizer.step_epochs", 1), "gamma_spin": ("optimizer.gamma", 1),
    "decay_spin": ("optimizer.decay_steps", 1), "lr_min_spin": ("optimizer.lr_min", 1),
    "epochs_spin": ("train.epochs", 1), "batch_spin": ("train.batch_size", 1), "seed_spin": ("train.seed", 1),
}


@pytest.fixture
def panel(qtbot, session):
    w = ExperimentPanel(session)
    qtbot.addWidget(w)
    return w


@pytest.mark.parametrize("name", list(SPINS))
def test_each_spin_box_spans_its_setting_s_range(panel, name):
    key, scale = SPINS[name]
    spin, r = getattr(panel, name), RANGES[key]
    smallest = 1 if not hasattr(spin, "decimals") else 10.0 ** -spin.decimals()
    assert spin.minimum() == pytest.approx(r.low * scale + (smallest if r.low_open else 0))
    assert spin.maximum() == pytest.approx(r.high * scale - (smallest if r.high_open else 0))


def test_a_recipe_at_the_ends_of_every_range_round_trips_through_the_form(panel):
    from cnnviz.config import Recipe

    low = Recipe().replace(train__epochs=1, train__batch_size=1, train__seed=0, optimizer__lr=1e-6,
                           data__train_subset=1, data__validation_fraction=0.01)
    high = Recipe().replace(train__epochs=10_000, train__batch_size=65_536, train__seed=2**31 - 1, optimizer__lr=100.0,
                            data__train_subset=10_000_000, data__validation_fraction=0.5)
    for recipe in (low.validate(), high.validate()):
        panel.set_recipe(recipe)
        assert panel.recipe() == recipe
