"""ModelEditor: the summary table, live shape checking, editing, applying, presets and files."""
import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from cnnviz.gui.widgets.model_editor import COLUMNS, ModelEditor
from cnnviz.models import ModelSpec, summarize
from cnnviz.presets import PRESETS


@pytest.fixture
def editor(qtbot, session):
    w = ModelEditor(session)
    qtbot.addWidget(w)
    w.resize(800, 550)
    w.show()
    return w


def _cell(editor, row, column):
    return editor.table.item(row, COLUMNS.index(column)).text()


def _int(text):
    return int(text.replace(",", "")) if text else 0


def test_table_matches_the_summary(editor, session):
    spec = session.spec
    summary = summarize(spec)
    assert summary.total == 122_270
    t = editor.table
    assert t.objectName() == "modelTable"
    assert t.rowCount() == len(spec.layers) + 1
    assert _cell(editor, 0, "Layer") == "input" and _cell(editor, 0, "Output shape") == "1x28x28"
    for i, row in enumerate(summary.rows, start=1):
        assert _cell(editor, i, "Layer") == row.name
        assert _cell(editor, i, "Output shape") == "x".join(map(str, row.output_shape))
        assert _int(_cell(editor, i, "Trainable")) == row.trainable
    assert sum(_int(_cell(editor, i, "Trainable")) for i in range(t.rowCount())) == 122_270
    assert _cell(editor, 1, "Settings") == "4 filters 5x5 s1 same relu"
    assert "122,270" in editor.findChild(QLabel, "modelTotals").text()
    assert editor.error_text() == "" and editor.apply_button.isEnabled()


def test_impossible_kernel_names_the_layer_and_the_numbers(editor):
    editor.set_layer_field(0, "padding", "valid")
    editor.set_layer_field(0, "kernel", 29)
    error = editor.error_text()
    assert "conv1" in error and "29" in error and "28x28" in error
    assert error.lower() in editor.findChild(QLabel, "modelMessage").text().lower()
    assert not editor.apply_button.isEnabled()
    assert editor.error_row() == 0 and editor.row_is_error(0) and not editor.row_is_error(1)
    assert editor.draft_spec().layers[0].kernel == 29  # the table still shows the draft
    assert "29x29" in _cell(editor, 1, "Settings")
    assert _cell(editor, 2, "Output shape") == "?"
    editor.set_layer_field(0, "kernel", 5)
    assert editor.error_text() == "" and editor.apply_button.isEnabled()
    assert not editor.row_is_error(0)
    assert _cell(editor, 1, "Output shape") == "4x24x24"  # 'valid': (28 - 5) / 1 + 1


def test_same_padding_keeps_a_large_kernel_possible(editor):
    editor.set_layer_field(0, "kernel", 29)  # TF/Keras 'same' pads to fit, so this is a valid model
    assert editor.error_text() == ""
    assert _cell(editor, 1, "Output shape") == "4x28x28"


def test_error_in_a_later_layer_keeps_the_earlier_shapes(editor):
    editor.set_layer_field(2, "kernel", 15)
    editor.set_layer_field(2, "padding", 0)
    assert "conv3" in editor.error_text() and "15" in editor.error_text() and "14x14" in editor.error_text()
    assert editor.error_row() == 2
    assert _cell(editor, 2, "Output shape") == "8x14x14"  # conv2, before the bad layer
    assert _cell(editor, 3, "Output shape") == "?"


def test_editing_through_the_form(editor):
    editor.table.selectRow(1)  # conv1
    editor.form.kernel_spin.setValue(7)
    assert editor.draft_spec().layers[0].kernel == 7
    editor.form.activation_combo.setCurrentText("none")
    editor.form.activation_combo.activated.emit(editor.form.activation_combo.currentIndex())
    assert editor.draft_spec().layers[0].activation is None
    editor.form.padding_combo.setCurrentText("2")
    editor.form.padding_combo.activated.emit(0)
    assert editor.draft_spec().layers[0].padding == 2


def test_add_remove_move(editor, session):
    kinds = [layer.kind for layer in session.spec.layers]
    at = editor.add_layer("maxpool", 0)
    assert at == 1
    assert [layer.kind for layer in editor.draft_spec().layers] == [kinds[0], "maxpool", *kinds[1:]]
    assert editor.error_text() == ""
    assert _cell(editor, 2, "Output shape") == "4x14x14"
    assert editor.move_layer(1, 1) == 2
    assert [layer.kind for layer in editor.draft_spec().layers][:3] == ["conv", "conv", "maxpool"]
    assert editor.move_layer(0, -1) == 0  # already first
    editor.remove_layer(2)
    assert [layer.kind for layer in editor.draft_spec().layers] == kinds
    editor.add_layer("dropout", -1)
    assert editor.draft_spec().layers[0].kind == "dropout"
    editor.undo()
    assert [layer.kind for layer in editor.draft_spec().layers] == kinds


def test_removing_the_output_layer_is_an_error_on_the_last_layer(editor):
    editor.remove_layer(4)
    assert "last layer" in editor.error_text()
    assert editor.error_row() == 3 and not editor.apply_button.isEnabled()


def test_keyboard_moves_and_deletes_in_the_table(qtbot, editor):
    editor.table.setFocus()
    editor.table.selectRow(2)  # conv2
    qtbot.keyClick(editor.table, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert [layer.stride for layer in editor.draft_spec().layers][:2] == [2, 1]  # conv2 went first
    qtbot.keyClick(editor.table, Qt.Key.Key_Delete)
    assert len(editor.draft_spec().layers) == 4


def test_apply_emits_the_draft(qtbot, editor):
    editor.add_layer("batchnorm", 0)
    with qtbot.waitSignal(editor.spec_applied) as signal:
        qtbot.mouseClick(editor.apply_button, Qt.MouseButton.LeftButton)
    assert signal.args[0] == editor.draft_spec()
    editor.set_layer_field(0, "stride", 40)
    editor.set_layer_field(0, "padding", "valid")
    editor.set_layer_field(0, "kernel", 40)
    assert editor.error_text()
    with qtbot.assertNotEmitted(editor.spec_applied):
        assert editor.apply() is False


def test_session_spec_change_replaces_the_draft(editor, session):
    editor.add_layer("dropout", 3)
    assert editor.is_dirty()
    new = PRESETS["cntk-conv"].spec
    session.set_spec(new)
    assert editor.draft_spec().named() == new.named()
    assert not editor.is_dirty()
    assert "Undo" in editor.findChild(QLabel, "modelMessage").text()
    editor.undo()  # the lost edits come back
    assert any(layer.kind == "dropout" for layer in editor.draft_spec().layers)


def test_save_and_load_round_trip(tmp_path, editor):
    editor.add_layer("dropout", 3)
    editor.set_layer_field(4, "rate", 0.4)
    path = tmp_path / "model.json"
    assert editor.save_model(str(path))
    saved = editor.draft_spec()
    assert ModelSpec.from_dict(json.loads(path.read_text())) == saved
    editor.load_preset("cntk-conv")
    assert editor.draft_spec() != saved
    assert editor.load_model(str(path))
    assert editor.draft_spec() == saved


def test_loading_a_bad_file_says_why(tmp_path, editor, session):
    before = editor.draft_spec()
    errors = []
    session.message.connect(lambda level, text: errors.append((level, text)))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json at all")
    assert not editor.load_model(str(garbage))
    message = editor.findChild(QLabel, "modelMessage").text()
    assert "garbage.json" in message and "not valid JSON" in message
    assert errors and errors[-1][0] == "error"
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"layers": [{"kind": "conv", "size": 8, "kernel": 3, "wings": 2}]}))
    assert not editor.load_model(str(wrong))
    assert "wings" in editor.findChild(QLabel, "modelMessage").text()
    assert not editor.load_model(str(tmp_path / "missing.json"))
    assert editor.draft_spec() == before


def test_start_from_preset(editor):
    combo = editor.preset_combo
    index = combo.findData("cntk-pool")
    combo.activated.emit(index)
    assert editor.draft_spec() == PRESETS["cntk-pool"].spec
    assert combo.currentIndex() == 0
    assert editor.error_text() == ""
    total = summarize(PRESETS["cntk-pool"].spec).total
    assert f"{total:,}" in editor.findChild(QLabel, "modelTotals").text()


def test_binary_preset_is_sized_to_the_data(editor):
    editor.load_preset("six-or-not")
    spec = editor.draft_spec()
    assert spec.num_classes == 10 and spec.layers[-1].size == 10
    assert editor.error_text() == ""


def test_layer_form_follows_the_selection(editor):
    editor.table.selectRow(4)  # dense1
    assert editor.form.title().startswith("dense1")
    assert editor.form.size_spin.value() == 200 and editor.form.size_spin.isVisibleTo(editor.form)
    assert not editor.form.kernel_spin.isVisibleTo(editor.form)
    editor.table.selectRow(1)
    assert editor.form.kernel_spin.isVisibleTo(editor.form)
    assert "(28 + 2*2 - 5) / 1 + 1 = 28" in editor.form.findChild(QLabel, "layerShape").text()


def test_bad_name_is_reported(editor):
    editor.set_layer_field(1, "name", "2nd conv")
    assert "2nd conv" in editor.error_text() and not editor.apply_button.isEnabled()
    assert editor.error_row() == 1
    editor.set_layer_field(1, "name", "")
    assert editor.error_text() == ""
    assert editor.draft_spec().layers[1].name == ""
