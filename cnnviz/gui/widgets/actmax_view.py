"""The input a conv filter or a class likes most (activation maximisation), computed in the background.

Used by the filters view's detail pane (the selected filter) and the projector (a chosen class). A new
target cancels the running ascent and starts another; new weights start one after the running one ends (at
most every 3 seconds, and only while the widget is visible); the image shown is always labelled with the step of the weights it was made for.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cnnviz.gui.visibility import on_screen
from cnnviz.gui.background_job import BackgroundJob, ModelCopy
from cnnviz.gui.throttle import Throttle
from cnnviz.inspect.feature_vis import ActmaxSettings, maximise

_WEIGHTS_MS = 3000  # an ascent takes a second or more: new weights start one at most every 3 s
_SIDE = 112  # 4 screen pixels per MNIST pixel


def _work(load, shape, layer, index, mean, std, step):
    def work(progress, cancel):
        return step, maximise(load(), shape, layer, index, mean, std, ActmaxSettings(), progress, cancel)
    return work


class ActmaxImage(QWidget):
    """The preferred input of one target: ``set_target(layer, index)`` (``layer`` None: a class)."""

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._target: tuple[str | None, int] | None = None
        self._image: np.ndarray | None = None
        self._dirty = False
        self._job = BackgroundJob()
        self._model = ModelCopy()
        self._job.done.connect(self._on_result)
        self._job.failed.connect(self._on_failed)
        self._job.progress.connect(self._on_progress)
        self._throttle = Throttle(_WEIGHTS_MS, self._start, self)
        self.picture = QLabel()
        self.picture.setObjectName("actmaxPicture")
        self.picture.setFixedSize(_SIDE, _SIDE)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setStyleSheet("QLabel { background: black; }")
        self.picture.setToolTip("The input image that excites this most, found by gradient ascent from faint "
                                "noise (jitter, blur and weight decay keep it an image rather than noise)")
        self.caption = QLabel("")
        self.caption.setObjectName("actmaxCaption")
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.picture, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.caption)
        session.weights_changed.connect(self._on_weights)
        session.spec_changed.connect(self._on_spec_changed)

    # -- automation surface ------------------------------------------------------------------------------
    def image(self) -> np.ndarray | None:
        """The preferred input shown (H, W) in [0, 1], or None."""
        return None if self._image is None else self._image.copy()

    def wait(self, ms: int = 30000) -> bool:
        return self._job.wait(ms)

    def shutdown(self) -> None:
        self._throttle.cancel()
        self._job.shutdown()

    def set_target(self, layer: str | None, index: int | None) -> None:
        """Show the preferred input of filter ``index`` of conv ``layer``, or of class ``index`` (``layer`` None);
        ``index`` None shows nothing."""
        target = None if index is None else (layer, int(index))
        if target == self._target and (self._image is not None or self._job.busy):
            return
        self._target = target
        self._image = None
        self.picture.clear()
        if target is None:
            self._job.cancel()
            self.caption.setText("")
            return
        if on_screen(self):
            self._start(restart=True)  # the running ascent is for a target no longer asked for
        else:
            self._dirty = True

    def _on_spec_changed(self, _spec) -> None:
        self.set_target(None, None)  # another model: its filters and classes are others

    # -- work ----------------------------------------------------------------------------------------------
    def _on_weights(self, _snapshot) -> None:
        if self._target is None:
            return
        if on_screen(self):
            self._throttle.request()
        else:
            self._dirty = True

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._dirty and self._target is not None:
            self._start()

    def _start(self, restart: bool = False) -> None:
        if self._target is None:
            return
        if not on_screen(self):  # hidden since it was asked for (a tab behind another): catch up when shown
            self._dirty = True
            return
        self._dirty = False
        s = self._session
        norm = s.data.normalization if s.data is not None else None
        mean, std = (norm.mean, norm.std) if norm is not None else (0.0, 1.0)
        layer, index = self._target
        self.caption.setText(f"Finding the input {self._name()} likes most…")
        self._job.submit(_work(self._model.take(s), s.input_size, layer, index, mean, std, s.weights_step),
                         restart=restart)

    def _name(self) -> str:
        layer, index = self._target
        if layer is None:
            names = self._session.class_names
            return f"class {names[index] if index < len(names) else index}"
        return f"{layer} filter {index}"

    def _on_progress(self, done: int, total: int) -> None:
        if self._target is not None:
            self.caption.setText(f"Finding the input {self._name()} likes most… {100 * done // max(total, 1)}%")

    def _on_result(self, result) -> None:
        step, found = result
        if self._target is None or found.target != (f"class {self._target[1]}" if self._target[0] is None
                                                    else f"{self._target[0]} filter {self._target[1]}"):
            return  # an answer for a target no longer asked for
        self._image = found.image
        a = np.ascontiguousarray((np.clip(found.image, 0, 1) * 255).astype(np.uint8))
        h, w = a.shape
        img = QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
        self.picture.setPixmap(QPixmap.fromImage(img.scaled(_SIDE, _SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                                                            Qt.TransformationMode.FastTransformation)))
        what = "mean activation" if self._target[0] is not None else "score (logit)"
        self.caption.setText(f"What {self._name()} likes most (step {step}): its {what} {found.score:.3g}, "
                             f"against {found.start_score:.3g} for faint noise")

    def _on_failed(self, text: str) -> None:
        self.caption.setText(f"No preferred input: {text}")
