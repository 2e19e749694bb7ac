"""Memory over a long run with every view live, and whether the window keeps up with the messages.

    python bench/bench_memory.py [--epochs 30] [--preset gorner-dropout] [--no-write]

The real window (cnnviz.app.create_window) on the embedded sample, the curves, draw, filters,
feature maps and evaluation docks all visible, a digit drawn, "Show in feature maps" on, trains
`--epochs` epochs (every epoch ends with a validation-free test evaluation the views all show).
RSS (psutil if installed, else /proc/PID/status VmRSS) of the window process and of the training
child is sampled every 0.5 s. Message backlog: every message the window's training thread emits is
counted where it is emitted (a direct connection, in that thread) and where the window handles it (in
the GUI thread); the difference is the number of messages queued and not yet handled. Targets
(issue 4): RSS grows < 50 MB over the run; the queue stays bounded (it never grows with time).
Writes the "perf-memory" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import gc
import time

from bench_common import child_pids, load_average, load_note, rss_mb, setup_env

setup_env()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--preset", default="gorner-dropout")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    from PySide6.QtCore import QObject, Qt, QTimer, Slot

    from bench_common import draw_digit, qapp, show_every_live_view, spin, spin_until

    qapp()
    from _report import machine, today, write_section
    from cnnviz.app import create_window, freeze_startup_objects
    from cnnviz.training.messages import FINISHED

    load0 = load_average()
    w = create_window([])
    freeze_startup_objects()  # as `cnnviz` (run_app) does after start-up
    w.confirm = lambda *_: True
    w.apply_preset(args.preset)
    spin_until(lambda: not w.loader.busy, 60)
    layout = show_every_live_view(w)
    w.draw.feature_maps_check.setChecked(True)
    draw_digit(w.draw.canvas)
    w.apply_recipe(w.session.recipe.replace(train__epochs=args.epochs))
    spin(1.0)
    gc.collect()
    before = rss_mb()

    counts = {"emitted": 0, "handled": 0}
    samples: list[dict] = []  # t, gui, child, backlog, epoch

    def count_emitted(message) -> None:  # runs in the training thread (direct connection)
        counts["emitted"] += 1

    class Handled(QObject):
        @Slot(object)
        def on_message(self, message) -> None:  # runs in the GUI thread (queued connection)
            counts["handled"] += 1

    handled = Handled()
    t0 = time.perf_counter()

    def sample() -> None:
        kids = child_pids()
        samples.append({"t": time.perf_counter() - t0, "gui": rss_mb(),
                        "child": sum(rss_mb(p) for p in kids) if kids else 0.0,
                        "backlog": counts["emitted"] - counts["handled"],
                        "epoch": len(w.session.history.epochs)})

    sampler = QTimer()
    sampler.setInterval(500)
    sampler.timeout.connect(sample)
    pauses: list[tuple[int, float]] = []  # (generation, ms) of every garbage collection during the run
    gc_started = [0.0]

    def on_gc(phase, info) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], (time.perf_counter() - gc_started[0]) * 1e3))

    gc.callbacks.append(on_gc)
    w.train()
    worker = w.controller._worker  # the bench looks inside: count at both ends of the queued signal
    worker.message_received.connect(count_emitted, Qt.ConnectionType.DirectConnection)
    worker.message_received.connect(handled.on_message)
    sampler.start()
    ok = spin_until(lambda: not w.controller.active, 1800, step=0.1)
    sampler.stop()
    gc.callbacks.remove(on_gc)
    seconds = time.perf_counter() - t0
    spin(1.0)
    gc.collect()
    after = rss_mb()
    result = w.controller.last_result
    epochs = len(w.session.history.epochs)
    w.close()
    if not ok or result is None or result.status != FINISHED:
        print(f"WARNING: the run did not finish cleanly: {result}")

    def at_epoch(k: int) -> dict:
        return next((s for s in samples if s["epoch"] >= k), samples[-1])

    early = at_epoch(min(5, epochs))
    late = samples[-1]
    child = [s["child"] for s in samples if s["child"] > 0]
    backlogs = [s["backlog"] for s in samples]
    half = len(backlogs) // 2
    growth = after - before
    steady = late["gui"] - early["gui"]
    child_growth = (child[-1] - at_epoch(min(5, epochs))["child"]) if child else float("nan")
    note = load_note(load0)
    lines = [
        f"window process RSS: {before:.0f} MB before the run, {early['gui']:.0f} MB at epoch {early['epoch']}, "
        f"{late['gui']:.0f} MB at the end, {after:.0f} MB after; growth over the run {growth:+.1f} MB "
        f"(target < 50: {'ok' if growth < 50 else 'MISS'}), from epoch {early['epoch']} on {steady:+.1f} MB",
        f"training child RSS: {child[0] if child else float('nan'):.0f} MB first sample, "
        f"{max(child) if child else float('nan'):.0f} MB peak, from epoch {early['epoch']} to the end "
        f"{child_growth:+.1f} MB",
        f"messages: {counts['emitted']} emitted by the training thread, {counts['handled']} handled by the window; "
        f"queued and not yet handled: max {max(backlogs) if backlogs else 0} (first half of the run "
        f"{max(backlogs[:half] or [0])}, second half {max(backlogs[half:] or [0])}), at the end "
        f"{counts['emitted'] - counts['handled']}",
        f"{epochs} epochs in {seconds:.0f} s ({result.status if result else 'no result'})",
        "garbage collections in the window process during the run: " + ", ".join(
            f"generation {g}: {sum(1 for k, _ in pauses if k == g)} (longest "
            f"{max([d for k, d in pauses if k == g] or [0]):.1f} ms)" for g in (0, 1, 2)),
    ]
    for line in lines:
        print(line)
    print(note)
    if args.no_write:
        return 0
    body = "\n".join([
        "### Memory and message backlog (`python bench/bench_memory.py`)",
        "",
        f"{today()}, {machine()}. The real window on the embedded sample, `{args.preset}`, {args.epochs} epochs, "
        f"all live views visible, a digit drawn and shown in the feature maps; RSS sampled every 0.5 s "
        f"({'psutil' if _has_psutil() else '/proc/PID/status VmRSS'}). Layout: {layout}.",
        "",
        *[f"- {line}" for line in lines],
        "",
        f"The queue stays bounded because the child sends metrics at most {1 / _interval('metrics_interval'):.0f} "
        f"times a second and a weight snapshot at most {1 / _interval('snapshot_interval'):.0f} times a second, "
        "and only after the window acknowledged the previous one.",
        "",
        note + ".",
    ])
    write_section("perf-memory", body)
    return 0


def _interval(name: str) -> float:
    from cnnviz.training.runner import TrainingJob

    return TrainingJob.__dataclass_fields__[name].default


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
