"""A run's learning process as TensorBoard event files: ``tensorboard --logdir DIR`` then shows it.

What is written, all on the run's step axis (one event a step for the per-step curves):

- scalars: ``train/loss``, ``train/accuracy``, ``train/learning_rate`` every step; ``epoch/train_loss``,
  ``epoch/train_accuracy``, ``epoch/validation_loss``, ``epoch/validation_accuracy`` at each epoch's last
  step; ``test/accuracy`` and ``test/loss`` at every recorded test evaluation; and the layer statistics'
  figures as ``<figure>/<layer>`` (``update_ratio/conv1``, ``dead_fraction/conv1_relu``, ...);
- histograms ``weights/<layer>`` and ``gradients/<layer>`` from every statistics record (its 32 bins from
  low to high, written raw: the values themselves are not recorded, so a histogram's sum and sum of squares
  are estimated from the bins' centres);
- images ``filters/<layer>``: each conv layer's filters in the window's colours at up to 50 stored steps,
  spread evenly on a log scale (the network changes fastest at the start);
- text ``run/description``: the run's model and recipe.

Non-finite values (a diverging run's NaN loss) are left out: TensorBoard cannot draw them. A run without a
timeline (``--no-timeline``, a bare checkpoint) has its curves in its checkpoint, but no statistics: its
export has the scalars and the filters of its last step, and says so.

The files go into ``DIR/<run name>/``, so several runs exported into one DIR are compared side by side;
exporting a run again replaces its event files there (they are written aside first, then moved in).

Writer: tensorboardX (an 88 kB wheel needing only protobuf, plus pillow for the images), not
``torch.utils.tensorboard``, which needs the whole tensorboard package (44 MB of wheels with grpcio and
its web server) only to write files. Its FileWriter and summary builders are used (not SummaryWriter's
``add_*``), so that all the scalars of a step are one event.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnviz.exports.onnx_export import run_name
from cnnviz.exports.outputs import ExportError, need, output_folder, reason

MAX_PICTURES = 50
STAT_SCALARS = ("weight_norm", "grad_norm", "update_ratio", "dead_fraction", "saturated_fraction",
                "activation_mean", "activation_std")
HISTOGRAMS = (("weight_hist", "weights"), ("grad_hist", "gradients"))
EVENT_FILES = "events.out.tfevents.*"

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class TensorBoardExport:
    """What :func:`export_tensorboard` wrote into `folder` (``logdir/<run name>``)."""

    folder: Path
    logdir: Path
    scalars: int = 0
    histograms: int = 0
    images: int = 0
    notes: list[str] = field(default_factory=list)


def requirements() -> None:
    """Raise ExportError (naming what to install) when the TensorBoard export cannot run here."""
    need("the TensorBoard export", ("tensorboardX", "tensorboardX"), ("PIL", "pillow"))


def export_tensorboard(run, logdir, max_pictures: int = MAX_PICTURES, progress: Progress | None = None
                       ) -> TensorBoardExport:
    """Write the event files of `run` (a run folder or checkpoint file) into ``logdir/<run name>/``."""
    from cnnviz.timeline.reader import RunTimeline

    requirements()
    logdir = output_folder(logdir, "the TensorBoard folder")
    timeline = RunTimeline.open(run)
    name = run_name(run)
    result = TensorBoardExport(logdir / name, logdir)
    aside = None
    try:
        aside = Path(tempfile.mkdtemp(prefix=f".{name}.export-", dir=logdir))  # written aside, then moved in
        _write(aside, timeline, result, max_pictures, progress)
        _move_in(aside, result.folder)
    except OSError as exc:
        raise ExportError(f"cannot write the TensorBoard files into {logdir}: {reason(exc)}") from None
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    if not timeline.has_timeline:
        result.notes.append("this run has no timeline (trained with --no-timeline, or a bare checkpoint): the "
                            "weight and gradient histograms need one, and the filters are shown at its last "
                            "step only")
    elif not timeline.stats:
        result.notes.append("this run recorded no layer statistics: there are no histograms")
    return result


def _write(folder: Path, timeline, result: TensorBoardExport, max_pictures: int, progress: Progress | None) -> None:
    # tensorboardX's FileWriter and summary builders rather than SummaryWriter.add_scalar: a step's scalars go
    # out as one event, which writes a long run in a third of the time (60,000 steps: 12 s of CPU, not 31 s).
    from tensorboardX import FileWriter
    from tensorboardX import summary as build

    later = _by_step(timeline, max_pictures)  # step -> what is written at that step besides the step's curves
    history = timeline.history
    curves = (("train/loss", history.step_loss.values), ("train/accuracy", history.step_accuracy.values),
              ("train/learning_rate", history.step_lr.values))
    steps = sorted(set(range(1, history.steps + 1)) | set(later))
    last = steps[-1] if steps else 0
    writer = FileWriter(str(folder), max_queue=1000, flush_secs=3600)
    try:
        text = _description(timeline)
        if text:
            writer.add_summary(build.text("run/description", text), 0)
        for step in steps:  # in step order, as a training job writes them
            scalars = [(tag, values[step - 1]) for tag, values in curves] if 1 <= step <= history.steps else []
            for kind, item in later.get(step, ()):
                if kind == "scalar":
                    scalars.append(item)
                elif kind == "stats":
                    scalars.extend(_stats(writer, build, item, step, result))
                else:
                    _pictures(writer, build, timeline, step, result)
            if scalars:
                result.scalars += _scalars(writer, scalars, step)
            if progress is not None and (step % 2000 == 0 or step == last):  # (every step has its curves)
                progress("writing TensorBoard events", step, last)
    finally:
        writer.close()


def _by_step(timeline, max_pictures: int) -> dict[int, list[tuple[str, object]]]:
    """What is written at each step besides its curves: epoch figures, test evaluations, statistics, filters.
    A record whose step is not one of the run's (a damaged line) is left out."""
    later: dict[int, list[tuple[str, object]]] = defaultdict(list)
    last = max(timeline.history.steps, timeline.last_step)

    def add(step, kind: str, item) -> None:
        if isinstance(step, (int, np.integer)) and not isinstance(step, bool) and 0 <= step <= last:
            later[int(step)].append((kind, item))

    for e in timeline.history.epochs:
        for tag, value in (("epoch/train_loss", e.train_loss), ("epoch/train_accuracy", e.train_accuracy),
                           ("epoch/validation_loss", e.val_loss), ("epoch/validation_accuracy", e.val_accuracy)):
            add(e.step, "scalar", (tag, value))
    for step, event in sorted(timeline.evaluations.items()):
        add(step, "scalar", ("test/accuracy", event.get("accuracy")))
        add(step, "scalar", ("test/loss", event.get("loss")))
    for record in timeline.stats:
        add(record.get("step"), "stats", record["layers"])
    for step in spread(timeline.keyframe_steps(), max_pictures):
        add(step, "pictures", None)
    return later


def _scalars(writer, scalars: list[tuple[str, object]], step: int) -> int:
    """Write the finite ones of `scalars` ((tag, value) pairs) as one event at `step`; returns how many."""
    from tensorboardX.proto.summary_pb2 import Summary

    values = [Summary.Value(tag=tag, simple_value=float(v)) for tag, v in scalars
              if isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v)]
    if values:
        writer.add_summary(Summary(value=values), step)
    return len(values)


def _stats(writer, build, layers: dict, step: int, result: TensorBoardExport) -> list[tuple[str, object]]:
    """Write a statistics record's histograms; returns its scalar figures as (tag, value) pairs."""
    scalars = []
    for layer, figures in layers.items():
        if not isinstance(figures, dict):
            continue
        scalars.extend((f"{key}/{layer}", figures.get(key)) for key in STAT_SCALARS)
        for key, prefix in HISTOGRAMS:
            raw = _raw_histogram(figures.get(key))
            if raw is not None:
                writer.add_summary(build.histogram_raw(f"{prefix}/{layer}", **raw), step)
                result.histograms += 1
    return scalars


def _raw_histogram(h) -> dict | None:
    """A recorded histogram (``counts`` of equal bins from ``low`` to ``high``) as TensorBoard's raw
    histogram; None for an empty or damaged one."""
    try:
        counts = np.asarray(h["counts"], np.float64).reshape(-1)
        low, high = float(h["low"]), float(h["high"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if counts.size == 0 or not (np.isfinite(counts).all() and math.isfinite(low) and math.isfinite(high)) \
            or high < low or counts.sum() <= 0:
        return None
    edges = np.linspace(low, high, counts.size + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    # TensorBoard reads bucket i as (limit[i-1], limit[i]], the first from `min`, the last up to `max`.
    return {"min": low, "max": high, "num": int(counts.sum()), "sum": float((counts * centres).sum()),
            "sum_squares": float((counts * centres ** 2).sum()), "bucket_limits": edges[1:].tolist(),
            "bucket_counts": counts.tolist()}


def _pictures(writer, build, timeline, step: int, result: TensorBoardExport) -> None:
    from cnnviz.errors import CnnvizError
    from cnnviz.exports.pictures import filter_picture

    try:
        weights = timeline.weights(step)
    except CnnvizError as exc:
        result.notes.append(f"the weights of step {step} could not be read ({exc}); no filters at that step")
        return
    first = True
    for key, w in weights.items():
        if key.endswith(".weight") and np.ndim(w) == 4 and 0 not in np.shape(w):  # a conv layer's filters
            layer = key.split(".")[-2]
            colour = first and np.shape(w)[1] == 3  # the first conv of a colour model sees red, green and blue
            picture = filter_picture(w, colour=colour)
            writer.add_summary(build.image(f"filters/{layer}", picture, dataformats="HWC"), step)
            result.images += 1
            first = False


def _description(timeline) -> str:
    """The run's model and recipe as Markdown (empty for a run without a run.json)."""
    header = timeline.header if isinstance(timeline.header, dict) else {}
    keep = {k: header[k] for k in ("name", "spec", "recipe", "class_names", "normalization", "params", "device",
                                   "versions") if k in header}
    return "```\n" + json.dumps(keep, indent=2) + "\n```" if keep else ""


def spread(steps, n: int) -> list[int]:
    """At most `n` of `steps`, evenly spread on a log scale, the first and the last always among them."""
    steps = sorted({int(s) for s in steps})
    if len(steps) <= n:
        return steps
    logs = np.log1p(np.asarray(steps, np.float64))
    targets = np.linspace(logs[0], logs[-1], max(n, 2))
    nearest = np.abs(logs[None, :] - targets[:, None]).argmin(axis=1)
    return [steps[i] for i in np.unique(nearest)]


def _move_in(aside: Path, folder: Path) -> None:
    """Replace the event files of an earlier export in `folder` by the new ones in `aside`."""
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder} is a file; the TensorBoard export of this run goes into a folder of that name")
    folder.mkdir(exist_ok=True)
    for old in folder.glob(EVENT_FILES):
        old.unlink()
    for new in aside.glob(EVENT_FILES):
        os.replace(new, folder / new.name)
