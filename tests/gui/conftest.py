"""Fixtures for widget tests: the embedded sample, a Session on it, and trained weights to show."""
import pytest

from cnnviz.config import DataConfig
from cnnviz.data.prepare import load_data


@pytest.fixture(scope="session")
def sample_data():
    """The embedded MNIST sample (4,000 train / 1,000 test), prepared with the default options."""
    return load_data(DataConfig(validation="none"))


@pytest.fixture
def session(qtbot, sample_data):
    """A Session on the `gorner` preset with the sample loaded (untrained weights)."""
    from cnnviz.gui.session import Session
    from cnnviz.presets import get_preset

    preset = get_preset("gorner")
    s = Session(preset.spec, preset.recipe)
    s.set_data(sample_data)
    return s


@pytest.fixture(scope="session")
def trained_snapshot(sample_data):
    """A WeightsSnapshot of `gorner` trained for 60 steps on the sample (learned a little; ~2 s)."""
    from cnnviz.presets import get_preset
    from cnnviz.training.trainer import Trainer

    preset = get_preset("gorner")
    recipe = preset.recipe.replace(train__max_steps=60, train__evaluate_test=False, data__validation="none")
    trainer = Trainer(preset.spec, recipe, sample_data)
    trainer.fit()
    return trainer.snapshot()


@pytest.fixture(autouse=True)
def _no_background_job_outlives_its_test():
    """A view's background recomputation (cnnviz.gui.background_job) still running when its test ends is stopped and
    waited for, so it cannot show up as a stray thread in the next test."""
    yield
    from cnnviz.gui import background_job

    for job in list(background_job._BUSY):
        job.shutdown()


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """A real main window (as `cnnviz` opens it) with its own app-data folder, answering yes to every question;
    closed after the test, which must leave no run going (nor a compared one)."""
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "appdata"))
    from cnnviz.app import create_window

    w = create_window([])
    qtbot.addWidget(w)
    w.confirm = lambda *args: True
    yield w
    w.close()
    assert not w.controller.active and not w.compare.controller.active
