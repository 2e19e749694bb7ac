"""The menu bar (File / View / Help) and the file actions behind it: open/save runs, exports."""
from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QFileDialog, QMainWindow, QMessageBox

from cnnviz import __version__
from cnnviz.errors import CnnvizError

RUN_FILTER = "cnnviz run (*.safetensors)"

SHORTCUTS = [
    ("Ctrl+Return", "Train (or continue a stopped or opened run)"),
    ("Space", "Pause / resume"),
    ("Ctrl+.", "Train one batch (step)"),
    ("Esc", "Stop training"),
    ("Ctrl+R", "Reset to fresh weights"),
    ("Ctrl+O / Ctrl+S", "Open / save a run"),
    ("Ctrl+Shift+O", "Follow a run another process is training"),
    ("L / E / P", "Timeline: live / exact step / play"),
    ("Ctrl+Z", "Undo the last stroke on the drawing canvas"),
    ("Delete", "Clear the drawing canvas"),
    ("Ctrl+Q", "Quit"),
]


def build_menus(window: QMainWindow) -> dict[str, QAction]:
    """Create the menus; returns the actions by name (for tests and shortcuts)."""
    bar = window.menuBar()
    actions: dict[str, QAction] = {}

    def add(menu, name: str, text: str, slot, shortcut: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        actions[name] = action
        return action

    file_menu = bar.addMenu("&File")
    add(file_menu, "open", "&Open run…", lambda: open_run(window), "Ctrl+O",
        "Open a saved run folder (or a checkpoint file), scrub its timeline and continue it")
    add(file_menu, "follow", "&Follow run…", lambda: follow_run(window), "Ctrl+Shift+O",
        "Show a run that another process (cnnviz train --out) is training into a folder, live")
    add(file_menu, "compare", "&Compare with run…", lambda: compare_with_run(window), "Ctrl+Shift+C",
        "Show a saved run beside this one: side by side at the same step, its curves over these")
    add(file_menu, "add_curves", "Add run to the &curves…", lambda: add_run_to_curves(window), None,
        "Overlay the curves of a saved run (as many as you like)")
    add(file_menu, "save", "&Save run as…", lambda: save_run(window), "Ctrl+S",
        "Save weights, optimizer state, history and recipe")
    export = file_menu.addMenu("&Export")
    add(export, "export_curves_png", "Curves as PNG…", lambda: _export(window, "curves_png"))
    add(export, "export_curves_csv", "Curves as CSV…", lambda: _export(window, "curves_csv"))
    add(export, "export_filters_png", "Filters as PNG…", lambda: _export(window, "filters_png"))
    add(export, "export_maps_png", "Feature maps as PNG…", lambda: _export(window, "maps_png"))
    add(export, "export_confusion_csv", "Confusion matrix as CSV…", lambda: _export(window, "confusion_csv"))
    export.addSeparator()
    add(export, "export_onnx", "Model at the step shown as ONNX…", lambda: _export_run(window, "onnx"), None,
        "The model as the timeline shows it, for Netron or onnxruntime (pixels in [0, 1] in, class scores out)")
    add(export, "export_tensorboard", "Run for TensorBoard…", lambda: _export_run(window, "tensorboard"), None,
        "The run's curves, histograms and filters as TensorBoard event files (tensorboard --logdir FOLDER)")
    add(export, "export_animation", "Run as an animation (GIF or MP4)…", lambda: _export_animation(window), None,
        "How the filters, the feature maps or the curves changed over the run, one frame per stored step")
    file_menu.addSeparator()
    add(file_menu, "quit", "&Quit", window.close, "Ctrl+Q")

    view_menu = bar.addMenu("&View")
    for dock in window.docks.values():
        view_menu.addAction(dock.toggleViewAction())
    view_menu.addSeparator()
    add(view_menu, "reset_layout", "Reset layout", window.reset_layout, tip="Put every panel back where it started")

    help_menu = bar.addMenu("&Help")
    add(help_menu, "shortcuts", "Keyboard shortcuts", lambda: _show_shortcuts(window), "F1")
    add(help_menu, "about", "About cnnviz", lambda: _show_about(window))
    return actions


# -- runs ------------------------------------------------------------------------------------------------
def save_run(window, path: str | None = None) -> bool:
    """Save the current run (asks for a new folder's name when `path` is None; a name ending in .safetensors
    saves the checkpoint alone). False when there is nothing to save."""
    if path is None:
        path, _ = QFileDialog.getSaveFileName(window, "Save run as a folder (with its timeline)", "run",
                                              "cnnviz run folder (*);;Checkpoint only (*.safetensors)")
        if not path:
            return False
    return window.experiment_controller.save_run(path)


def open_run(window) -> None:
    path = QFileDialog.getExistingDirectory(window, "Open run folder")
    if not path:  # or a checkpoint file saved alone
        path, _ = QFileDialog.getOpenFileName(window, "Open run checkpoint", "", RUN_FILTER + ";;All files (*)")
    if path:
        window.open_run(path)


def compare_with_run(window) -> None:
    path = QFileDialog.getExistingDirectory(window, "Compare with run folder")
    if path:
        window.compare_with(path)


def add_run_to_curves(window) -> None:
    path = QFileDialog.getExistingDirectory(window, "Add a run folder's curves")
    if path:
        window.add_run_to_curves(path)


def follow_run(window) -> None:
    path = QFileDialog.getExistingDirectory(window, "Follow run folder (written by cnnviz train --out)")
    if path:
        window.open_run(path, follow=True)


# -- exports ---------------------------------------------------------------------------------------------
_EXPORTS = {
    "curves_png": ("Export curves", "curves.png", "PNG image (*.png)", lambda w, p: w.curves.export_png(p)),
    "curves_csv": ("Export curves", "curves.csv", "CSV (*.csv)", lambda w, p: w.curves.export_csv(p)),
    "filters_png": ("Export filters", "filters.png", "PNG image (*.png)", lambda w, p: w.filters.export_png(p)),
    "maps_png": ("Export feature maps", "feature-maps.png", "PNG image (*.png)",
                 lambda w, p: w.feature_maps.export_png(p)),
    "confusion_csv": ("Export confusion matrix", "confusion.csv", "CSV (*.csv)",
                      lambda w, p: w.evaluation.export_confusion_csv(p)),
}


def export(window: QMainWindow, kind: str, path: str) -> bool:
    """Write one export to `path`; a failure becomes a message, never an exception."""
    title, _, _, write = _EXPORTS[kind]
    try:
        result = write(window, path)
    except (OSError, CnnvizError, ValueError) as exc:
        window.show_message("error", f"{title} failed: {exc}")
        return False
    if result is False:
        window.show_message("warning", f"{title}: nothing to export yet.")
        return False
    window.statusBar().showMessage(f"Wrote {path}", 6000)
    return True


def _export(window: QMainWindow, kind: str) -> None:
    title, default, pattern, _ = _EXPORTS[kind]
    path, _ = QFileDialog.getSaveFileName(window, title, default, pattern)
    if path:
        export(window, kind, path)


def _export_run(window: QMainWindow, kind: str) -> None:
    if kind == "onnx":
        path, _ = QFileDialog.getSaveFileName(window, "Export the model as ONNX", "model.onnx", "ONNX model (*.onnx)")
    else:
        path = QFileDialog.getExistingDirectory(window, "Export for TensorBoard into folder")
    if path:
        window.export_run(kind, path)


def _export_animation(window: QMainWindow) -> None:
    from cnnviz.gui.animation_dialog import AnimationDialog

    window.timeline.refresh()
    timeline = window.timeline.timeline
    stored = len(timeline.keyframe_steps()) if timeline is not None else 0
    if stored < 2:
        window.show_message("warning", "Nothing to animate yet: the run must store the weights of two steps or "
                                       "more. Train a little (or open a run recorded with its timeline).")
        return
    shown = window.session.selected_input
    compared = window.compare.timeline.folder if window.compare.active else None
    dialog = AnimationDialog(stored, shown.label if shown is not None else None,
                             window.compare.name if compared is not None else None, window)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return
    choices = dialog.choices()
    if dialog.side_by_side():
        choices["compare"] = str(compared)
    kind = choices["kind"]
    pattern = "GIF animation (*.gif)" if kind == "gif" else "MP4 video (*.mp4)"
    path, _ = QFileDialog.getSaveFileName(window, "Export the run as an animation",
                                          f"{choices['view']}.{kind}", pattern)
    if path:
        if not path.lower().endswith("." + kind):
            path += "." + kind
        window.export_animation(path, choices)  # the whole window: done when this returns


# -- help ------------------------------------------------------------------------------------------------
def _show_shortcuts(window: QMainWindow) -> None:
    rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS)
    QMessageBox.information(window, "Keyboard shortcuts", f"<table>{rows}</table>")


def _show_about(window: QMainWindow) -> None:
    QMessageBox.about(window, "About cnnviz", (
        f"<h3>cnnviz {__version__}</h3><p>Watch a convolutional neural network learn and look inside it.</p>"
        "<p>Models and recipes from CNTK 103D, a Keras/PyTorch basic CNN post, a CNN-vs-dense exercise, "
        "M. Görner's <i>TensorFlow without a PhD</i> and a Keras six-vs-not-six notebook.</p>"
        "<p>MNIST: Y. LeCun, C. Cortes, C. J. C. Burges (CC BY-SA 3.0). Fashion-MNIST: Zalando Research (MIT).</p>"))
