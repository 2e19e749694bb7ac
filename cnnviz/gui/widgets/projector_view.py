"""The projector: the test set's embeddings (the classifier's input) in 2-D, as the weights change.

PCA of a fixed subset of the test set is recomputed in a background thread when the weights change (live or
along the timeline), at most three times a second (once a second while training) and only while the view is
visible, and each picture is turned onto the previous one (Procrustes) so points move instead of jumping. **t-SNE** runs on demand in the
background with progress and Cancel (openTSNE; up to 10,000 test images) and stays until **PCA** is pressed.
Points are coloured by true class; mistakes are crosses. The drawing is a star that follows the pen. Click a
point to make its image the feature-map input; lasso a group (the Lasso button, or Shift+drag) to open its
images in the gallery beside the plot. Beside it too: the input a chosen class likes most.
"""
from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnnviz.gui.visibility import on_screen
from cnnviz.gui.background_job import BackgroundJob, ModelCopy
from cnnviz.gui.throttle import Throttle
from cnnviz.gui.widgets.actmax_view import ActmaxImage
from cnnviz.gui.widgets.image_gallery import ImageGallery
from cnnviz.inspect.projection import (
    PROJECTION_POINTS,
    Projection,
    aligned,
    embed_and_predict,
    inside_polygon,
    pca_projection,
    subset_indices,
)
from cnnviz.inspect.tsne import near_position, tsne

TSNE_POINTS = 10_000  # t-SNE takes the whole test set up to this many images (about 35 s on two cores)
_PCA_MS = 300  # a new picture at most ~3 times a second while you scrub the timeline
_PCA_TRAINING_MS = 1000  # and once a second while training sends weights (~5 Hz): the window stays smooth
# Matplotlib's tab10: one distinct hue per class
CLASS_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def class_colour(c: int) -> QColor:
    r, g, b = CLASS_COLOURS[c % len(CLASS_COLOURS)]
    return QColor(r, g, b)


def _pca_work(load, images, labels, indices, step):
    def work(progress, cancel):
        emb, predicted = embed_and_predict(load(), images[indices])
        return pca_projection(emb, labels[indices], predicted, indices, step)
    return work


def _tsne_work(load, images, labels, indices, step):
    def work(progress, cancel):
        emb, predicted = embed_and_predict(load(), images[indices])
        coords = tsne(emb, seed=0, progress=progress, cancel=cancel)
        return Projection(np.asarray(coords, np.float32), labels[indices], predicted, indices, step, "t-SNE"), emb
    return work


class LassoViewBox(pg.ViewBox):
    """A ViewBox whose left-drag draws a lasso (in lasso mode, or with Shift held) instead of panning."""

    lasso_finished = Signal(object)  # (M, 2) polygon in data coordinates

    def __init__(self) -> None:
        super().__init__()
        self.lasso_mode = False
        self._path: list[tuple[float, float]] = []
        # mid blue, dashed: seen on a white plot (the default) and on a dark one
        self._outline = pg.PlotCurveItem(pen=pg.mkPen((0, 100, 230), width=2, style=Qt.PenStyle.DashLine))
        self._outline.setZValue(5)  # over the points (a dense cloud hid it), under the drawing's star
        self.addItem(self._outline, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (pyqtgraph override)
        lasso = self.lasso_mode or bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if not lasso or ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        if ev.isStart():
            self._path = []
            self.add_lasso_point(self.mapSceneToView(ev.buttonDownScenePos()))
        self.add_lasso_point(self.mapSceneToView(ev.scenePos()))
        if ev.isFinish():
            self.finish_lasso()

    def add_lasso_point(self, p: QPointF) -> None:
        self._path.append((p.x(), p.y()))
        closed = self._path + self._path[:1]
        self._outline.setData([x for x, _ in closed], [y for _, y in closed])

    def finish_lasso(self) -> None:
        """Emit the closed polygon; its outline stays on the plot (what the gallery shows) until the next
        lasso or :meth:`clear_lasso` (a new picture: the points have moved)."""
        polygon = np.array(self._path, dtype=np.float64)
        self._path = []
        if len(polygon) >= 3:
            self.lasso_finished.emit(polygon)
        else:
            self.clear_lasso()

    def clear_lasso(self) -> None:
        self._outline.setData([], [])

    def lasso_outline(self) -> np.ndarray:
        """The outline on show, (M, 2) in data coordinates (empty when none)."""
        x, y = self._outline.getData()
        return np.zeros((0, 2)) if x is None or not len(x) else np.column_stack([x, y])


class ProjectorView(QWidget):
    """The embedding projector (PCA live, t-SNE on demand) with the drawing, clicks, a lasso and class actmax.

    Signals
    -------
    projection_shown(object)
        The :class:`~cnnviz.inspect.projection.Projection` drawn, after each new picture.
    """

    projection_shown = Signal(object)

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("projectorView")
        self._session = session
        self._shown: Projection | None = None
        self._pca: Projection | None = None  # the last PCA picture (the next is aligned to it)
        self._tsne: Projection | None = None
        self._tsne_emb: np.ndarray | None = None
        self._mode = "PCA"
        self._dirty = True
        self._drawing: np.ndarray | None = None
        self._lasso_indices: list[int] = []
        self._pca_job = BackgroundJob()
        self._pca_model, self._tsne_model = ModelCopy(), ModelCopy()  # the GUI thread loads new weights into
        # the session's model while a job runs: each job works on its own copy
        self._pca_job.done.connect(self._on_pca)
        self._pca_job.failed.connect(self._on_failed)
        self._tsne_job = BackgroundJob()
        self._tsne_job.done.connect(self._on_tsne)
        self._tsne_job.failed.connect(self._on_failed)
        self._tsne_job.progress.connect(self._on_tsne_progress)
        self._tsne_job.busy_changed.connect(self._on_tsne_busy)
        self._throttle = Throttle(_PCA_MS, self._recompute, self)
        self._build()
        session.weights_changed.connect(self._on_weights)
        session.spec_changed.connect(self._on_model_or_data)
        session.data_changed.connect(self._on_model_or_data)

    # -- layout ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.pca_button = QPushButton("PCA")
        self.pca_button.setObjectName("pcaButton")
        self.pca_button.setCheckable(True)
        self.pca_button.setChecked(True)
        self.pca_button.setToolTip(f"Principal components of {PROJECTION_POINTS:,} test images' embeddings, "
                                   "recomputed live as the weights change and along the timeline")
        self.pca_button.clicked.connect(self.show_pca)
        self.tsne_button = QPushButton("t-SNE")
        self.tsne_button.setObjectName("tsneButton")
        self.tsne_button.setCheckable(True)
        self.tsne_button.setToolTip(f"t-SNE of up to {TSNE_POINTS:,} test images at the step shown (in the "
                                    "background; about half a minute for 10,000). It keeps clusters apart, "
                                    "but distances between clusters mean little. It stays until PCA is pressed.")
        self.tsne_button.clicked.connect(lambda: self.run_tsne())
        self.lasso_button = QPushButton("Lasso")
        self.lasso_button.setObjectName("lassoButton")
        self.lasso_button.setCheckable(True)
        self.lasso_button.setToolTip("Drag around a group of points to show their images in the gallery "
                                     "(Shift+drag does the same without this button)")
        self.progress = QProgressBar()
        self.progress.setObjectName("tsneProgress")
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("tsneCancelButton")
        self.cancel_button.setToolTip("Stop the t-SNE and go back to PCA")
        self.cancel_button.clicked.connect(self.cancel_tsne)
        self.cancel_button.hide()
        self.status = QLabel("")
        self.status.setObjectName("projectorStatus")
        self.status.setWordWrap(True)
        tools = QHBoxLayout()
        for widget in (self.pca_button, self.tsne_button, self.lasso_button, self.progress, self.cancel_button):
            tools.addWidget(widget)
        tools.addWidget(self.status, 1)

        self.view_box = LassoViewBox()
        self.view_box.lasso_finished.connect(self.lasso)
        self.lasso_button.toggled.connect(lambda on: setattr(self.view_box, "lasso_mode", on))
        self.plot = pg.PlotWidget(viewBox=self.view_box)
        self.plot.setObjectName("projectorPlot")
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setToolTip("Each point is a test image where the network puts it just before its classifier; "
                             "colour: true class, cross: a mistake, star: your drawing. Click a point to see "
                             "its feature maps; drag to pan, wheel to zoom.")
        # one item per class and kind, each of one colour: pyqtgraph draws a uniform item several times faster
        # than one item with a brush per point (2,000 points: ~25 ms of the GUI thread against a few)
        self._right_items: list[pg.ScatterPlotItem] = []
        self._wrong_items: list[pg.ScatterPlotItem] = []
        self.star = pg.ScatterPlotItem(size=26, symbol="star", brush=pg.mkBrush(255, 230, 0),
                                       pen=pg.mkPen(0, 0, 0, width=1.5))
        self.star.setZValue(10)
        self.plot.addItem(self.star, ignoreBounds=True)  # a moving star must not re-range (and redraw) the plot
        # the legend is a row of text above the plot: inside it, it covered part of the cloud in a small dock
        self.legend = QLabel()
        self.legend.setObjectName("projectorLegend")
        self.legend.setWordWrap(True)
        self.legend.setToolTip("Colour: the true class. A cross is a test image the network gets wrong; the star "
                               "is your drawing")

        self.gallery = ImageGallery("Lasso a group of points (Lasso button or Shift+drag) to see their images here.",
                                    scale=1, cap=300)
        self.gallery.setObjectName("projectorGallery")
        self.gallery.image_clicked.connect(self._session.select_test_image)
        self.class_combo = QComboBox()
        self.class_combo.setObjectName("actmaxClassCombo")
        self.class_combo.setToolTip("The class whose favourite input is shown below")
        self.class_combo.currentIndexChanged.connect(self._on_class_chosen)
        self.class_actmax = ActmaxImage(self._session)
        self.class_actmax.setObjectName("classActmax")
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Input that class"))
        row.addWidget(self.class_combo)
        row.addWidget(QLabel("likes most"))
        row.addStretch(1)
        sl.addLayout(row)
        sl.addWidget(self.class_actmax)
        sl.addWidget(self.gallery, 1)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.setSpacing(2)
        ll.addWidget(self.legend)
        ll.addWidget(self.plot, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(side)
        split.setStretchFactor(0, 1)
        split.setSizes([520, 240])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(tools)
        layout.addWidget(split, 1)
        self._fill_classes()

    def _items(self, n: int) -> None:
        """At least ``n`` classes' worth of scatter items (circles for right answers, crosses for mistakes)."""
        while len(self._right_items) < n:
            c = len(self._right_items)
            brush = pg.mkBrush(class_colour(c))
            right = pg.ScatterPlotItem(size=6, pen=None, brush=brush, hoverable=True, tip=self._tip)
            wrong = pg.ScatterPlotItem(size=9, symbol="x", pen=None, brush=brush, hoverable=True, tip=self._tip)
            wrong.setZValue(1)
            for item, group in ((right, self._right_items), (wrong, self._wrong_items)):
                item.sigClicked.connect(self._on_points_clicked)
                self.plot.addItem(item)
                group.append(item)

    def point_count(self) -> tuple[int, int]:
        """(right, mistakes): the points drawn as circles and as crosses."""
        return (sum(len(i.data) for i in self._right_items), sum(len(i.data) for i in self._wrong_items))

    def _fill_classes(self) -> None:
        names = self._session.class_names
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItems(list(names))
        self.class_combo.blockSignals(False)
        entries = [f'<span style="color:{class_colour(c).name()}">&#9679;</span>&nbsp;{html.escape(name)}'
                   for c, name in enumerate(names)]
        entries += ["&#10005;&nbsp;mistake", '<span style="color:#e6b800">&#9733;</span>&nbsp;drawing']
        self.legend.setText("&nbsp;&nbsp; ".join(entries))

    # -- automation surface ------------------------------------------------------------------------------
    def shown(self) -> Projection | None:
        """The picture on show (PCA or t-SNE), or None before the first one."""
        return self._shown

    def mode(self) -> str:
        return self._mode

    def drawing_position(self) -> tuple[float, float] | None:
        """Where the drawing's star is, or None when it is hidden."""
        data = self.star.data
        if not len(data):
            return None
        return float(data[0]["x"]), float(data[0]["y"])

    def lasso_indices(self) -> list[int]:
        """The test indices the last lasso enclosed (what the gallery was given)."""
        return list(self._lasso_indices)

    def wait(self, ms: int = 60000) -> bool:
        return self._pca_job.wait(ms) and self._tsne_job.wait(ms)

    def shutdown(self) -> None:
        self._throttle.cancel()
        self._pca_job.shutdown()
        self._tsne_job.shutdown()
        self.class_actmax.shutdown()

    # -- PCA -----------------------------------------------------------------------------------------------
    def _on_weights(self, _snapshot) -> None:
        self._dirty = True
        if self._mode == "t-SNE" and self._shown is not None:
            self.status.setText(self._status_text(self._shown))  # says which step the t-SNE was made at
        if on_screen(self):
            self._throttle.set_interval(_PCA_TRAINING_MS if self._session.state == "running" else _PCA_MS)
            self._throttle.request()

    def _on_model_or_data(self, _value) -> None:
        self._pca = self._tsne = self._shown = None
        self.view_box.clear_lasso()
        self._tsne_emb = None
        self._tsne_job.cancel()
        self._clear_points()
        self._fill_classes()
        self._on_class_chosen(self.class_combo.currentIndex())  # the new model's favourite input of that class
        self.gallery.clear()
        self._dirty = True
        if self._mode != "PCA":
            self.show_pca()
        elif on_screen(self):
            self._throttle.flush()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._dirty:
            self._throttle.flush()
        if self.class_combo.currentIndex() >= 0:
            self._on_class_chosen(self.class_combo.currentIndex())

    def _subset(self, size: int) -> np.ndarray:
        return subset_indices(len(self._session.data.test), size, seed=0)

    def _recompute(self) -> None:
        s = self._session
        if s.data is None or len(s.data.test) == 0 or not on_screen(self):
            return
        self._dirty = False
        if self._mode != "PCA":
            return  # t-SNE stays until PCA is pressed; PCA catches up then
        labels = s.data.test.labels.numpy()
        self._pca_job.submit(_pca_work(self._pca_model.take(s), s.data.test.images, labels, self._subset(PROJECTION_POINTS),
                                       s.weights_step))

    def _on_pca(self, projection: Projection) -> None:
        self._pca = aligned(projection, self._pca)  # turned onto the last picture: points move, never jump
        if self._mode == "PCA":
            self._show(self._pca)

    def show_pca(self) -> None:
        """Back to the live PCA picture."""
        self._mode = "PCA"
        self.pca_button.setChecked(True)
        self.tsne_button.setChecked(False)
        self._tsne_job.cancel()
        if self._pca is not None:
            self._show(self._pca)
        if self._dirty or (self._pca is not None and self._pca.step != self._session.weights_step):
            self._dirty = True
            if on_screen(self):
                self._throttle.flush()

    # -- t-SNE ---------------------------------------------------------------------------------------------
    def run_tsne(self, points: int = TSNE_POINTS) -> bool:
        """Start t-SNE of up to ``points`` test images at the step shown; False when there is no data."""
        s = self._session
        if s.data is None or len(s.data.test) < 4:
            self.tsne_button.setChecked(False)
            self.status.setText("t-SNE needs a test set of at least 4 images.")
            return False
        self._mode = "t-SNE"
        self.tsne_button.setChecked(True)
        self.pca_button.setChecked(False)
        indices = self._subset(points)
        self.status.setText(f"t-SNE of {len(indices):,} test images at step {s.weights_step:,}…")
        self.progress.setRange(0, 0)
        labels = s.data.test.labels.numpy()
        self._tsne_job.submit(_tsne_work(self._tsne_model.take(s), s.data.test.images, labels, indices,
                                         s.weights_step), restart=True)
        return True

    def cancel_tsne(self) -> None:
        """Stop a running t-SNE and go back to PCA."""
        self._tsne_job.cancel()
        self.show_pca()
        self.status.setText("t-SNE cancelled; showing PCA.")

    def tsne_running(self) -> bool:
        return self._tsne_job.busy

    def _on_tsne_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def _on_tsne_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat("affinities…" if done == 0 else "t-SNE %p%")

    def _on_tsne(self, result) -> None:
        self._tsne, self._tsne_emb = result
        if self._mode == "t-SNE":
            self._show(self._tsne)

    def _on_failed(self, text: str) -> None:
        self.status.setText(f"No projection: {text}")

    # -- drawing -------------------------------------------------------------------------------------------
    def _clear_points(self) -> None:
        for item in self._right_items + self._wrong_items:
            item.setData([])
        self.star.setData([])

    def _show(self, p: Projection) -> None:
        if self._shown is None or self._shown.method != p.method:
            self.view_box.clear_lasso()  # other coordinates: the outline no longer surrounds its points
        self._shown = p
        n = int(p.labels.max(initial=0)) + 1
        self._items(n)
        wrong = p.mistakes
        for c in range(len(self._right_items)):
            of_class = p.labels == c
            for item, mask in ((self._right_items[c], of_class & ~wrong), (self._wrong_items[c], of_class & wrong)):
                item.setData(pos=p.coords[mask], data=p.indices[mask])
        self._place_drawing()
        self.status.setText(self._status_text(p))
        self.projection_shown.emit(p)

    def _status_text(self, p: Projection) -> str:
        accuracy = 100.0 * float(np.mean(~p.mistakes)) if len(p.indices) else 0.0
        text = (f"{p.method} of {len(p.indices):,} test images at step {p.step:,}: "
                f"{int(p.mistakes.sum()):,} mistakes ({accuracy:.1f}% right)")
        if p.method == "t-SNE" and p.step != self._session.weights_step:
            text += f". The views show step {self._session.weights_step:,}: press t-SNE again to recompute"
        return text

    def _tip(self, x, y, data) -> str:
        s = self._session
        if s.data is None or self._shown is None:
            return ""
        i = int(data)
        where = np.nonzero(self._shown.indices == i)[0]
        names = s.class_names
        true = names[int(s.data.test.labels[i])]
        pred = names[int(self._shown.predicted[where[0]])] if len(where) else "?"
        return f"test #{i}: true {true}, predicted {pred}\nclick to show its feature maps"

    def set_drawing(self, embedding: np.ndarray | None) -> None:
        """Place the drawing's embedding (D,) as the star (None hides it)."""
        self._drawing = None if embedding is None else np.asarray(embedding, np.float32)
        self._place_drawing()

    def _place_drawing(self) -> None:
        p, e = self._shown, self._drawing
        pos = None
        if p is not None and e is not None:
            if p.basis is not None and p.basis.mean.shape[0] == e.shape[0]:
                pos = p.place(e)
            elif self._tsne_emb is not None and p is self._tsne and self._tsne_emb.shape[1] == e.shape[0]:
                pos = near_position(p.coords, self._tsne_emb, e)
        self.star.setData([] if pos is None else [{"pos": (float(pos[0]), float(pos[1]))}])

    # -- clicks and the lasso ------------------------------------------------------------------------------
    def _on_points_clicked(self, _item, spots, _ev=None) -> None:
        if len(spots):
            self.select_point(int(spots[0].data()))

    def select_point(self, index: int) -> None:
        """Make test image ``index`` the feature-map input (what a click on its point does)."""
        self._session.select_test_image(index)

    def lasso(self, polygon: np.ndarray) -> list[int]:
        """Open the points inside ``polygon`` (M, 2; data coordinates) in the gallery; returns their test indices."""
        p, s = self._shown, self._session
        if p is None or s.data is None:
            return []
        inside = inside_polygon(p.coords, polygon)
        self._lasso_indices = [int(i) for i in p.indices[inside]]
        labels = s.data.test.labels.numpy()
        predicted = labels.copy()
        predicted[p.indices] = p.predicted
        self.gallery.show_images(s.data.test.raw, self._lasso_indices, labels, predicted, s.class_names,
                                 note=f"Lasso ({p.method}, step {p.step:,})")
        return list(self._lasso_indices)

    def _on_class_chosen(self, index: int) -> None:
        if index >= 0:
            self.class_actmax.set_target(None, index)
