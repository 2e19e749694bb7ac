"""The training digits nearest to the drawing in the embedding space (the classifier's input), live while drawing.

The *bank* (the embeddings of a fixed subset of the training set) is recomputed in a background thread when
the weights change, only while the row is on screen, at most once every five seconds and at most a tenth of
the time (a bank that took 1.5 s to embed waits 15 s): that thread shares the cores with the GUI thread and
the training process. The query (one drawing against the bank, well under a millisecond) runs on the GUI
thread after every pen move, on the embedding the draw panel's prediction computed in the same forward pass.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from cnnviz.errors import CnnvizError
from cnnviz.gui.background_job import BackgroundJob, ModelCopy
from cnnviz.gui.throttle import Throttle
from cnnviz.gui.visibility import on_screen
from cnnviz.gui.widgets.image_gallery import thumbnail
from cnnviz.inspect.embedding import embed
from cnnviz.inspect.projection import subset_indices

K = 8
BANK_POINTS = 5_000  # training images searched: enough for 8 close neighbours, half a second to embed
_BANK_MS = 5000  # recompute the bank at most every 5 s while training sends weights (a small share of a core)
_BANK_DUTY = 10  # and wait at least this many times the last bank's embedding time: <= 1/10 of a core


def _bank_work(load, images, indices, step):
    """The bank's embeddings and their squared norms (run in the background on a copy of the model)."""
    def work(progress, cancel):
        start = time.perf_counter()
        bank = embed(load(), images[indices])
        return step, bank, np.einsum("ij,ij->i", bank, bank), time.perf_counter() - start
    return work


def search(bank: np.ndarray, squared: np.ndarray, query: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``bank`` nearest ``query`` (indices nearest first, distances), ties to the lower index.

    What :func:`cnnviz.inspect.embedding.nearest` answers, with the bank's squared norms computed once per bank
    instead of at every query: one float32 matrix-vector product per pen move (~0.3 ms for 5,000 x 200).
    """
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    d2 = squared - 2.0 * (bank @ q) + float(q @ q)
    np.maximum(d2, 0.0, out=d2)
    k = min(k, len(d2))
    part = np.argpartition(d2, k - 1)[:k] if k < len(d2) else np.arange(len(d2))
    order = part[np.lexsort((part, d2[part]))]
    return order.astype(np.int64), np.sqrt(d2[order])


class _Thumbnail(QLabel):
    """A training digit's picture: a click shows it in the feature maps."""

    clicked = Signal()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self.pixmap() is not None and not self.pixmap().isNull():
            self.clicked.emit()
        super().mousePressEvent(event)


class NearestDigits(QWidget):
    """A row of the ``K`` training images nearest to a query embedding, each with its label.

    ``updated(list)`` carries the training indices shown after every change (empty when none).
    """

    updated = Signal(list)

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("nearestDigits")
        self._session = session
        self._bank: np.ndarray | None = None
        self._squared: np.ndarray | None = None  # the bank rows' squared norms
        self._bank_step = -1
        self._indices = np.zeros(0, np.int64)  # training-set indices of the bank's rows
        self._shown: list[int] = []
        self._shown_of = None  # (data, bank step) the thumbnails and their tooltips were made for
        self._last_query: np.ndarray | None = None
        self._dirty = True
        self._job = BackgroundJob()
        self._model = ModelCopy()  # the GUI thread loads new weights into the session's model meanwhile
        self._job.done.connect(self._on_bank)
        self._job.failed.connect(self._on_failed)
        self._throttle = Throttle(_BANK_MS, self._recompute, self)
        title = QLabel(f"Nearest training digits ({K})")
        title.setToolTip("The training images whose embedding (what the classifier reads) is closest to your "
                         f"drawing's, searched among {BANK_POINTS:,} training images; the label under each is "
                         "its true class")
        self.note = QLabel("Draw a digit to see the training digits the network finds most like it.")
        self.note.setObjectName("nearestNote")
        self.note.setEnabled(False)
        self.note.setWordWrap(True)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(0)
        self._images: list[QLabel] = []
        self._labels: list[QLabel] = []
        for i in range(K):
            image, label = _Thumbnail(), QLabel()
            image.setCursor(Qt.CursorShape.PointingHandCursor)
            image.clicked.connect(self._on_thumbnail_clicked)
            image.setFixedSize(58, 58)
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            image.setStyleSheet("QLabel { background: black; }")
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setObjectName(f"nearestLabel{i}")
            grid.addWidget(image, 0, i)
            grid.addWidget(label, 1, i)
            self._images.append(image)
            self._labels.append(label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(title)
        layout.addLayout(grid)
        layout.addWidget(self.note)
        session.weights_changed.connect(self._on_weights)
        session.spec_changed.connect(self._on_model_or_data)
        session.data_changed.connect(self._on_model_or_data)

    # -- automation surface ------------------------------------------------------------------------------
    def shown(self) -> list[int]:
        """Training-set indices of the digits shown, nearest first (empty when none)."""
        return list(self._shown)

    def labels(self) -> list[str]:
        return [label.text() for label in self._labels if label.text()]

    def bank_ready(self) -> bool:
        return self._bank is not None

    def wait(self, ms: int = 30000) -> bool:
        return self._job.wait(ms)

    def shutdown(self) -> None:
        self._throttle.cancel()
        self._job.shutdown()

    # -- the bank ----------------------------------------------------------------------------------------
    def _on_weights(self, _snapshot) -> None:
        self._dirty = True
        if on_screen(self):
            self._throttle.request()

    def _on_model_or_data(self, _value) -> None:
        self._bank, self._dirty = None, True  # another model or data: the old bank is meaningless
        self._job.cancel()
        self._show([])
        if on_screen(self):
            self._throttle.flush()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self.catch_up()

    def catch_up(self) -> None:
        """Recompute a bank that went stale while the row was off screen (its tab raised, the window shown)."""
        if self._dirty and on_screen(self) and not self._job.busy:
            self._throttle.flush()

    def _recompute(self) -> None:
        data = self._session.data
        if data is None or len(data.train) == 0 or not on_screen(self):
            return
        self._dirty = False
        self._indices = subset_indices(len(data.train), BANK_POINTS, seed=0)
        self._job.submit(_bank_work(self._model.take(self._session), data.train.images, self._indices, self._session.weights_step))

    def _on_bank(self, result) -> None:
        self._bank_step, self._bank, self._squared, seconds = result
        self._throttle.set_interval(max(_BANK_MS, int(_BANK_DUTY * seconds * 1000)))
        if self._last_query is not None:
            self.show_for(self._last_query)

    def _on_failed(self, text: str) -> None:
        self._bank = None
        self.note.setText(f"No nearest digits: {text}")
        self.note.show()

    def open_shown(self, rank: int) -> None:
        """Make the ``rank``-th digit shown (0: the nearest) the feature maps' input (what a click on it does)."""
        if 0 <= rank < len(self._shown):
            self._session.select_train_image(self._shown[rank])

    def _on_thumbnail_clicked(self) -> None:
        self.open_shown(self._images.index(self.sender()))

    # -- the query ---------------------------------------------------------------------------------------
    def query(self, pixels: np.ndarray | None) -> np.ndarray | None:
        """Embed the drawing (H x W, [0, 1]) with the weights on show and show its neighbours; returns the
        embedding (D,) or None (nothing drawn, or a model without a dense layer)."""
        if pixels is None:
            self.show_for(None)
            return None
        try:
            e = embed(self._session.model, self._session.to_tensor(pixels))[0]
        except CnnvizError as err:
            self.unavailable(str(err))
            return None
        self.show_for(e)
        return e

    def unavailable(self, reason: str) -> None:
        """Show no digits and say why (e.g. a model without a dense layer has no embedding)."""
        self._last_query = None
        self._show([])
        self.note.setText(f"No nearest digits: {reason}")
        self.note.show()

    def show_for(self, embedding: np.ndarray | None) -> None:
        self._last_query = embedding
        if embedding is None:
            self._show([])
            self.note.setText("Draw a digit to see the training digits the network finds most like it.")
            self.note.show()
            return
        if self._bank is None or self._bank.shape[1] != embedding.shape[0]:
            self._show([])
            self.note.setText("Embedding the training digits…")
            self.note.show()
            if on_screen(self) and not self._job.busy:
                self._throttle.flush()
            return
        rows, distances = search(self._bank, self._squared, embedding, K)
        self.note.hide()
        self._show([int(self._indices[i]) for i in rows], distances)

    def _show(self, train_indices: list[int], distances=None) -> None:
        key = (self._session.data, self._bank_step)
        if list(train_indices) == self._shown and self._shown_of == key:
            self.updated.emit(list(self._shown))  # the same neighbours (most pen moves): nothing to redraw
            return
        self._shown = list(train_indices)
        self._shown_of = key
        data = self._session.data
        for i in range(K):
            image, label = self._images[i], self._labels[i]
            if i >= len(train_indices) or data is None:
                image.clear()
                label.setText("")
                image.setToolTip("")
                continue
            index = train_indices[i]
            raw = data.train.raw[index]
            scale = max(1, 56 // max(raw.shape))
            image.setPixmap(thumbnail(raw, scale))
            name = data.class_names[int(data.train.labels[index])]
            label.setText(name)
            image.setToolTip(f"Training image #{index}, labelled {name}; distance {float(distances[i]):.3g} "
                             f"in the embedding (step {self._bank_step} weights). Click to see its feature maps")
        self.updated.emit(list(self._shown))
