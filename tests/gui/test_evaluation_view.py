"""EvaluationView: accuracy, confusion matrix, cell galleries and thumbnails on a real evaluation."""
import csv

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel

from cnnviz.gui.widgets.evaluation_view import EvaluationView
from cnnviz.gui.widgets.image_gallery import CORRECT_ROLE, INDEX_ROLE
from cnnviz.inspect.mistakes import most_confident_mistakes, most_confused_pairs
from cnnviz.training.trainer import evaluate


@pytest.fixture
def evaluation(session, sample_data, trained_snapshot):
    session.apply_snapshot(trained_snapshot)
    return evaluate(session.model, sample_data.test, "test", trained_snapshot.step)


@pytest.fixture
def view(qtbot, session):
    w = EvaluationView(session)
    qtbot.addWidget(w)
    w.resize(900, 600)
    w.show()
    qtbot.waitExposed(w)
    return w


def _empty_shown(w: EvaluationView) -> bool:
    return w.findChild(QLabel, "evaluationEmpty").isVisible()


def test_empty_state_before_any_evaluation(view):
    assert _empty_shown(view)
    assert view.accuracy_text() == ""
    assert view.confusion() is None
    assert view.gallery_indices() == []
    view.click_cell(4, 9)  # nothing to open yet; must not fail
    assert view.gallery_indices() == []


def test_shows_accuracy_and_the_confusion_matrix(view, session, evaluation):
    session.set_evaluation(evaluation)
    assert not _empty_shown(view)
    assert view.accuracy_text() == f"{100 * evaluation.accuracy:.2f}%"
    np.testing.assert_array_equal(view.confusion(), evaluation.confusion)
    details = view.findChild(QLabel, "testDetails").text()
    assert f"step {evaluation.step}" in details and f"{evaluation.loss:.4f}" in details


def test_real_click_on_a_cell_opens_exactly_its_images(qtbot, view, session, evaluation):
    session.set_evaluation(evaluation)
    t, p, count = most_confused_pairs(evaluation.confusion, 1)[0]
    cm = view.confusion_view
    assert cm.objectName() == "confusionMatrixView"
    with qtbot.waitSignal(cm.cell_clicked) as signal:
        qtbot.mouseClick(cm.viewport(), Qt.MouseButton.LeftButton, pos=cm.cell_center(t, p))
    assert signal.args == [t, p]
    expected = np.flatnonzero((evaluation.labels == t) & (evaluation.predicted == p))
    assert sorted(view.gallery_indices()) == expected.tolist()
    assert len(expected) == count
    assert view.tabs.currentIndex() == 2
    assert view.findChild(QLabel, "cellTitle").text() == f"true {t} predicted as {p} ({count} images)"
    # surest first
    conf = evaluation.probabilities[view.gallery_indices(), p]
    assert np.all(np.diff(conf) <= 0)


def test_click_cell_on_the_diagonal_and_hover_text(view, session, evaluation):
    session.set_evaluation(evaluation)
    view.click_cell(1, 1)
    expected = np.flatnonzero((evaluation.labels == 1) & (evaluation.predicted == 1))
    assert sorted(view.gallery_indices()) == expected.tolist()[:200]
    n = int(evaluation.confusion[4, 9])
    noun = "image" if n == 1 else "images"
    assert view.confusion_view.tooltip_text((4, 9)).startswith(f"true 4, predicted 9: {n} {noun}")
    cm = view.confusion_view
    assert cm.cell_at(cm.cell_center(3, 7)) == (3, 7)
    assert cm.cell_at(QPoint(1, 1)) is None  # the label margin is not a cell


def test_clicking_a_thumbnail_makes_it_the_feature_map_input(qtbot, view, session, evaluation):
    session.set_evaluation(evaluation)
    t, p, _ = most_confused_pairs(evaluation.confusion, 1)[0]
    view.click_cell(t, p)
    qtbot.waitUntil(lambda: view.cell_gallery.list_widget().item(1) is not None)
    lw = view.cell_gallery.list_widget()
    item = lw.item(1)
    index = int(item.data(INDEX_ROLE))
    assert index == view.gallery_indices()[1]
    messages = []
    session.message.connect(lambda level, text: messages.append((level, text)))
    lw.scrollToItem(item)
    with qtbot.waitSignal(session.input_changed):
        qtbot.mouseClick(lw.viewport(), Qt.MouseButton.LeftButton, pos=lw.visualItemRect(item).center())
    assert session.selected_input.source == "test"
    assert session.selected_input.index == index
    assert messages and messages[-1][0] == "info" and f"#{index}" in messages[-1][1]


def test_prediction_labels_are_green_when_right_and_red_when_wrong(view, session, evaluation):
    session.set_evaluation(evaluation)
    gallery = view.predictions_gallery
    lw = gallery.list_widget()
    assert lw.count() == 200 and gallery.total() == 1000
    assert gallery.note_text().endswith("showing 200 of 1,000")
    seen = set()
    for row in range(lw.count()):
        item = lw.item(row)
        i = int(item.data(INDEX_ROLE))
        assert i == row
        true, pred = int(evaluation.labels[i]), int(evaluation.predicted[i])
        assert item.text() == f"{pred} ({true})"
        assert item.data(CORRECT_ROLE) == (true == pred)
        assert item.foreground().color() == gallery.label_color(true == pred)
        seen.add(true == pred)
    assert seen == {True, False}  # the 60-step model gets some right and some wrong
    assert gallery.label_color(True) != gallery.label_color(False)


def test_a_new_evaluation_relabels_the_same_images_in_place(qtbot, view, session, evaluation):
    import dataclasses

    session.set_evaluation(evaluation)
    lw = view.predictions_gallery.list_widget()
    first_item = lw.item(0)
    lw.scrollToBottom()
    qtbot.wait(10)
    scrolled = lw.verticalScrollBar().value()
    assert scrolled > 0
    # The next epoch: the same test images in the same order, with other predictions.
    flipped = (evaluation.predicted + 1) % 10
    later = dataclasses.replace(evaluation, step=evaluation.step + 50, predicted=flipped)
    session.set_evaluation(later)
    assert lw.item(0) is first_item  # updated, not rebuilt
    assert lw.verticalScrollBar().value() == scrolled  # the place the user scrolled to is kept
    for row in (0, 57, 199):
        item = lw.item(row)
        true, pred = int(later.labels[row]), int(flipped[row])
        assert item.text() == f"{pred} ({true})"
        assert item.data(CORRECT_ROLE) == (true == pred)
        assert item.foreground().color() == view.predictions_gallery.label_color(true == pred)


def test_most_confident_mistakes_tab(view, session, evaluation):
    session.set_evaluation(evaluation)
    view.tabs.setCurrentIndex(1)
    expected = most_confident_mistakes(evaluation.probabilities, evaluation.labels, k=1000)
    assert view.mistakes_gallery.indices() == expected[:200].tolist()
    first = view.mistakes_gallery.list_widget().item(0)
    i = int(first.data(INDEX_ROLE))
    conf = evaluation.probabilities[i, evaluation.predicted[i]]
    assert first.text().endswith(f"{conf:.0%}")
    assert not first.data(CORRECT_ROLE)


def test_hidden_view_fills_galleries_when_shown(qtbot, session, evaluation):
    w = EvaluationView(session)
    qtbot.addWidget(w)
    session.set_evaluation(evaluation)
    assert w.accuracy_text()  # the cheap parts update at once
    assert w.predictions_gallery.indices() == []  # the thumbnails wait until the view is seen
    w.show()
    qtbot.waitUntil(lambda: len(w.predictions_gallery.indices()) == 200)


def test_new_model_or_data_clears_the_view(view, session, evaluation):
    session.set_evaluation(evaluation)
    view.click_cell(4, 9)
    session.set_spec(session.spec)
    assert _empty_shown(view)
    assert view.confusion() is None and view.gallery_indices() == [] and view.accuracy_text() == ""


def test_validation_evaluations_are_ignored(view, session, evaluation):
    import dataclasses

    session.set_evaluation(dataclasses.replace(evaluation, split="val"))
    assert view.confusion() is None


def test_export_confusion_csv_and_png(tmp_path, view, session, evaluation):
    session.set_evaluation(evaluation)
    path = tmp_path / "confusion.csv"
    view.export_confusion_csv(str(path))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true \\ predicted", *[str(i) for i in range(10)]]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(10)]
    np.testing.assert_array_equal(np.array([r[1:] for r in rows[1:]], dtype=np.int64), evaluation.confusion)
    png = tmp_path / "evaluation.png"
    view.export_png(str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_keyboard_selects_and_opens_a_cell(qtbot, view, session, evaluation):
    session.set_evaluation(evaluation)
    cm = view.confusion_view
    cm.setFocus()
    qtbot.keyClick(cm, Qt.Key.Key_Down)  # first key selects (0, 0)
    qtbot.keyClick(cm, Qt.Key.Key_Down)
    qtbot.keyClick(cm, Qt.Key.Key_Right)
    with qtbot.waitSignal(cm.cell_clicked) as signal:
        qtbot.keyClick(cm, Qt.Key.Key_Return)
    assert signal.args == [1, 1]
