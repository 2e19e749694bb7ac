"""Redraw cost of the heavy views: curves with 1,000,000 steps, a 256-map feature-map layer, 256 filters.

    python bench/bench_views.py [--frames 40] [--no-write]

Each view is shown offscreen at a realistic dock size. A "frame" is what happens while training:
curves: 25 new steps arrive (one 20 Hz StepBatch at 500 steps/s) and the view redraws; feature maps /
filters: new weights arrive and the view recomputes and redraws. Every frame is timed from the call
to the end of the paint (the event loop is run until the paint is done; paints are counted to make
sure they happened). Targets (issue 4): curves < 30 ms per frame, a 256-map feature-map update < 10 ms.
Writes the "perf-views" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import time

from bench_common import load_average, load_note, median, ok, pct, qapp, setup_env, spin

setup_env()

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QObject  # noqa: E402

from _report import machine, today, write_section  # noqa: E402


class PaintCounter(QObject):
    """Counts paint events of the widgets it is installed on."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def timed_frames(frames: int, work, counter: PaintCounter) -> dict:
    """Run `work()` then the event loop until painted, `frames` times; ms per frame (update, paint, total)."""
    app = qapp()
    update, paint, total, painted = [], [], [], 0
    for _ in range(frames):
        before = counter.count
        t0 = time.perf_counter()
        work()
        t1 = time.perf_counter()
        app.processEvents()  # the paint the update scheduled (offscreen backing store)
        t2 = time.perf_counter()
        painted += counter.count > before
        update.append((t1 - t0) * 1e3)
        paint.append((t2 - t1) * 1e3)
        total.append((t2 - t0) * 1e3)
    return {"update": median(update), "paint": median(paint), "total": median(total), "p90": pct(total, 90),
            "painted": painted, "frames": frames}


def session_for(spec, sample):
    from cnnviz.gui.session import Session
    from cnnviz.presets import get_preset

    s = Session(spec, get_preset("gorner").recipe)
    s.set_data(sample)
    return s


def bench_curves(sample, frames: int) -> dict:
    from cnnviz.gui.widgets.curves_view import CurvesView
    from cnnviz.presets import get_preset
    from cnnviz.training.history import History
    from cnnviz.training.messages import EpochMetrics, StepBatch, StepMetrics

    n, per_epoch = 1_000_000, 10_000
    rng = np.random.default_rng(0)
    steps = np.arange(1, n + 1)
    loss = (2.3 * np.exp(-steps / 2e5) + 0.2 * rng.random(n)).astype(np.float32)
    acc = np.clip(1 - loss / 2.5, 0, 1).astype(np.float32)
    lr = (1e-4 + 3e-3 * np.exp(-steps / 2e5)).astype(np.float32)
    epochs = [EpochMetrics(e + 1, 0.3, 0.9, 0.35, 0.88, 1e-3, 10.0, 1e3) for e in range(n // per_epoch)]
    session = session_for(get_preset("gorner").spec, sample)
    view = CurvesView(session)
    view.resize(900, 640)
    view.show()
    spin(0.2)
    t0 = time.perf_counter()
    session.reset_history(History.restore({"step_loss": loss, "step_accuracy": acc, "step_lr": lr},
                                          [e.__dict__ for e in epochs], [0.9] * len(epochs)))
    load_s = time.perf_counter() - t0
    spin(0.3)
    counter = PaintCounter()
    for plot in (view.loss_plot, view.accuracy_plot, view.lr_plot):
        plot.viewport().installEventFilter(counter)
    state = {"step": n}
    k = 25

    def frame():
        first = state["step"] + 1
        state["step"] += k
        latest = StepMetrics(state["step"], 101, 200, 1, per_epoch, 0.1, 0.95, 1e-4, 5e3, 10.0, 100.0)
        session.add_steps(StepBatch(first, loss[-k:], acc[-k:], lr[-k:], latest))
        view._timer.stop()  # what the coalescing timer would run 50 ms later, run now to time it
        view._redraw()

    timed_frames(5, frame, counter)  # warm-up
    result = timed_frames(frames, frame, counter)
    result["load_s"] = load_s
    result["drawn_points"] = len(view._loss.getData()[0])
    view.close()
    return result


def bench_maps(sample, frames: int) -> dict:
    from cnnviz.gui.widgets.feature_maps_view import FeatureMapsView
    from cnnviz.gui.widgets.colormaps import lut_for
    from cnnviz.inspect.activations import feature_maps
    from cnnviz.inspect.mosaic import activation_mosaic
    from cnnviz.models import ModelSpec, conv, dense, maxpool
    from cnnviz.training.messages import WeightsSnapshot

    spec = ModelSpec((conv(256, 5, 1, "same"), maxpool(2), dense(10)))
    session = session_for(spec, sample)
    view = FeatureMapsView(session)
    view.resize(760, 560)
    view.show()
    spin(0.3)
    counter = PaintCounter()
    act = next(a for a in feature_maps(session.model, session.to_tensor(session.selected_input.pixels))
               if a.shape[0] == 256 and len(a.shape) == 3)
    canvas = view.canvas_for(act.name)
    canvas.viewport().installEventFilter(counter)
    layers = len(view.layer_titles())

    def layer_update():  # the 256-map layer alone: mosaic of the activation, colouring, setImage
        mosaic = activation_mosaic(act)
        lut, levels = lut_for(mosaic.signed)
        canvas.set_mosaic(mosaic, lut, levels, view._mask(act))

    state = session.model.state_dict()
    snap = WeightsSnapshot(1, 0, {k: v.numpy().copy() for k, v in state.items()})

    def full_refresh():  # what new weights cause: load them, forward pass, every layer's mosaic
        session.apply_snapshot(snap)
        view._timer.stop()
        view._refresh()

    timed_frames(3, layer_update, counter)
    layer = timed_frames(frames, layer_update, counter)
    timed_frames(3, full_refresh, counter)
    full = timed_frames(frames, full_refresh, counter)
    result = {"layer": layer, "full": full, "shape": act.shape, "layers": layers,
              "mosaic": tuple(canvas.mosaic.image.shape), "zoom": canvas.zoom}
    view.close()
    return result


def bench_filters(sample, frames: int, spec, label: str) -> dict:
    from cnnviz.gui.widgets.filters_view import FiltersView
    from cnnviz.training.messages import WeightsSnapshot

    session = session_for(spec, sample)
    view = FiltersView(session)
    view.resize(760, 560)
    view.show()
    spin(0.3)
    counter = PaintCounter()
    name = view.layer_names()[-1]
    view.canvas_for(name).viewport().installEventFilter(counter)
    state = session.model.state_dict()
    snap = WeightsSnapshot(1, 0, {k: v.numpy().copy() for k, v in state.items()})

    def refresh():
        session.apply_snapshot(snap)
        view._timer.stop()
        view._refresh()

    timed_frames(3, refresh, counter)
    result = timed_frames(frames, refresh, counter)
    w = dict((n, w) for n, w in __import__("cnnviz.inspect.filters", fromlist=["conv_weights"])
             .conv_weights(session.model))
    result["label"] = label
    result["shapes"] = [tuple(v.shape) for v in w.values()]
    view.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="timed frames per measurement")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    app = qapp()
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k")
    import torch

    torch.set_num_threads(1)  # as the window does
    from cnnviz.config import DataConfig
    from cnnviz.data.prepare import load_data
    from cnnviz.models import ModelSpec, conv, dense, maxpool
    from cnnviz.presets import get_preset

    sample = load_data(DataConfig(validation="none"))
    load0 = load_average()
    curves = bench_curves(sample, args.frames)
    print(f"curves, 1,000,000 steps x 5 curves + 100 epochs of markers ({curves['drawn_points']:,} points drawn "
          f"per curve): {curves['total']:.1f} ms per frame (median; p90 {curves['p90']:.1f}; update "
          f"{curves['update']:.1f} + paint {curves['paint']:.1f}); target < 30 ms: {ok(curves['total'], 30)}; "
          f"painted {curves['painted']}/{curves['frames']}; loading the history {curves['load_s']:.2f} s", flush=True)
    maps = bench_maps(sample, args.frames)
    lay, full = maps["layer"], maps["full"]
    print(f"feature maps, one {'x'.join(map(str, maps['shape']))} layer as one {maps['mosaic'][1]}x{maps['mosaic'][0]} "
          f"mosaic at zoom {maps['zoom']}: {lay['total']:.1f} ms per update (median; p90 {lay['p90']:.1f}; "
          f"update {lay['update']:.1f} + paint {lay['paint']:.1f}); target < 10 ms: {ok(lay['total'], 10)}; "
          f"painted {lay['painted']}/{lay['frames']}", flush=True)
    print(f"feature maps, whole view ({maps['layers']} layers, forward pass included): {full['total']:.1f} ms "
          f"(p90 {full['p90']:.1f})", flush=True)
    filters = [bench_filters(sample, args.frames, ModelSpec((conv(256, 5, 1, "same"), maxpool(2), dense(10))),
                             "256 filters of 5x5"),
               bench_filters(sample, args.frames, get_preset("basic-cnn").spec, "basic-cnn preset")]
    for f in filters:
        print(f"filters, {f['label']} {f['shapes']}: {f['total']:.1f} ms per refresh (median; p90 {f['p90']:.1f}; "
              f"update {f['update']:.1f} + paint {f['paint']:.1f}); painted {f['painted']}/{f['frames']}", flush=True)
    note = load_note(load0)
    print(note)
    if args.no_write:
        return 0
    rows = [
        f"| curves: 1,000,000 steps (5 curves) + 100 epoch markers, 25 new steps per frame | {curves['total']:.1f} "
        f"({curves['update']:.1f} + {curves['paint']:.1f}) | {curves['p90']:.1f} | < 30 | {ok(curves['total'], 30)} |",
        f"| feature maps: one {'x'.join(map(str, maps['shape']))} layer (one mosaic image) | {lay['total']:.1f} "
        f"({lay['update']:.1f} + {lay['paint']:.1f}) | {lay['p90']:.1f} | < 10 | {ok(lay['total'], 10)} |",
        f"| feature maps: whole view, {maps['layers']} layers incl. forward pass | {full['total']:.1f} "
        f"({full['update']:.1f} + {full['paint']:.1f}) | {full['p90']:.1f} | - | - |",
    ]
    for f in filters:
        rows.append(f"| filters: {f['label']} {', '.join('x'.join(map(str, s)) for s in f['shapes'])} | "
                    f"{f['total']:.1f} ({f['update']:.1f} + {f['paint']:.1f}) | {f['p90']:.1f} | - | - |")
    body = "\n".join([
        "### Views: redraw cost (`python bench/bench_views.py`)",
        "",
        f"{today()}, {machine()}. Offscreen Qt, views at dock size (curves 900x640, maps/filters 760x560). "
        f"Median of {args.frames} frames; a frame is the update the view does while training plus the paint "
        "it schedules (event loop run until painted).",
        "",
        "| view | ms per frame, median (update + paint) | p90 | target | |",
        "|---|---|---|---|---|",
        *rows,
        "",
        note + ".",
    ])
    write_section("perf-views", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
