"""The experiment panel: recipe round trips, signals, enabling rules and validation messages."""
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox, QLabel

from cnnviz.gui.widgets.experiment_panel import ExperimentPanel
from cnnviz.presets import PRESETS, get_preset


@pytest.fixture
def panel(qtbot, session):
    w = ExperimentPanel(session)
    qtbot.addWidget(w)
    w.resize(320, 900)
    w.show()
    return w


def _message(panel) -> str:
    label = panel.findChild(QLabel, "recipeMessage")
    return label.text() if label.isVisibleTo(panel) else ""


@pytest.mark.parametrize("name", list(PRESETS))
def test_recipe_round_trips_every_preset(panel, name):
    recipe = PRESETS[name].recipe
    panel.set_recipe(recipe)
    assert panel.recipe() == recipe


def test_set_recipe_does_not_emit(panel, qtbot):
    with qtbot.assertNotEmitted(panel.recipe_edited, wait=250):
        panel.set_recipe(get_preset("six-or-not").recipe)
        panel.set_preset("basic-cnn")
        panel.set_dataset("mnist", None)
    assert panel.findChild(QComboBox, "presetCombo").currentData() == "basic-cnn"
    assert panel.findChild(QComboBox, "datasetCombo").currentData() == "mnist"


def test_session_recipe_changes_refresh_the_form(panel, session, qtbot):
    recipe = get_preset("keras-deep").recipe
    with qtbot.assertNotEmitted(panel.recipe_edited, wait=250):
        session.set_recipe(recipe)
    assert panel.optimizer_combo.currentData() == "adadelta"
    assert panel.recipe() == recipe


def test_changing_optimizer_emits_edited_recipe(panel, qtbot):
    with qtbot.waitSignal(panel.recipe_edited, timeout=2000) as blocker:
        panel.optimizer_combo.setCurrentIndex(panel.optimizer_combo.findData("rmsprop"))
    recipe = blocker.args[0]
    assert recipe.optimizer.name == "rmsprop"
    assert recipe.optimizer.lr == get_preset("gorner").recipe.optimizer.lr  # the rest unchanged


def test_spin_box_bursts_emit_once_with_the_last_value(panel, qtbot):
    seen = []
    panel.recipe_edited.connect(seen.append)
    with qtbot.waitSignal(panel.recipe_edited, timeout=2000):
        for epochs in (11, 12, 13):
            panel.epochs_spin.setValue(epochs)
    assert [r.train.epochs for r in seen] == [13]


def test_momentum_and_nesterov_follow_the_optimizer(panel):
    for name, momentum, nesterov in [("adam", False, False), ("adadelta", False, False),
                                     ("sgd", True, True), ("rmsprop", True, False)]:
        panel.optimizer_combo.setCurrentIndex(panel.optimizer_combo.findData(name))
        assert panel.momentum_spin.isEnabled() is momentum, name
        assert panel.nesterov_check.isEnabled() is nesterov, name


def test_schedule_parameters_shown_only_when_relevant(panel):
    rows = {"step": panel.step_spin, "gamma": panel.gamma_spin, "min": panel.lr_min_spin,
            "decay": panel.decay_spin}
    expected = {"constant": set(), "step": {"step", "gamma"}, "exponential": {"gamma", "decay"},
                "gorner": {"min", "decay"}}
    for schedule, shown in expected.items():
        panel.schedule_combo.setCurrentIndex(panel.schedule_combo.findData(schedule))
        visible = {key for key, w in rows.items() if w.isVisibleTo(panel)}
        assert visible == shown, schedule
    assert "exp(-step / decay)" in panel.lr_min_spin.toolTip()
    assert "exp(−step/2000)" in panel.formula_label.text()


def test_running_locks_all_but_learning_rate_and_batch_size(panel, qtbot):
    panel.set_running(True)
    controls = [w for w in panel.findChildren(QAbstractSpinBox) + panel.findChildren(QComboBox)
                + panel.findChildren(QCheckBox)]
    enabled = {w for w in controls if w.isEnabled()}
    assert enabled == {panel.lr_spin, panel.batch_spin}
    with qtbot.waitSignal(panel.learning_rate_changed, timeout=2000) as lr:
        panel.lr_spin.setValue(0.05)
    assert lr.args == [pytest.approx(0.05)]
    with qtbot.waitSignal(panel.batch_size_changed, timeout=2000) as batch:
        panel.batch_spin.setValue(32)
    assert batch.args == [32]
    panel.set_running(False)
    assert panel.optimizer_combo.isEnabled() and panel.epochs_spin.isEnabled()
    assert not panel.momentum_spin.isEnabled()  # Adam again: the optimizer rule is back


@pytest.mark.parametrize("key", ["sample", "mnist", "fashion"])
def test_choosing_a_dataset_requests_it(panel, qtbot, key):
    if key == "sample":  # already selected: go elsewhere first, silently
        panel.set_dataset("mnist", None)
    combo = panel.findChild(QComboBox, "datasetCombo")
    with qtbot.waitSignal(panel.dataset_requested, timeout=1000) as blocker:
        combo.setCurrentIndex(combo.findData(key))
    assert blocker.args == [key, None]


def test_open_idx_folder_requests_the_folder(panel, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(panel, "choose_folder", lambda: str(tmp_path))
    combo = panel.findChild(QComboBox, "datasetCombo")
    with qtbot.waitSignal(panel.dataset_requested, timeout=1000) as blocker:
        combo.setCurrentIndex(combo.count() - 1)  # "Open data folder…"
    assert blocker.args[1] == str(tmp_path)
    assert combo.currentText().endswith(tmp_path.name)  # the folder is now an item, and selected
    assert panel.recipe().data.data_dir == str(tmp_path)


def test_cancelled_folder_dialog_keeps_the_dataset(panel, qtbot, monkeypatch):
    monkeypatch.setattr(panel, "choose_folder", lambda: None)
    combo = panel.findChild(QComboBox, "datasetCombo")
    with qtbot.assertNotEmitted(panel.dataset_requested):
        combo.setCurrentIndex(combo.count() - 1)
    assert combo.currentData() == "sample"


def test_preset_combo_requests_the_preset(panel, qtbot):
    combo = panel.findChild(QComboBox, "presetCombo")
    assert combo.count() == len(PRESETS)
    i = combo.findData("cntk-pool")
    assert "CNTK 103D" in combo.itemData(i, 3) and "98.95%" in combo.itemData(i, 3)  # 3: ToolTipRole
    with qtbot.waitSignal(panel.preset_requested, timeout=1000) as blocker:
        combo.setCurrentIndex(i)
    assert blocker.args == ["cntk-pool"]


def test_overrides_request_a_model_change(panel, qtbot, session):
    session.set_spec(get_preset("gorner-dropout").spec)  # has a dropout layer
    with qtbot.waitSignal(panel.model_override_requested, timeout=1000) as blocker:
        panel.activation_combo.setCurrentIndex(panel.activation_combo.findData("tanh"))
    assert blocker.args == ["tanh", None]
    with qtbot.waitSignal(panel.model_override_requested, timeout=1000) as blocker:
        panel.dropout_check.setChecked(True)
    assert blocker.args[0] == "tanh" and blocker.args[1] == pytest.approx(panel.dropout_spin.value())


def test_dropout_override_disabled_without_dropout_layers(panel, session):
    assert not any(layer.kind == "dropout" for layer in session.spec.layers)  # gorner
    assert not panel.dropout_check.isEnabled()


def test_learning_rate_100_is_accepted(panel, qtbot):
    panel.schedule_combo.setCurrentIndex(panel.schedule_combo.findData("constant"))
    panel.lr_spin.lineEdit().selectAll()
    qtbot.keyClicks(panel.lr_spin.lineEdit(), "100")
    with qtbot.waitSignal(panel.recipe_edited, timeout=2000) as blocker:
        qtbot.keyClick(panel.lr_spin.lineEdit(), Qt.Key.Key_Return)
    assert blocker.args[0].optimizer.lr == 100.0
    assert panel.recipe().optimizer.lr == 100.0
    assert _message(panel) == ""


def test_nesterov_without_momentum_shows_message_and_keeps_last_valid(panel, qtbot):
    panel.set_recipe(get_preset("six-or-not").recipe)
    valid = panel.recipe()
    with qtbot.assertNotEmitted(panel.recipe_edited, wait=300):
        panel.momentum_spin.setValue(0.0)
    assert "Nesterov" in _message(panel)
    assert panel.recipe() == valid
    with qtbot.waitSignal(panel.recipe_edited, timeout=2000) as blocker:
        panel.nesterov_check.setChecked(False)
    assert blocker.args[0].optimizer.momentum == 0.0 and not blocker.args[0].optimizer.nesterov
    assert _message(panel) == ""


def test_train_subset_larger_than_dataset_is_reported(panel):
    panel.set_recipe(get_preset("gorner").recipe.replace(data__validation="train", data__validation_fraction=0.1))
    assert panel.fraction_spin.isVisibleTo(panel)
    panel.subset_check.setChecked(True)
    panel.subset_spin.setValue(5000)
    assert "5,000" in _message(panel) and "3,600" in _message(panel)
    panel.validation_combo.setCurrentIndex(panel.validation_combo.findData("none"))
    assert "4,000 training examples" in _message(panel)
    panel.subset_spin.setValue(1000)
    assert _message(panel) == ""
    assert panel.recipe().data.train_subset == 1000


def test_every_control_has_a_tooltip(panel):
    controls = panel.findChildren(QAbstractSpinBox) + panel.findChildren(QComboBox) + panel.findChildren(QCheckBox)
    assert controls and all(w.toolTip() for w in controls)
