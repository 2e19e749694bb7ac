"""The window's exports of a run that take a while (ONNX, TensorBoard), in the background with progress and cancel.

The work is the engine's (`cnnviz/exports/`), the same as `cnnviz export`; the window gives it the run folder it
shows and the step on the timeline, and reports what was written.
"""
from __future__ import annotations


def export_run(window, kind: str, path: str, step: int | None = None) -> bool:
    """Start exporting the window's run: "onnx" (the model at `step`, default the step shown) or "tensorboard"
    (its event files into the folder `path`). False when there is nothing to export or another export runs."""
    folder = window.timeline.folder
    if folder is None or not ((folder / "checkpoint.safetensors").is_file() or (folder / "events.jsonl").is_file()):
        window.show_message("warning", "Nothing to export yet: train the model first (or open a run).")
        return False
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
