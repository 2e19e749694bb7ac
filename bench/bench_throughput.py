"""Training throughput: a plain PyTorch loop vs the engine's Trainer vs the full window, side by side.

    python bench/bench_throughput.py --data-dir PATH/TO/mnist [--rounds 3] [--presets a,b]
                                     [--wait-quiet SECONDS] [--no-write]

For each preset (cntk-conv, gorner-dropout, basic-cnn; the preset's batch size and optimizer, full
MNIST) and each round:
  (a) plain:   a plain PyTorch loop (build_model(spec), the same optimizer, tensors in memory, a new
               shuffled order every epoch), max(1, cores - 1) torch threads, headless, in a worker process;
  (b) trainer: the engine's Trainer, no callbacks, in the same worker process;
  (c) window:  the real window (cnnviz.app.create_window) with the curves, draw, filters, feature maps
               and evaluation docks all visible at once and a digit drawn on the canvas, training via
               its TrainingController (child process) at the default refresh rates.
The order rotates from round to round (a b c, b c a, c a b). Images/s are counted over a fixed number
of steps after a warm-up, so process start-up and data loading are excluded: (a)/(b) time the steps
directly, (c) uses the StepMetrics the child stamps (step number, elapsed seconds) as they reach the
window. No test evaluation is asked for. Targets (issue 4): (b) >= 0.98 x (a), (c) >= 0.90 x (a) (goal
0.95). Writes the "perf-throughput" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench_common import cpu_seconds, load_average, load_note, median, setup_env, training_child, wait_for_quiet

# preset: (warm-up steps, timed steps): about a second of warm-up and 3-10 s timed. Full MNIST has 937,
# 600 and 468 batches per epoch: cntk-conv crosses one epoch end (no validation or test evaluation is
# asked for, so the Trainer and the window only record the epoch there), the others stay in epoch 1.
PLAN = {"cntk-conv": (300, 1500), "gorner-dropout": (60, 500), "basic-cnn": (10, 70)}


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
        per_epoch = n // bs
        shuffle = torch.Generator().manual_seed(recipe.train.seed)
        order = torch.randperm(n, generator=shuffle)

        def step(i):
            nonlocal order
            if i and i % per_epoch == 0:  # a new epoch: a new order
                order = torch.randperm(n, generator=shuffle)
            index = order[(i % per_epoch) * bs:(i % per_epoch + 1) * bs]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images[index]), labels[index])
            loss.backward()
            opt.step()

        for i in range(warm):
            step(i)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(warm, warm + steps):
            step(i)
        seconds = time.perf_counter() - t0
        return steps * bs / seconds, (time.process_time() - c0) / seconds

    def trainer(spec, recipe, data, warm, steps) -> float:
        recipe = recipe.replace(train__max_steps=warm, train__evaluate_test=False)
        t = Trainer(spec, recipe, data)  # no callbacks
        t.fit()  # the warm-up steps
        t.recipe = recipe.replace(train__max_steps=warm + steps)
        t0, c0 = time.perf_counter(), time.process_time()
        result = t.fit()  # goes on from step `warm`
        seconds = time.perf_counter() - t0
        assert t.step_count == warm + steps, result
        return steps * recipe.train.batch_size / seconds, (time.process_time() - c0) / seconds

    for line in sys.stdin:
        cmd = json.loads(line)
        preset = get_preset(cmd["preset"])
        recipe = preset.recipe.replace(data__data_dir=cmd["data_dir"])
        data = data_for(recipe)
        fn = plain if cmd["kind"] == "plain" else trainer
        rate, cpu = fn(preset.spec, recipe, data, cmd["warm"], cmd["steps"])
        print(json.dumps({"rate": rate, "cpu": cpu, "threads": torch.get_num_threads()}), flush=True)
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
        w.train()
        # From the end of the warm-up to near the end of the timed steps: the window's CPU time (all its
        # threads) and the training child's, as shares of the wall time.
        if not spin_until(lambda: any(m[0] >= warm for m in self.marks) or not w.controller.active, 300, 0.02):
            raise RuntimeError("the window's run did not start")
        child = training_child()
        cpu0, wall0, child0 = time.process_time(), time.perf_counter(), cpu_seconds(child)
        spin_until(lambda: any(m[0] >= warm + steps * 0.9 for m in self.marks) or not w.controller.active, 600, 0.05)
        cpu, wall, child_cpu = time.process_time() - cpu0, time.perf_counter() - wall0, cpu_seconds(child) - child0
        if not spin_until(lambda: not w.controller.active, 600, step=0.05):
            raise RuntimeError("the window's run did not end")
        result = w.controller.last_result
        if result is None or result.steps != warm + steps:
            raise RuntimeError(f"the window's run ended early: {result}")
        start = next(m for m in self.marks if m[0] >= warm)
        end = max(self.marks)
        bs = recipe.train.batch_size
        return {"rate": (end[0] - start[0]) * bs / (end[1] - start[1]), "gui_cpu": cpu / wall,
                "child_cpu": child_cpu / wall, "batches": len(self.marks)}

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
            r = results[name] = {k: [] for k in ("plain", "trainer", "window", "plain_cpu", "child_cpu", "gui_cpu",
                                                 "load")}
            try:
                worker.run(kind="plain", preset=name, data_dir=args.data_dir, warm=warm, steps=1)  # warm the worker
                for k in range(args.rounds):
                    if args.wait_quiet:
                        wait_for_quiet(1.5, args.wait_quiet)
                    before = load_average()
                    jobs = {"a": lambda: worker.run(kind="plain", preset=name, data_dir=args.data_dir, warm=warm,
                                                    steps=steps),
                            "b": lambda: worker.run(kind="trainer", preset=name, data_dir=args.data_dir, warm=warm,
                                                    steps=steps),
                            "c": lambda: run.measure(warm, steps)}
                    order = "abc"[k % 3:] + "abc"[:k % 3]  # a b c, then b c a, c a b: no position favoured
                    done = {key: jobs[key]() for key in order}
                    a, b, c = done["a"], done["b"], done["c"]
                    r["plain"].append(a["rate"]); r["trainer"].append(b["rate"]); r["window"].append(c["rate"])
                    r["gui_cpu"].append(c["gui_cpu"]); r["child_cpu"].append(c["child_cpu"])
                    r["plain_cpu"].append(a["cpu"]); r["load"].append(max(before[0], load_average()[0]))
                    print(f"{name} round {k + 1} ({' '.join(order)}): plain {a['rate']:,.0f} (CPU {100 * a['cpu']:.0f}%)  trainer "
                          f"{b['rate']:,.0f} ({b['rate'] / a['rate']:.3f}x)  window {c['rate']:,.0f} "
                          f"({c['rate'] / a['rate']:.3f}x; training process CPU {100 * c['child_cpu']:.0f}%, window "
                          f"process {100 * c['gui_cpu']:.0f}%; {c['batches']} metric messages)  images/s, "
                          f"{a['threads']} torch thread(s); load {r['load'][-1]:.2f}", flush=True)
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
                f"**{rb:.3f}x** {'ok' if rb >= 0.98 else 'MISS'} ({min(ratios_b):.2f}-{max(ratios_b):.2f}) | "
                f"{median(r['window']):,.0f} | **{rc:.3f}x** {'ok' if rc >= 0.90 else 'MISS'} "
                f"({min(ratios_c):.2f}-{max(ratios_c):.2f}) | {100 * median(r['plain_cpu']):.0f}% / "
                f"{100 * median(r['child_cpu']):.0f}% / {100 * median(r['gui_cpu']):.0f}% | {max(r['load']):.2f} |")
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
        f"MNIST, each preset's batch size and optimizer; images/s over a fixed number of steps after a warm-up "
        f"(process start-up and data loading excluded). (a) plain PyTorch loop, (b) the engine's `Trainer` without callbacks, both "
        f"headless in a worker process; (c) the real window with every live view visible, training through its "
        f"controller (child process) at the default refresh rates. {args.rounds} rounds, the order rotated "
        f"(a b c, b c a, c a b); medians of the rounds; ratios are medians of the per-round ratios (their range "
        f"in brackets). CPU: the share of one core the "
        f"plain loop got during (a), the training process during (c), and the window process (all its threads) "
        f"during (c): a training process below ~100% was preempted (other work needed the cores).",
        "",
        "| preset | batch | timed steps | (a) plain img/s | (b) Trainer img/s | (b)/(a), target >= 0.98 | "
        "(c) window img/s | (c)/(a), target >= 0.90 | CPU (a) / (c) training / (c) window | max load |",
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
