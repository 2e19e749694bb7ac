"""Two runs training side by side in the window (issue 14): how smooth the window stays, and how fast each trains.

    python bench/bench_compare.py [--data-dir PATH/TO/mnist] [--preset gorner-dropout] [--seconds 20] [--no-write]

The real window with every live view and the compare dock visible. First run A trains alone for `--seconds`
(its images/s from the training process's own StepMetrics, after a warm-up); then A and a variant B (ReLU vs
sigmoid) train side by side on identical batches for as long, each measured the same way, while a 100 Hz timer
measures the event loop's lateness. Targets: lateness p99 <= 17 ms while both train; each run >= 0.45x of A
alone on 2 cores (>= 0.9x of its fair share). Writes the "compare" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import sys

from bench_common import load_average, load_note, pct, setup_env, show_every_live_view, spin

setup_env()


def rate_of(session, seconds: float, probe=None) -> tuple[float, list[float]]:
    """Images/s a session's run makes over `seconds` (from its StepMetrics), and the lateness meanwhile."""
    seen = []
    session.steps_added.connect(lambda batch: seen.append((batch.latest.step, batch.latest.elapsed_seconds)))
    spin(3.0)  # warm-up
    seen.clear()
    lateness = probe.run(seconds) if probe is not None else (spin(seconds) or [])
    if len(seen) < 2:
        return float("nan"), lateness
    (s0, t0), (s1, t1) = seen[0], seen[-1]
    return (s1 - s0) * session.recipe.train.batch_size / max(t1 - t0, 1e-9), lateness


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--preset", default="gorner-dropout")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from _report import machine, today, write_section
    from bench_common import qapp
    from PySide6.QtCore import Qt
    from bench_ui_latency import build_probe
    from cnnviz.app import create_window

    before = load_average()
    qapp()
    window = create_window([], data_dir=args.data_dir)
    window.apply_preset(args.preset)
    spin(1.0)
    window.session.set_recipe(window.session.recipe.replace(train__epochs=1000, train__evaluate_test=False))
    layout = show_every_live_view(window)
    window.docks["compare"].show()
    window.splitDockWidget(window.docks["evaluation"], window.docks["compare"], Qt.Orientation.Vertical)
    spin(0.5)
    probe = build_probe()
    window.train()
    alone, alone_late = rate_of(window.session, args.seconds, probe)
    window.stop()
    spin(3.0)
    window._reset_run()
    window.session.set_recipe(window.session.recipe.replace(train__epochs=1000, train__evaluate_test=False))
    window.train_variant("activation", "sigmoid")
    b_seen = []
    window.compare.session.steps_added.connect(
        lambda batch: b_seen.append((batch.latest.step, batch.latest.elapsed_seconds)))
    a_rate, late = rate_of(window.session, args.seconds, probe)
    b_pairs = list(b_seen)
    b_rate = float("nan")
    if len(b_pairs) >= 2:
        (s0, t0), (s1, t1) = b_pairs[max(0, len(b_pairs) // 4)], b_pairs[-1]
        b_rate = (s1 - s0) * window.compare.session.recipe.train.batch_size / max(t1 - t0, 1e-9)
    window.stop()
    window.compare.close()
    window.close()
    ratio_a, ratio_b = a_rate / alone, b_rate / alone
    p99 = pct(late, 99)
    ok = p99 <= 17 and min(ratio_a, ratio_b) >= 0.45
    lines = ["### Two runs side by side (issue 14)", "",
             f"{today()}, {machine()}; `python bench/bench_compare.py --seconds {args.seconds:g}"
             f"{' --data-dir ...' if args.data_dir else ''}`, preset {args.preset} "
             f"({'full MNIST' if args.data_dir else 'the embedded sample'}); {load_note(before)}.", "",
             f"- Layout: {layout.split(';')[0]}, the compare dock under the evaluation.",
             f"- A alone: {alone:,.0f} img/s (lateness p99 {pct(alone_late, 99):.1f} ms).",
             f"- A and B (ReLU vs sigmoid) side by side: A {a_rate:,.0f} img/s = **{ratio_a:.2f}x** of alone, "
             f"B {b_rate:,.0f} img/s = **{ratio_b:.2f}x** (target >= 0.45x each); event-loop lateness "
             f"**p99 {p99:.1f} ms**, max {max(late) if late else float('nan'):.1f} ms (target p99 <= 17 ms): "
             f"{'met' if ok else 'MISSED'}."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("compare", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
