"""File -> Export -> Animation: the choices of `cnnviz export RUN --gif/--mp4` in a dialog.

The dialog only collects :class:`~cnnviz.exports.animation.AnimationOptions`; the export itself is the
engine's, run in the background by :func:`cnnviz.gui.run_exports.export_animation`. The choices are remembered
(QSettings) for the next export. The whole-window view grabs this window as it is laid
out now (with the compare dock when two runs are compared); the other views can show both compared runs side
by side.
"""
from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnnviz.errors import CnnvizError
from cnnviz.exports.animation import (DEFAULT_FPS, DEFAULT_FRAMES, FPS_RANGE, FRAMES_RANGE, PAIR_GAP, WIDTH_RANGE,
                                      parse_size)
from cnnviz.exports.encoders import MP4_MISSING, imageio_ffmpeg_module
from cnnviz.gui import settings

VIEWS = (("filters", "Filters"), ("feature-maps", "Feature maps"), ("curves", "Curves"),
         ("window", "The whole window, as laid out now"))
SIZES = ("640x480", "800x600", "1024x768", "1280x720", "1920x1080")
SCALES = (("", "The view's own (per layer over the run for filters, per frame for feature maps)"),
          ("run", "One per layer over the whole run"), ("frame", "One per frame"))


def mp4_available() -> bool:
    """Whether imageio-ffmpeg (the `video` extra) is installed, so that MP4 can be written."""
    try:
        imageio_ffmpeg_module()
    except CnnvizError:
        return False
    return True


class AnimationDialog(QDialog):
    """The view, format, size, speed and length of the animation; :meth:`choices` reads them."""

    def __init__(self, stored_steps: int, input_label: str | None, compared: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export the run as an animation")
        self._stored = stored_steps
        form = QFormLayout()
        self.view = QComboBox()
        for key, text in VIEWS:
            self.view.addItem(text if key != "feature-maps" or not input_label else f"{text} of {input_label}", key)
        self.view.setToolTip("What each frame shows. The feature maps are those of the input the Feature maps "
                             "panel shows now. The whole window is grabbed at each frame's step (the window is busy "
                             "meanwhile).")
        form.addRow("&View:", self.view)
        self.both = QCheckBox(f"Beside it, the compared run {compared}" if compared else "Beside it, a compared run")
        self.both.setToolTip("Both runs' views side by side, at the same point of training" if compared else
                             "File -> Compare with run… first, or train two variants from the experiment panel")
        self._compared = bool(compared)
        form.addRow("", self.both)
        self.kind = QComboBox()
        self.kind.addItem("GIF", "gif")
        self.kind.addItem("MP4 (H.264)", "mp4")
        self.mp4_note = QLabel()
        self.mp4_note.setWordWrap(True)
        if not mp4_available():
            self.kind.model().item(1).setEnabled(False)
            self.kind.setItemData(1, MP4_MISSING, 3)  # Qt.ToolTipRole
            self.mp4_note.setText(f"MP4 is off: {MP4_MISSING}")
        self.mp4_note.setVisible(bool(self.mp4_note.text()))
        form.addRow("&Format:", self.kind)
        form.addRow("", self.mp4_note)
        self.size = QComboBox()
        self.size.setEditable(True)
        self.size.addItems(SIZES)
        self.size.setToolTip("Width x height in pixels, e.g. 640x480")
        form.addRow("&Size:", self.size)
        self.fps = QSpinBox()
        self.fps.setRange(*FPS_RANGE)
        self.fps.setValue(DEFAULT_FPS)
        self.fps.setSuffix(" frames/s")
        form.addRow("S&peed:", self.fps)
        self.frames = QSpinBox()
        self.frames.setRange(*FRAMES_RANGE)
        self.frames.setValue(DEFAULT_FRAMES)
        self.frames.setToolTip("At most this many frames: the run's stored steps, thinned evenly")
        form.addRow("&Frames (at most):", self.frames)
        self.scale = QComboBox()
        for key, text in SCALES:
            self.scale.addItem(text, key)
        form.addRow("&Colour scale:", self.scale)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020")
        self.error.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export…")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self._restore()
        for signal in (self.fps.valueChanged, self.frames.valueChanged, self.size.currentTextChanged,
                       self.view.currentIndexChanged, self.kind.currentIndexChanged, self.both.toggled):
            signal.connect(self._update)
        self._update()

    def choices(self) -> dict:
        """kind, view, size (w, h), fps, frames and scale (None: the view's own). Raises CnnvizError."""
        return {"kind": self.kind.currentData(), "view": self.view.currentData(),
                "size": parse_size(self.size.currentText()), "fps": self.fps.value(),
                "frames": self.frames.value(), "scale": self.scale.currentData() or None}

    def side_by_side(self) -> bool:
        """Whether the compared run is to be shown beside this one."""
        return self.both.isEnabled() and self.both.isChecked()

    def _update(self) -> None:
        try:
            choice = self.choices()
        except CnnvizError as exc:
            self.error.setText(str(exc).replace("--size", "The size"))
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
            return
        self.both.setEnabled(self._compared and choice["view"] != "window")
        self.scale.setEnabled(choice["view"] in ("filters", "feature-maps"))  # the others draw no weights' colours
        if self.side_by_side() and choice["size"][0] < 2 * WIDTH_RANGE[0] + PAIR_GAP:
            self.error.setText(f"Two runs side by side need a size at least {2 * WIDTH_RANGE[0] + PAIR_GAP} "
                               "pixels wide")
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
            return
        self.error.setText("")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        count = min(self._stored, choice["frames"])
        self.summary.setText(f"The run stores the weights of {self._stored:,} steps: {count:,} frames, "
                             f"{count / choice['fps']:.1f} s at {choice['fps']} frames a second.")

    def accept(self) -> None:
        try:
            settings.save_animation(self.choices())
        except CnnvizError:
            return
        super().accept()

    def _restore(self) -> None:
        remembered = settings.load_animation()
        for box, key in ((self.view, "view"), (self.kind, "kind"), (self.scale, "scale")):
            index = box.findData(remembered.get(key) or "") if key in remembered else -1
            if index >= 0 and box.model().item(index).isEnabled():
                box.setCurrentIndex(index)
        if "size" in remembered:
            self.size.setCurrentText("x".join(str(v) for v in remembered["size"]))
        for spin, key in ((self.fps, "fps"), (self.frames, "frames")):
            if key in remembered:
                spin.setValue(remembered[key])
