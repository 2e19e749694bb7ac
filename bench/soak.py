"""Soak: the real window trains for a set time with every live view on screen; does anything pile up?

    python bench/soak.py [--minutes 30] [--preset gorner] [--data-dir PATH/TO/mnist] [--no-write]

The window (cnnviz.app.create_window, offscreen unless QT_QPA_PLATFORM says otherwise) with curves,
evaluation, draw, feature maps and filters all visible (bench_common.show_every_live_view), training one
long run on the embedded sample (an epoch and its evaluation every ~40 batches) or an IDX folder. Every
10 s a digit is drawn on the canvas with "Show in feature maps" on, and every 30 s another test image is
picked, so every view keeps working. It measures:

- RSS of the window process and of the training process, after a warm-up (10% of the run, at least
  1 min, at most half of it) and at the end; the window's growth is compared with what its history
  legitimately holds (every step's loss, accuracy and learning rate, kept for the curves).
- Messages queued between the training thread and the window: emitted minus handled, its maximum
  (the "backlog"). It must stay bounded (the child throttles and waits for snapshot acknowledgements).
- Frames late: a 60 Hz precise QTimer in the window's thread; a tick more than 50 ms after the previous
  one is a late frame (a visible hitch), more than 200 ms a stall.

Prints a summary and appends one row to the soak table of docs/reliability.md (unless --no-write).
Pass: window RSS growth beyond its history data < 50 MB, backlog bounded (< 1,000 messages), no stall
over 1 s.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (child_pids, draw_digit, load_average, load_note, rss_mb, setup_env,  # noqa: E402
                          show_every_live_view, spin, spin_until)

setup_env()

DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
SECTION = "## Soak runs"
FRAME_MS = 16
LATE_MS, STALL_MS = 50.0, 200.0
BYTES_PER_STEP = 6 * 8 * 2  # the one history: loss, accuracy, lr, 2 moving averages, step numbers (float64, doubling)


class Meter:
    """Counts messages from the training thread, and ticks of a timer in the window's thread."""

    def __init__(self) -> None:
        from PySide6.QtCore import QObject, Qt, QTimer, Slot

        meter = self

        class Handled(QObject):  # lives in the window's thread: its slot runs when the message is handled
            @Slot(object)
            def on_message(self, _message) -> None:
                meter.handled += 1

        self.emitted = self.handled = self.max_backlog = 0
        self._lock = threading.Lock()
        self._handled = Handled()
        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self._queued = Qt.ConnectionType.QueuedConnection
        self._direct = Qt.ConnectionType.DirectConnection

    def attach(self, worker) -> None:
        """Count `worker`'s messages: when sent (its thread) and when the window got to them."""
        worker.message_received.connect(self._on_emitted, self._direct)
        worker.message_received.connect(self._handled.on_message, self._queued)

    def _on_emitted(self, _message) -> None:  # the training thread
        with self._lock:
            self.emitted += 1
            self.max_backlog = max(self.max_backlog, self.emitted - self.handled)

    def gaps_ms(self) -> list[float]:
        return [(b - a) * 1e3 for a, b in zip(self.ticks, self.ticks[1:])]


def append_row(row: str, header: str) -> None:
    """Add `row` to the table of the soak section of docs/reliability.md (section created if missing)."""
    text = DOC.read_text() if DOC.exists() else "# Reliability\n"
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(SECTION))
    except StopIteration:
        lines += ["", SECTION, "", header, "|" + "---|" * (header.count("|") - 1)]
        start = len(lines) - 4
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    table = [i for i in range(start, end) if lines[i].startswith("|")]
    if not table:
        lines[end:end] = [header, "|" + "---|" * (header.count("|") - 1)]
        table = [end, end + 1]
    lines.insert(table[-1] + 1, row)
    DOC.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to train (default 30)")
    parser.add_argument("--preset", default="gorner", help="preset to train (default gorner)")
    parser.add_argument("--data-dir", help="an MNIST IDX folder instead of the embedded sample")
    parser.add_argument("--no-write", action="store_true", help="do not append to docs/reliability.md")
    args = parser.parse_args()

    from cnnviz.app import create_window

    load_before = load_average()
    window = create_window([])
    window.confirm = lambda *a: True
    layout = show_every_live_view(window)
    if args.preset != window.preset_name:
        window.apply_preset(args.preset)
    if args.data_dir:
        window.request_dataset("mnist", args.data_dir)
    spin_until(lambda: not window.loader.busy, 120)
    window.session.set_recipe(window.session.recipe.replace(train__epochs=100_000))
    window.draw.feature_maps_check.setChecked(True)

    meter = Meter()
    meter.timer.start()
    window.train()
    meter.attach(window.controller._worker)
    if not spin_until(lambda: len(window.session.history.step_loss) > 0, 120):
        print("training did not start", file=sys.stderr)
        return 1

    seconds = args.minutes * 60.0
    warmup = min(max(60.0, 0.1 * seconds), 0.5 * seconds)
    started = time.monotonic()
    samples = []  # (seconds, window RSS, child RSS, steps)
    next_draw = next_pick = next_sample = 0.0
    picks = 0
    while (now := time.monotonic() - started) < seconds:
        if now >= next_sample:
            child = child_pids()
            samples.append((now, rss_mb(), rss_mb(child[0]) if child else float("nan"),
                            len(window.session.history.step_loss)))
            next_sample += 10.0
        if now >= next_draw:
            window.draw.canvas.clear()
            draw_digit(window.draw.canvas)
            next_draw += 10.0
        if now >= next_pick:
            picks += 1
            window.session.select_test_image(picks * 37 % len(window.session.data.test))
            next_pick += 30.0
        spin(0.25)
        if window.trainer_state() not in ("running", "paused"):
            print(f"the run ended early: {window.trainer_state()} {window.banner.text()}", file=sys.stderr)
            break
    elapsed = time.monotonic() - started
    child = child_pids()
    end = (elapsed, rss_mb(), rss_mb(child[0]) if child else float("nan"), len(window.session.history.step_loss))
    meter.timer.stop()
    window.stop()
    spin_until(lambda: not window.controller.active, 60)
    state, epochs = window.trainer_state(), len(window.session.history.epochs)
    window.close()

    base = next((s for s in samples if s[0] >= warmup), samples[0])
    gaps = meter.gaps_ms()
    late = sum(g > LATE_MS for g in gaps)
    stalls = sum(g > STALL_MS for g in gaps)
    worst = max(gaps) if gaps else float("nan")
    steps = end[3]
    data_mb = (steps - base[3]) * BYTES_PER_STEP / 1e6
    growth = end[1] - base[1]
    child_growth = end[2] - base[2]
    passed = growth - data_mb < 50 and meter.max_backlog < 1000 and worst < 1000 and state == "stopped"
    data = "sample" if not args.data_dir else "MNIST"
    print(f"soak: {elapsed / 60:.1f} min, preset {args.preset} on {data}, {steps:,} steps, {epochs} epochs, "
          f"final state {state}")
    print(f"  layout: {layout}")
    print(f"  window RSS {base[1]:.0f} MB at {base[0]:.0f} s -> {end[1]:.0f} MB at the end ({growth:+.1f} MB; "
          f"history of {steps - base[3]:,} more steps accounts for ~{data_mb:.1f} MB); at start {samples[0][1]:.0f} MB")
    print(f"  training process RSS {base[2]:.0f} -> {end[2]:.0f} MB ({child_growth:+.1f} MB)")
    print(f"  messages: {meter.emitted:,} sent, {meter.handled:,} handled, max backlog {meter.max_backlog}")
    print(f"  frames: {len(gaps):,} ticks of {FRAME_MS} ms, {late} late (> {LATE_MS:.0f} ms), {stalls} stalls "
          f"(> {STALL_MS:.0f} ms), worst gap {worst:.0f} ms")
    print(f"  {load_note(load_before)}")
    print(f"  verdict: {'PASS' if passed else 'FAIL'}")
    if not args.no_write:
        header = ("| date | minutes | preset / data | steps (epochs) | window RSS after warm-up -> end | "
                  "training process RSS | max backlog | frames late / ticks (worst) | load (1 min) | verdict |")
        row = (f"| {time.strftime('%Y-%m-%d')} | {elapsed / 60:.1f} | {args.preset} / {data} | {steps:,} ({epochs}) | "
               f"{base[1]:.0f} -> {end[1]:.0f} MB ({growth:+.1f}; history ~{data_mb:.1f}) | "
               f"{base[2]:.0f} -> {end[2]:.0f} MB ({child_growth:+.1f}) | {meter.max_backlog} | "
               f"{late} / {len(gaps):,} ({worst:.0f} ms) | {load_before[0]:.1f} -> {load_average()[0]:.1f} | "
               f"{'pass' if passed else 'FAIL'} |")
        append_row(row, header)
        print(f"  appended to {DOC}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
