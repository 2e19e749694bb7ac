"""Training throughput: a plain PyTorch loop vs the engine's Trainer vs the full window, side by side.

    python bench/bench_throughput.py --data-dir PATH/TO/mnist [--rounds 3] [--presets a,b] [--no-write]

For each preset (cntk-conv, gorner-dropout, basic-cnn; the preset's batch size and optimizer, full
MNIST) and each round, in this order:
  (a) plain:   a plain PyTorch loop (build_model(spec), the same optimizer, tensors in memory, a
               shuffled order), max(1, cores - 1) torch threads, headless, in a worker process;
  (b) trainer: the engine's Trainer, no callbacks, in the same worker process;
  (c) window:  the real window (cnnviz.app.create_window) with the curves, draw, filters, feature maps
               and evaluation docks all visible at once and a digit drawn on the canvas, training via
               its TrainingController (child process) at the default refresh rates.
Images/s are counted over a fixed number of steps after a warm-up, inside the first epoch, so process
start-up, data loading and epoch-end evaluation are excluded: (a)/(b) time the steps directly, (c) uses
the StepMetrics the child stamps (step number, elapsed seconds) as they reach the window. Targets
(issue 4): (b) >= 0.98 x (a), (c) >= 0.90 x (a) (goal 0.95). Writes the "perf-throughput" section of
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench_common import load_average, load_note, median, setup_env, wait_for_quiet

# preset: (warm-up steps, timed steps); warm-up + timed stays inside the first epoch of full MNIST
# (937, 600 and 468 batches), and the warm-up lasts about a second.
PLAN = {"cntk-conv": (300, 600), "gorner-dropout": (60, 500), "basic-cnn": (10, 70)}


# ---- the headless worker ((a) and (b)) ---------------------------------------------------------------
def _worker() -> int:
    """Answer JSON commands on stdin, one per line, with JSON results on stdout."""
    import torch
    import torch.nn.functional as F

    from cnnviz.data.prepare import load_data
    from cnnviz.models import build_model
    from cnnviz.presets import get_preset
    from cnnviz.training.optim import make_optimizer
    from cnnviz.training.trainer import Trainer, default_threads

    cache: dict = {}

    def data_for(recipe):
        key = recipe.data
        if key not in cache:
            cache.clear()
            cache[key] = load_data(recipe.data, fallback=False)
        return cache[key]

    def plain(spec, recipe, data, warm, steps) -> float:
        torch.set_num_threads(default_threads())
        torch.manual_seed(recipe.train.seed)
        model = build_model(spec).train()
        opt = make_optimizer(model.parameters(), recipe.optimizer)
        images, labels = data.train.images, data.train.labels
        n, bs = len(labels), recipe.train.batch_size
        order = torch.randperm(n, generator=torch.Generator().manual_seed(recipe.train.seed))

        def step(i):
            index = order[i * bs:(i + 1) * bs]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images[index]), labels[index])
            loss.backward()
            opt.step()

        for i in range(warm):
            step(i)
        t0 = time.perf_counter()
        for i in range(warm, warm + steps):
            step(i)
        return steps * bs / (time.perf_counter() - t0)

    def trainer(spec, recipe, data, warm, steps) -> float:
        recipe = recipe.replace(train__max_steps=warm, train__evaluate_test=False)
        t = Trainer(spec, recipe, data)  # no callbacks
        t.fit()  # the warm-up steps
        t.recipe = recipe.replace(train__max_steps=warm + steps)
        t0 = time.perf_counter()
        result = t.fit()  # goes on from step `warm`
        seconds = time.perf_counter() - t0
        assert t.step_count == warm + steps, result
        return steps * recipe.train.batch_size / seconds

    for line in sys.stdin:
        cmd = json.loads(line)
        preset = get_preset(cmd["preset"])
        recipe = preset.recipe.replace(data__data_dir=cmd["data_dir"])
        data = data_for(recipe)
        fn = plain if cmd["kind"] == "plain" else trainer
        rate = fn(preset.spec, recipe, data, cmd["warm"], cmd["steps"])
        print(json.dumps({"rate": rate, "threads": torch.get_num_threads()}), flush=True)
    return 0


class Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the headless worker died")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


# ---- the window ((c)) --------------------------------------------------------------------------------
class WindowRun:
    """The real window on full MNIST for one preset, with every live view visible."""

    def __init__(self, preset: str, data_dir: str) -> None:
        from PySide6.QtCore import QObject, Slot

        from bench_common import draw_digit, show_every_live_view, spin, spin_until
        from cnnviz.app import create_window

        self.window = w = create_window([])
        w.confirm = lambda *_: True  # answer "reset?" dialogs
        w.apply_preset(preset)
        spin_until(lambda: not w.loader.busy, 60)
        w.request_dataset("mnist", data_dir)
        spin(0.05)
        if not spin_until(lambda: not w.loader.busy, 120) or len(w.session.data.train) < 50000:
            raise RuntimeError(f"could not load full MNIST from {data_dir}")
        self.layout = show_every_live_view(w)
        draw_digit(w.draw.canvas)
        spin(0.3)
        if not w.draw.probabilities():
            raise RuntimeError("the drawing did not produce a prediction")
        self.marks: list[tuple[int, float]] = []

        class Recorder(QObject):
            @Slot(object)
            def on_steps(self_, batch) -> None:  # noqa: N805
                self.marks.append((batch.latest.step, batch.latest.elapsed_seconds))

        self.recorder = Recorder()
        w.session.steps_added.connect(self.recorder.on_steps)

    def measure(self, warm: int, steps: int) -> dict:
        from bench_common import spin_until

        w = self.window
        if w.session.trained or w.controller.last_result is not None:
            w.reset()
        recipe = w.session.recipe.replace(train__max_steps=warm + steps, train__evaluate_test=False)
        w.apply_recipe(recipe)
        self.marks.clear()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        w.train()
        if not spin_until(lambda: not w.controller.active, 600, step=0.05):
            raise RuntimeError("the window's run did not end")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        result = w.controller.last_result
        if result is None or result.steps != warm + steps:
            raise RuntimeError(f"the window's run ended early: {result}")
        start = next(m for m in self.marks if m[0] >= warm)
        end = max(self.marks)
        bs = recipe.train.batch_size
        return {"rate": (end[0] - start[0]) * bs / (end[1] - start[1]), "gui_cpu": cpu / wall,
                "batches": len(self.marks)}

    def close(self) -> None:
        self.window.close()
        self.window.deleteLater()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder with the four MNIST IDX files (required)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presets", default=",".join(PLAN))
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each round, wait up to this long for a 1-minute load average below 1.5")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker()
    if not args.data_dir:
        parser.error("--data-dir is required")
    setup_env()
    from bench_common import qapp

    qapp()
    from _report import machine, today, write_section
    from cnnviz.presets import get_preset
    from cnnviz.training.trainer import default_threads

    started = time.perf_counter()
    load0 = load_average()
    worker = Worker()
    results: dict[str, dict[str, list]] = {}
    layouts = {}
    try:
        for name in args.presets.split(","):
            warm, steps = PLAN[name]
            run = WindowRun(name, args.data_dir)
            layouts[name] = run.layout
            r = results[name] = {"plain": [], "trainer": [], "window": [], "gui_cpu": [], "load": []}
            try:
                worker.run(kind="plain", preset=name, data_dir=args.data_dir, warm=warm, steps=1)  # warm the worker
                for k in range(args.rounds):
                    if args.wait_quiet:
                        wait_for_quiet(1.5, args.wait_quiet)
                    before = load_average()
                    a = worker.run(kind="plain", preset=name, data_dir=args.data_dir, warm=warm, steps=steps)
                    b = worker.run(kind="trainer", preset=name, data_dir=args.data_dir, warm=warm, steps=steps)
                    c = run.measure(warm, steps)
                    r["plain"].append(a["rate"]); r["trainer"].append(b["rate"]); r["window"].append(c["rate"])
                    r["gui_cpu"].append(c["gui_cpu"]); r["load"].append(max(before[0], load_average()[0]))
                    print(f"{name} round {k + 1}: plain {a['rate']:,.0f}  trainer {b['rate']:,.0f} "
                          f"({b['rate'] / a['rate']:.3f}x)  window {c['rate']:,.0f} ({c['rate'] / a['rate']:.3f}x; "
                          f"GUI process {100 * c['gui_cpu']:.0f}% of a core; {c['batches']} metric messages)  "
                          f"images/s, {a['threads']} torch thread(s); load {r['load'][-1]:.2f}", flush=True)
            finally:
                run.close()
    finally:
        worker.close()
    note = load_note(load0)
    minutes = (time.perf_counter() - started) / 60
    rows = []
    for name, r in results.items():
        ratios_b = [b / a for a, b in zip(r["plain"], r["trainer"])]
        ratios_c = [c / a for a, c in zip(r["plain"], r["window"])]
        rb, rc = median(ratios_b), median(ratios_c)
        bs = get_preset(name).recipe.train.batch_size
        warm, steps = PLAN[name]
        line = (f"| `{name}` | {bs} | {steps} | {median(r['plain']):,.0f} | {median(r['trainer']):,.0f} | "
                f"**{rb:.3f}x** {'ok' if rb >= 0.98 else 'MISS'} | {median(r['window']):,.0f} | "
                f"**{rc:.3f}x** {'ok' if rc >= 0.90 else 'MISS'} | {100 * median(r['gui_cpu']):.0f}% | "
                f"{max(r['load']):.2f} |")
        rows.append(line)
        print(f"{name}: median plain {median(r['plain']):,.0f}, trainer {median(r['trainer']):,.0f} ({rb:.3f}x, "
              f"target >= 0.98), window {median(r['window']):,.0f} ({rc:.3f}x, target >= 0.90)")
    print(note)
    print(f"total {minutes:.1f} min")
    if args.no_write:
        return 0
    body = "\n".join([
        "### Training throughput (`python bench/bench_throughput.py --data-dir PATH/TO/mnist`)",
        "",
        f"{today()}, {machine()}; {default_threads()} torch thread(s) for training (max(1, cores - 1)). Full "
        f"MNIST, each preset's batch size and optimizer; images/s over a fixed number of steps after a warm-up, "
        f"inside the first epoch. (a) plain PyTorch loop, (b) the engine's `Trainer` without callbacks, both "
        f"headless in a worker process; (c) the real window with every live view visible, training through its "
        f"controller (child process) at the default refresh rates. Run in the order a, b, c, {args.rounds} "
        f"rounds; medians of the rounds, ratios are per-round ratios' medians. GUI process = CPU time of the "
        f"whole window process (all its threads) during (c), in % of one core.",
        "",
        "| preset | batch | timed steps | (a) plain img/s | (b) Trainer img/s | (b)/(a), target >= 0.98 | "
        "(c) window img/s | (c)/(a), target >= 0.90 | GUI process | max load |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"How the views were made visible in (c): {next(iter(layouts.values()), '')}. A digit is drawn on the "
        "canvas so the draw panel predicts on every weight update; the feature maps show test image 0.",
        "",
        f"{note}. Whole run: {minutes:.1f} min.",
    ])
    write_section("perf-throughput", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
