"""A new user's first minutes: the window fits a laptop screen and reads well there, and a run or a data
folder given on the command line opens in it."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from cnnviz.cli import _open_shorthand
from tests.datasets import write_dataset


@pytest.fixture
def make(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "appdata"))
    from cnnviz.app import create_window

    windows = []

    def make_window(**kwargs):
        w = create_window([], **kwargs)
        qtbot.addWidget(w)
        w.confirm = lambda *args: True
        windows.append(w)
        return w

    yield make_window
    for w in windows:
        w.close()


def _settle(qtbot):
    for _ in range(3):
        QApplication.processEvents()
        qtbot.wait(20)


def test_the_window_fits_a_1280_by_800_screen_with_the_draw_panel_whole(make, qtbot):
    w = make()
    hint = w.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 800
    w.resize(1280, 800)
    _settle(qtbot)
    assert w.width() == 1280 and w.height() == 800
    assert w.docks["draw"].width() >= w.draw.minimumSizeHint().width()  # canvas and bars side by side, no bar


def test_evaluation_tab_titles_are_never_cut(make, qtbot):
    w = make()
    tabs = w.evaluation.tabs
    assert [tabs.tabText(i) for i in range(tabs.count())] == ["Predictions", "Mistakes", "Cell"]
    for width in (1280, 1440, 1920):
        w.resize(width, 800)
        w.docks["evaluation"].raise_()
        _settle(qtbot)
        bar = tabs.tabBar()
        assert bar.elideMode() == Qt.TextElideMode.ElideNone
        for i in range(tabs.count()):
            assert bar.tabRect(i).width() >= bar.fontMetrics().horizontalAdvance(tabs.tabText(i)), (width, i)


def test_the_prediction_headline_is_shown_whole(make, qtbot):
    w = make()
    w.resize(1280, 800)
    _settle(qtbot)
    panel = w.draw
    panel.headline.setText("Prediction: Ankle boot  (100.0%)")  # the longest a Fashion-MNIST run shows
    _settle(qtbot)
    label = panel.headline
    assert label.wordWrap() and label.heightForWidth(label.width()) <= label.height()


def _tiny_run(tmp_path, capsys):
    from cnnviz.cli import main

    out = tmp_path / "run"
    assert main(["train", "--preset", "cntk-conv", "--subset", "200", "--epochs", "1", "--out", str(out),
                 "--json"]) == 0
    capsys.readouterr()
    return out


def test_cnnviz_run_opens_the_run_in_the_window(make, qtbot, tmp_path, capsys):
    out = _tiny_run(tmp_path, capsys)
    assert _open_shorthand([str(out)]) == ["open", str(out)]
    assert _open_shorthand(["--data-dir", "x", str(out)]) == ["--data-dir", "x", "open", str(out)]
    assert _open_shorthand(["presets"]) == ["presets"]
    w = make(run=str(out))
    from cnnviz.training.checkpoint import load_checkpoint

    saved = load_checkpoint(out)
    assert w.session.weights_step == saved.step and w.trainer_state() == "stopped"
    assert w.session.history.step_loss == saved.history.step_loss


def test_cnnviz_data_dir_opens_the_window_on_that_data(make, tmp_path):
    folder = tmp_path / "digits"
    write_dataset(folder, n_train=120, n_test=60, seed=1, gz=False)
    w = make(data_dir=str(folder))
    assert len(w.session.data.test) == 60 and w.session.recipe.data.data_dir == str(folder)


def test_a_bad_run_or_folder_is_one_line_before_any_window(tmp_path, capsys):
    from cnnviz.cli import main

    assert main(["open", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["--data-dir", str(tmp_path / "nothing")]) == 2
    assert "folder not found" in capsys.readouterr().err
    assert QApplication.topLevelWidgets() == [] or all(not x.isVisible() for x in QApplication.topLevelWidgets())
