"""The window's exports of a run that take a while (ONNX, TensorBoard, GIF/MP4), in the background with progress
and cancel.

The work is the engine's (`cnnviz/exports/`), the same as `cnnviz export`; the window gives it the run folder it
shows and the step on the timeline, and reports what was written.
"""
from __future__ import annotations


def _has_run(window) -> bool:
    folder = window.timeline.folder
    if folder is None or not ((folder / "checkpoint.safetensors").is_file() or (folder / "events.jsonl").is_file()):
        window.show_message("warning", "Nothing to export yet: train the model first (or open a run).")
        return False
    return True


def export_animation(window, path: str, choices: dict) -> bool:
    """Start writing the window's run as a GIF or MP4 (`choices` as AnimationDialog.choices gives them: kind,
    view, size, fps, frames, scale and compare, the compared run's folder or None); the feature maps are those
    of the input the window shows. The whole-window view grabs this window at each frame's step, in the GUI
    thread behind a modal progress dialog. False when it cannot start."""
    if not _has_run(window):
        return False
    from cnnviz.errors import CnnvizError
    from cnnviz.exports.animation import AnimationOptions, export_animation as write_animation

    shown = window.session.selected_input
    extra = {}
    if choices["view"] == "feature-maps" and shown is not None:
        extra = {"pixels": shown.pixels.copy(), "pixels_label": shown.label}
    opts = AnimationOptions(run=str(window.timeline.folder), out=path, **choices, **extra)
    notes: list[str] = []

    def said(done) -> str:
        size = f"{done.bytes / 1e6:.1f} MB" if done.bytes >= 1e5 else f"{done.bytes / 1e3:.0f} kB"
        return " ".join([f"Wrote {done.frames:,} frames ({size}) to {done.path}.", *notes])

    if choices["view"] == "window":
        return _export_window_animation(window, opts, notes, said)

    def work(progress, cancel):
        def step(done: int, total: int) -> None:
            if cancel.is_set():
                raise CnnvizError(CANCELLED)
            progress(done, total)

        return said(write_animation(opts, progress=step, note=notes.append))

    return window.exports.start(f"Exporting the run as {choices['kind'].upper()}", work)


CANCELLED = "Animation export cancelled; nothing was written."


def _export_window_animation(window, opts, notes: list[str], said) -> bool:
    """The whole window, grabbed at every frame's step: in the GUI thread (it is the window that draws), with a
    modal progress dialog whose Cancel stops at the next frame."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QProgressDialog

    from cnnviz.errors import CnnvizError
    from cnnviz.exports.animation import export_animation as write_animation
    from cnnviz.exports.plan import RunFigures
    from cnnviz.gui.export_window import WindowFrames

    if window.exports.busy:
        window.show_message("warning", "Another export is still running; wait for it or cancel it.")
        return False
    dialog = QProgressDialog("Exporting the window as an animation", "Cancel", 0, 0, window)
    dialog.setWindowTitle("Exporting the window")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(0)

    def step(done: int, total: int) -> None:
        dialog.setMaximum(max(total, 1))
        dialog.setValue(min(done, max(total, 1)))
        QApplication.processEvents()
        if dialog.wasCanceled():
            raise CnnvizError(CANCELLED)

    try:
        done = write_animation(opts, progress=step, note=notes.append,
                               renderer=lambda timeline, size: WindowFrames(timeline, size, RunFigures(timeline),
                                                                            window=window))
    except CnnvizError as exc:
        if str(exc) == CANCELLED:
            window.statusBar().showMessage(CANCELLED, 6000)
        else:
            window.show_message("error", str(exc))
        return False
    finally:
        dialog.reset()
        dialog.deleteLater()
    window.statusBar().showMessage(said(done), 10000)
    return True


def export_run(window, kind: str, path: str, step: int | None = None) -> bool:
    """Start exporting the window's run: "onnx" (the model at `step`, default the step shown) or "tensorboard"
    (its event files into the folder `path`). False when there is nothing to export or another export runs."""
    if not _has_run(window):
        return False
    folder = window.timeline.folder
    if kind == "onnx":
        from cnnviz.exports.onnx_export import export_onnx

        at = window.shown_step() if step is None else step

        def work(progress, cancel):
            done = export_onnx(folder, path, at, progress=progress, cancel=cancel)
            return f"Wrote the model at step {done.step:,} ({done.source}) to {done.path}"

        return window.exports.start("Exporting the model as ONNX", work)
    if kind == "tensorboard":
        from cnnviz.exports.tensorboard_export import export_tensorboard

        def work(progress, cancel):
            done = export_tensorboard(folder, path, progress=lambda done, total, *_: progress(done, total))
            return (f"Wrote {done.scalars:,} scalars, {done.histograms:,} histograms and {done.images} filter "
                    f"pictures to {done.folder} (tensorboard --logdir {done.logdir})")

        return window.exports.start("Exporting for TensorBoard", work)
    raise ValueError(f"unknown export {kind!r}")
