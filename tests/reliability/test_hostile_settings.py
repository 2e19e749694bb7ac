"""Damaged remembered settings (a real QSettings file in tmp_path): the app still opens, says so once in
its banner, uses the defaults, and the next launch is clean."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QByteArray, QSettings

from cnnviz.config import Recipe
from cnnviz.gui import settings

DEEP = "[" * 200_000 + "]" * 200_000


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    """QSettings("cnnviz", "cnnviz") in tmp_path, read and written (the suite otherwise turns them off)."""
    monkeypatch.delenv("CNNVIZ_NO_SETTINGS", raising=False)
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    settings.take_problems()  # nothing left over from another test
    yield lambda: QSettings("cnnviz", "cnnviz")
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "after"))


CASES = {
    "strings for numbers": ({"experiment/recipe": '{"train": {"epochs": "5"}}'},
                            "experiment/recipe (train: epochs must be an integer, got '5')"),
    "seed -1": ({"experiment/recipe": '{"train": {"seed": -1}}'}, "experiment/recipe (seed must be at least 0"),
    "nested 200,000 deep": ({"experiment/recipe": DEEP}, "recipe is nested more than 32 levels deep"),
    "learning rate 1e400": ({"experiment/recipe": '{"optimizer": {"lr": 1e400}}'}, "lr must be a finite number"),
    "a list for the recipe": ({"experiment/recipe": ["a", "b"]}, "recipe must be JSON text, got ['a', 'b']"),
    "a list for the preset": ({"experiment/preset": ["gorner", "x"]}, "experiment/preset (expected a preset name"),
    "text for the geometry": ({"window/geometry": "hello"}, "window/geometry (expected binary window data, got 'hello')"),
    "a number for the state": ({"window/state": 12}, "window/state (expected binary window data"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_settings_are_reported_once_and_replaced(case, settings_file, make_window, qtbot):
    values, needle = CASES[case]
    s = settings_file()
    s.setValue("experiment/preset", "cntk-conv")
    s.setValue("experiment/recipe", '{"train": {"epochs": 7}}')
    for key, value in values.items():
        s.setValue(key, value)
    s.sync()
    del s

    window = make_window()
    assert window.banner.level == "warning", window.banner.text()
    text = window.banner.text()
    assert text.startswith("Some remembered settings were damaged and have been reset to their defaults: ")
    assert needle in text and "\n" not in text, text
    damaged = next(iter(values))
    assert settings_file().value(damaged) is None  # removed at once: the next launch is clean even after a crash
    if damaged == "experiment/recipe":  # the remembered preset is kept, with its own recipe
        assert window.preset_name == "cntk-conv" and window.session.recipe.train.epochs != 7
    elif damaged.startswith("window/"):  # the recipe was fine and is used
        assert window.session.recipe.train.epochs == 7
    window.close()

    again = make_window()
    assert again.banner.level != "warning"
    assert settings.take_problems() is None


def test_good_settings_give_no_notice(settings_file, make_window):
    s = settings_file()
    s.setValue("experiment/preset", "cntk-conv")
    s.setValue("experiment/recipe", '{"train": {"epochs": 7}}')
    s.sync()
    window = make_window()
    assert window.banner.level != "warning" and window.session.recipe.train.epochs == 7


def test_binary_window_data_of_garbage_is_harmless(settings_file, make_window):
    s = settings_file()
    s.setValue("window/geometry", QByteArray(b"\x00\x01garbage" * 10))
    s.setValue("window/state", QByteArray(b"\xff" * 100))
    s.sync()
    window = make_window()  # restoreGeometry / restoreState refuse it themselves (no warning: it would fail)
    assert window.isVisible() and window.banner.level != "warning"


def test_load_experiment_without_a_window(settings_file):
    s = settings_file()
    s.setValue("experiment/recipe", '{"train": {"batch_size": 0}}')
    s.sync()
    assert settings.load_experiment() == (None, None)
    assert "batch size must be at least 1, got 0" in settings.take_problems()
    s.setValue("experiment/recipe", '{"train": {"batch_size": 32}}')
    assert settings.load_experiment()[1] == Recipe().replace(train__batch_size=32)


@pytest.mark.parametrize("stored", ['{"kind": "gif", "view": "filters", "size": [10, 10], "fps": 10, "frames": 5}',
                                    '{"kind": "gif", "view": "filters", "size": [640, 480], "fps": "10", "frames": 5}',
                                    '{"kind": "avi", "view": "filters", "size": [640, 480], "fps": 10, "frames": 5}',
                                    '[1, 2]', "{", ["a"]])
def test_damaged_animation_choices_are_dropped(settings_file, stored):
    s = settings_file()
    s.setValue("export/animation", stored)
    s.sync()
    assert settings.load_animation() == {}
    assert "export/animation" in settings.take_problems() and settings_file().value("export/animation") is None


def test_animation_choices_are_remembered(settings_file):
    choices = {"kind": "gif", "view": "curves", "size": (800, 600), "fps": 12, "frames": 40, "scale": "frame"}
    settings.save_animation(choices)
    assert settings.load_animation() == choices and settings.take_problems() is None
