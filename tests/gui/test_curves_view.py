"""CurvesView: per-step curves in growing buffers, moving average, epoch markers, log axis, exports."""
import numpy as np
import pyqtgraph as pg
import pytest

from cnnviz.gui.widgets.curves_view import WINDOW, CurvesView, trailing_mean
from cnnviz.training.history import History
from cnnviz.training.messages import EpochMetrics, Evaluation, StepBatch, StepMetrics


@pytest.fixture
def view(qtbot, session):
    w = CurvesView(session)
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.show()
    return w


def reference_average(values, window=WINDOW):
    """Mean of the last `window` values at each step (fewer at the start)."""
    return np.array([values[max(0, i - window + 1): i + 1].mean() for i in range(len(values))])


def synthetic(n, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1)
    loss = (2.3 * np.exp(-steps / 80) + 0.1 * rng.random(n)).astype(np.float32)
    acc = np.clip(1 - loss / 2.5, 0, 1).astype(np.float32)
    lr = np.full(n, 0.003, np.float32)
    return loss, acc, lr


def feed(session, loss, acc, lr, chunk=37, first=1, bpe=100):
    """Send the arrays as StepBatch messages of `chunk` steps, as the training controller does."""
    for start in range(0, len(loss), chunk):
        stop = min(len(loss), start + chunk)
        step = first + stop - 1
        latest = StepMetrics(step, (step - 1) // bpe + 1, 3, (step - 1) % bpe + 1, bpe, float(loss[stop - 1]),
                             float(acc[stop - 1]), float(lr[stop - 1]), 1000.0, 10.0, 1.0)
        session.add_steps(StepBatch(first + start, loss[start:stop], acc[start:stop], lr[start:stop], latest))


def epoch(n, loss=0.5, acc=0.8, val_loss=0.6, val_acc=0.75):
    return EpochMetrics(n, loss, acc, val_loss, val_acc, 0.003, 1.0, 100.0)


def test_steps_grow_the_curves_and_the_moving_average_matches_numpy(view, session, qtbot):
    loss, acc, lr = synthetic(500)
    feed(session, loss[:200], acc[:200], lr[:200])
    assert view.point_count() == 200
    feed(session, loss[200:], acc[200:], lr[200:], first=201)
    assert view.point_count() == 500
    np.testing.assert_allclose(view.moving_average(), reference_average(loss), rtol=1e-5)
    np.testing.assert_allclose(view.buffers["accuracy_ma"], reference_average(acc), rtol=1e-5, atol=1e-6)
    plot = view.findChild(pg.PlotWidget, "lossPlot")
    assert plot is view.loss_plot
    qtbot.waitUntil(lambda: view._loss.getOriginalDataset()[0] is not None
                    and len(view._loss.getOriginalDataset()[0]) == 500)
    x, y = view._loss.getOriginalDataset()
    np.testing.assert_array_equal(x, np.arange(1, 501))
    np.testing.assert_array_equal(y, loss)


def test_buffers_double_without_losing_data():
    history = History()
    loss, acc, lr = synthetic(1000)
    for start in range(0, 1000, 7):
        history.add_steps(loss[start:start + 7], acc[start:start + 7], lr[start:start + 7])
    assert history.steps == 1000 and len(history.step_loss._data) == 1024
    np.testing.assert_array_equal(history.step_loss.values, loss)
    np.testing.assert_allclose(history.moving_average("step_loss"), reference_average(loss), rtol=1e-5)
    assert history.step_loss.values.base is not None  # a view of the buffer, not a copy


def test_the_view_draws_the_session_s_one_history(view, session):
    loss, acc, lr = synthetic(300)
    feed(session, loss, acc, lr)
    view.point_count()
    assert view.buffers.history is session.history
    assert np.shares_memory(view.buffers["loss"], session.history.step_loss.values)


def test_moving_average_skips_non_finite_values():
    values = np.array([1.0, np.nan, 3.0, np.inf, 5.0])
    np.testing.assert_allclose(trailing_mean(values, 0, 5, window=3), [1.0, 1.0, 2.0, 3.0, 4.0])
    assert np.isnan(trailing_mean(np.array([np.nan]), 0, 1))[0]


def test_log_toggle_changes_the_loss_axis(view):
    item = view.loss_plot.getPlotItem()
    assert not item.getAxis("left").logMode
    view._log.setChecked(True)
    assert item.getAxis("left").logMode
    assert item.ctrl.logYCheck.isChecked()
    view.set_log_loss(False)
    assert not view._log.isChecked() and not item.getAxis("left").logMode


def test_epoch_markers_and_test_accuracy_appear_where_epochs_ended(view, session, qtbot):
    loss, acc, lr = synthetic(300)
    for e in range(3):
        part = slice(100 * e, 100 * (e + 1))
        feed(session, loss[part], acc[part], lr[part], first=100 * e + 1)
        session.add_epoch(epoch(e + 1, loss=1.0 / (e + 1), val_loss=None if e == 0 else 1.1 / (e + 1)))
        session.set_evaluation(Evaluation("test", 100 * (e + 1), 0.3, 0.9 + e / 100, np.zeros(10),
                                          np.zeros((10, 10), np.int64), np.zeros(0, np.int64),
                                          np.zeros(0, np.int64), np.zeros((0, 10), np.float32)))
    qtbot.waitUntil(lambda: len(view.epoch_markers()[0]) == 3)
    steps, train = view.epoch_markers()
    np.testing.assert_array_equal(steps, [100, 200, 300])
    np.testing.assert_allclose(train, [1.0, 0.5, 1 / 3])
    val_x, _ = view._val_loss.getOriginalDataset()
    np.testing.assert_array_equal(val_x, [200, 300])  # the epoch without validation has no marker
    test_x, test_y = view._test_acc.getOriginalDataset()
    np.testing.assert_array_equal(test_x, [100, 200, 300])
    np.testing.assert_allclose(test_y, [0.90, 0.91, 0.92])


def test_history_reset_redraws_from_the_history(view, session, qtbot):
    feed(session, *synthetic(50))
    loss, acc, lr = synthetic(400, seed=3)
    history = History(list(loss), list(acc), list(lr), [epoch(i) for i in (1, 2)], [0.9, 0.95])
    session.reset_history(history)
    assert view.point_count() == 400
    np.testing.assert_allclose(view.moving_average(), reference_average(loss), rtol=1e-5)
    qtbot.waitUntil(lambda: len(view.epoch_markers()[0]) == 2)
    # 400 steps over 2 epochs does not fit the sample's 40 batches per epoch: spread evenly.
    np.testing.assert_array_equal(view.epoch_markers()[0], [200, 400])
    assert len(view._test_acc.getOriginalDataset()[0]) == 2
    session.reset_history()
    assert view.point_count() == 0
    qtbot.waitUntil(lambda: "No training steps yet" in view.readout_text())


def test_history_epochs_use_the_runs_batches_per_epoch(view, session, sample_data):
    bpe = -(-len(sample_data.train) // session.recipe.train.batch_size)
    n = 2 * bpe + 5  # stopped 5 batches into the third epoch
    # a checkpoint saved before epochs carried their step: restored from the run's progress (as
    # checkpoint.load_checkpoint passes it), not guessed by the view
    loss, acc, lr = synthetic(n)
    old_epochs = [{k: v for k, v in epoch(i).__dict__.items() if k != "step"} for i in (1, 2)]
    history = History.restore({"step_loss": loss, "step_accuracy": acc, "step_lr": lr}, old_epochs, [],
                              steps_per_epoch=bpe)
    session.reset_history(history)
    np.testing.assert_array_equal(view.epoch_markers()[0], [bpe, 2 * bpe])


def test_a_million_points_load_and_draw(view, session, qtbot):
    n = 1_000_000
    loss = np.random.default_rng(0).random(n).astype(np.float32)
    arrays = {"step_loss": loss, "step_accuracy": loss, "step_lr": np.full(n, 1e-3, np.float32)}
    session.reset_history(History.restore(arrays, [], []))
    assert view.point_count() == n
    view._redraw()
    view.grab()  # paints every curve
    assert len(view._loss.getOriginalDataset()[0]) == n
    assert view._loss.opts["clipToView"] and view._loss.opts["autoDownsample"]
    assert len(view._loss.getData()[0]) < n / 10  # what is drawn is peak-downsampled to the plot's width


def test_no_redraw_while_hidden(view, session, qtbot):
    view.hide()
    feed(session, *synthetic(100))
    qtbot.wait(100)
    assert view._loss.getOriginalDataset()[0] is None or len(view._loss.getOriginalDataset()[0]) == 0
    view.show()
    qtbot.waitUntil(lambda: view._loss.getOriginalDataset()[0] is not None
                    and len(view._loss.getOriginalDataset()[0]) == 100)


def test_hover_readout_describes_the_nearest_step(view, session):
    loss, acc, lr = synthetic(120)
    feed(session, loss, acc, lr)
    assert view.show_step_at(41.7) == 41
    assert view.readout_text().startswith("step 42 ")
    assert f"loss {loss[41]:.4g}" in view.readout_text()


def test_exports_write_png_and_csv(view, session, tmp_path):
    loss, acc, lr = synthetic(120)
    feed(session, loss, acc, lr)
    session.add_epoch(epoch(1))
    png = tmp_path / "curves.png"
    view.export_png(str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    written = view.export_csv(str(tmp_path / "curves.csv"))
    assert [p.name for p in written] == ["curves.csv", "curves_epochs.csv"]
    lines = (tmp_path / "curves.csv").read_text().splitlines()
    assert lines[0] == "step,loss,moving_average,accuracy,lr"
    assert len(lines) == 121
    table = np.loadtxt(tmp_path / "curves.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(table[:, 0], np.arange(1, 121))
    np.testing.assert_allclose(table[:, 1], loss, rtol=1e-5)
    np.testing.assert_allclose(table[:, 2], reference_average(loss), rtol=1e-5)
    assert (tmp_path / "curves_epochs.csv").read_text() == session.history.to_csv()


def test_the_lr_strip_spans_zero_to_the_highest_rate_and_labels_it(view, session, qtbot):
    loss, acc, _ = synthetic(300)
    lr = (0.002 * np.exp(-np.arange(300) / 100)).astype(np.float32)  # a decaying schedule
    feed(session, loss, acc, lr)
    axis = view.lr_plot.getPlotItem().getAxis("left")

    def fitted():
        low, high = view.lr_plot.getPlotItem().getViewBox().viewRange()[1]
        return low < 0 < 0.002 < high < 0.004 and axis._tickLevels == [[(float(lr[0]), "0.002")], []]

    qtbot.waitUntil(fitted, timeout=3000)  # not auto-range's padded span around a flat line
    session.reset_history()
    qtbot.waitUntil(lambda: axis._tickLevels == [[], []], timeout=3000)


def test_every_curve_plot_fits_in_steps(view):
    from cnnviz.gui.widgets.curve_items import SteppedViewBox

    for plot in (view.loss_plot, view.accuracy_plot, view.lr_plot):
        assert isinstance(plot.getPlotItem().getViewBox(), SteppedViewBox)


def test_a_growing_curve_moves_the_stepped_range_only_when_it_crosses_a_step(qtbot):
    """Each move of the range regenerates every axis: a run growing by a few steps must not move it."""
    import numpy as np
    import pyqtgraph as pg

    from cnnviz.gui.widgets.curve_items import nice_step, snap_range, SteppedViewBox

    assert [nice_step(s) for s in (436, 8, 0.09)] == [100, 1, 0.02]
    assert snap_range(1, 437) == (0, 500) and snap_range(5.5, 100.00001) == (0, 120)
    assert snap_range(5.5, 100.00001, slack=0.02) == (0, 100)  # sticking out within the view's padding
    assert snap_range(-33.5, 932, slack=0.045) == (0, 1000) and snap_range(-33.5, 932) == (-200, 1000)
    plot = pg.PlotWidget(viewBox=SteppedViewBox())
    qtbot.addWidget(plot)
    item = plot.plot()
    box = plot.getPlotItem().getViewBox()
    ranges = []
    for n in (437, 460, 499, 520):
        x = np.arange(1, n + 1, dtype=float)
        item.setData(x, 1 + 1 / x)
        box.updateAutoRange()
        ranges.append(tuple(round(v, 6) for v in box.viewRange()[0]))
    assert ranges[0] == ranges[1] == ranges[2] != ranges[3]
    assert ranges[0][0] < 0 < 500 < ranges[0][1] < 550  # 0-500 and pyqtgraph's own padding


def test_moving_the_shown_step_marker_repaints_the_curves_from_their_cache(qtbot, session, monkeypatch):
    """Scrubbing and Play move the marker at every frame; the curves themselves are not drawn again."""
    painted = []
    original = pg.PlotCurveItem.paint
    monkeypatch.setattr(pg.PlotCurveItem, "paint", lambda item, *a: painted.append(item) or original(item, *a))
    view = CurvesView(session)  # made after the patch: PySide looks the override up when the object is made
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    loss, acc, lr = synthetic(300)
    feed(session, loss, acc, lr)
    qtbot.wait(300)  # the throttled redraw of the new steps
    view.show_step(100)
    qtbot.wait(50)
    painted.clear()
    for step in (120, 140, 160, 180):
        view.show_step(step)
        view.repaint()
        qtbot.wait(20)
    assert view.shown_step_marker() == 180 and painted == []
    view.show_step(None)  # live again: the curves change at every redraw, drawn directly
    assert all(item.curve.cacheMode() == item.curve.CacheMode.NoCache
               for item in view.loss_plot.getPlotItem().listDataItems())
