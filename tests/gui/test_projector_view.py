"""The projector: PCA that follows the weights, clicks, the lasso, the drawing's star, t-SNE with progress/cancel."""
import numpy as np
import pytest
import torch
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from cnnviz.gui.widgets.projector_view import ProjectorView
from cnnviz.inspect.embedding import embed
from cnnviz.models import build_model
from cnnviz.training.messages import WeightsSnapshot


@pytest.fixture
def view(qtbot, session, trained_snapshot):
    session.apply_snapshot(trained_snapshot)
    w = ProjectorView(session)
    qtbot.addWidget(w)
    w.resize(900, 560)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.shown() is not None, timeout=20000)
    yield w
    w.shutdown()


def _viewport_pos(view, x, y):
    scene = view.view_box.mapViewToScene(QPointF(x, y))
    return view.plot.mapFromScene(scene)


def _mouse(view, kind, pos, held, modifiers=Qt.KeyboardModifier.NoModifier):
    vp = view.plot.viewport()
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    buttons = Qt.MouseButton.LeftButton if held else Qt.MouseButton.NoButton
    posf = QPointF(pos)
    QApplication.sendEvent(vp, QMouseEvent(kind, posf, vp.mapToGlobal(posf), button, buttons, modifiers))


def test_pca_of_the_test_subset_with_the_models_own_mistakes(view, session, trained_snapshot):
    p = view.shown()
    assert p.method == "PCA" and p.step == trained_snapshot.step
    assert len(p.indices) == len(session.data.test)  # the sample's 1,000 test images: all of them
    with torch.no_grad():
        predicted = session.model(session.data.test.images[p.indices]).argmax(1).numpy()
    assert np.array_equal(p.predicted, predicted)
    right, wrong = view.point_count()
    assert wrong == int((predicted != p.labels).sum()) and right + wrong == len(p.indices)
    assert f"step {trained_snapshot.step}" in view.status.text()


def test_clicking_a_point_selects_that_test_image(qtbot, view, session):
    p = view.shown()
    c = p.coords
    # the most isolated point, so the click cannot land on another
    d = np.linalg.norm(c[:, None] - c[None], axis=2) + np.eye(len(c)) * 1e9
    k = int(np.argmax(d.min(axis=1)))
    pos = _viewport_pos(view, *c[k])
    qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: session.selected_input.index == int(p.indices[k]), timeout=2000)


def test_a_shift_drag_lasso_opens_exactly_the_enclosed_points_in_the_gallery(qtbot, view):
    p = view.shown()
    c = p.coords
    x0, x1 = np.percentile(c[:, 0], [20, 60])
    y0, y1 = np.percentile(c[:, 1], [20, 60])
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1e-3 * (y1 - y0))]
    path = [_viewport_pos(view, x, y) for x, y in corners]
    shift = Qt.KeyboardModifier.ShiftModifier
    _mouse(view, QEvent.Type.MouseButtonPress, path[0], True, shift)
    for a, b in zip(path[:-1], path[1:]):
        for t in np.linspace(0, 1, 8)[1:]:
            _mouse(view, QEvent.Type.MouseMove, a + (b - a) * t, True, shift)
            qtbot.wait(20)  # pyqtgraph passes on at most 100 moves a second (mouseRateLimit)
    _mouse(view, QEvent.Type.MouseButtonRelease, path[-1], False, shift)
    # the lasso is drawn in whole screen pixels: points within a margin of its edge may fall either way
    mx, my = 0.02 * (x1 - x0), 0.02 * (y1 - y0)
    surely_in = (c[:, 0] > x0 + mx) & (c[:, 0] < x1 - mx) & (c[:, 1] > y0 + my) & (c[:, 1] < y1 - my)
    surely_out = (c[:, 0] < x0 - mx) | (c[:, 0] > x1 + mx) | (c[:, 1] < y0 - my) | (c[:, 1] > y1 + my)
    got = set(view.lasso_indices())
    assert surely_in.sum() > 20
    assert set(int(i) for i in p.indices[surely_in]) <= got
    assert not got & set(int(i) for i in p.indices[surely_out])
    assert view.gallery.indices() == view.lasso_indices()[: view.gallery.cap]
    assert view.gallery.total() == len(got)
    outline = view.view_box.lasso_outline()  # stays on show around what the gallery holds
    assert len(outline) >= 5 and outline[:, 0].min() < x0 + mx and outline[:, 0].max() > x1 - mx
    view._on_model_or_data(None)  # another model: the points move, the outline goes
    assert len(view.view_box.lasso_outline()) == 0


def test_the_lasso_of_a_rectangle_opens_its_points(view):
    p = view.shown()
    c = p.coords
    x0, x1 = np.percentile(c[:, 0], [10, 50])
    y0, y1 = np.percentile(c[:, 1], [30, 90])
    found = view.lasso(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    inside = (c[:, 0] > x0) & (c[:, 0] < x1) & (c[:, 1] > y0) & (c[:, 1] < y1)
    assert sorted(found) == sorted(int(i) for i in p.indices[inside])
    assert sorted(view.gallery.indices()) == sorted(found)[: view.gallery.cap] or view.gallery.total() == len(found)


def test_the_drawing_is_a_star_where_its_embedding_projects(view, session):
    p = view.shown()
    i = 17
    e = embed(session.model, session.data.test.images[int(p.indices[i])])[0]
    view.set_drawing(e)
    x, y = view.drawing_position()
    assert np.allclose((x, y), p.coords[i], atol=1e-3)
    view.set_drawing(None)
    assert view.drawing_position() is None


def _initial(session):
    torch.manual_seed(session.recipe.train.seed)
    model = build_model(session.spec)
    return WeightsSnapshot(0, 0, {k: v.numpy().copy() for k, v in model.state_dict().items()})


def test_new_weights_give_a_new_picture_turned_onto_the_last(qtbot, view, session, trained_snapshot):
    first = view.shown()
    session.show_weights(_initial(session))  # a timeline seek back to step 0
    qtbot.waitUntil(lambda: view.shown() is not first and view.shown().step == 0, timeout=20000)
    session.go_live()
    qtbot.waitUntil(lambda: view.shown().step == trained_snapshot.step, timeout=20000)
    again = view.shown()
    # the same weights again, aligned onto the previous picture: the same points, rotated/flipped only
    assert np.allclose(np.linalg.norm(again.coords, axis=1), np.linalg.norm(first.coords, axis=1), atol=1e-3)


def test_no_work_while_hidden(qtbot, view, session):
    before = view.shown()
    view.hide()
    session.show_weights(_initial(session))
    qtbot.wait(500)  # longer than the throttle
    assert view.shown() is before and not view.tsne_running()
    view.show()
    qtbot.waitUntil(lambda: view.shown() is not before, timeout=20000)


def test_tsne_reports_progress_then_shows_and_pca_comes_back(qtbot, view, session, trained_snapshot):
    progress = []
    view._tsne_job.progress.connect(lambda d, t: progress.append((d, t)))
    assert view.run_tsne(points=150)
    assert view.tsne_running() and view.cancel_button.isVisibleTo(view)
    qtbot.waitUntil(lambda: view.shown().method == "t-SNE", timeout=60000)
    p = view.shown()
    assert len(p.indices) == 150 and p.step == trained_snapshot.step
    assert progress and progress[-1][0] == progress[-1][1]
    assert "t-SNE of 150 test images" in view.status.text()
    e = embed(session.model, session.data.test.images[int(p.indices[3])])[0]
    view.set_drawing(e)  # placed among its neighbours
    assert view.drawing_position() is not None
    session.show_weights(_initial(session))  # the timeline moves on: the t-SNE says which step it shows
    assert "press t-SNE again" in view.status.text()
    view.pca_button.click()
    assert view.mode() == "PCA" and view.shown().method == "PCA"


def test_tsne_cancel_goes_back_to_pca(qtbot, view):
    assert view.run_tsne(points=400)
    view.cancel_button.click()
    assert view.mode() == "PCA"
    assert view.wait(30000)
    assert view.shown().method == "PCA" and "cancelled" in view.status.text()
    assert not view.cancel_button.isVisibleTo(view)


def test_the_legend_sits_above_the_points_not_on_them(view, session):
    from PySide6.QtWidgets import QLabel

    legend = view.findChild(QLabel, "projectorLegend")
    text = legend.text()
    assert all(name in text for name in session.class_names) and "mistake" in text and "drawing" in text
    assert legend.mapTo(view, legend.rect().bottomLeft()).y() <= view.plot.mapTo(view, view.plot.rect().topLeft()).y()

