"""Training throughput: a plain PyTorch loop vs the engine's Trainer vs the full window, side by side.

    python bench/bench_throughput.py --data-dir PATH/TO/mnist [--rounds 3] [--presets a,b]
                                     [--wait-quiet SECONDS] [--no-write]

For each preset (cntk-conv, gorner-dropout, basic-cnn; the preset's batch size and optimizer, full
MNIST) and each round:
  (a) plain:   a plain PyTorch loop (build_model(spec), the same optimizer, tensors in memory, a new
               shuffled order every epoch), max(1, cores - 1) torch threads, headless, in a worker process
               whose malloc is tuned as the app's training process tunes its own (so ratios compare like
               with like);
  (b) trainer: the engine's Trainer, no callbacks, in the same worker process, taking turns with (a):
               20 slices of steps/20 each, alternating which goes first, so a slow stretch of a shared
               machine falls on both alike; each rate is from its median slice;
  (c) window:  the real window (cnnviz.app.create_window) with the curves, draw, filters, feature maps
               and evaluation docks all visible at once and a digit drawn on the canvas, training via
               its TrainingController (child process) at the default refresh rates;
  (a0) the plain loop in a worker with glibc's default malloc and GC: what the app's tuning buys.
The order of (a)+(b), (c) and (a0) rotates from round to round. Images/s are counted over a fixed number
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

# preset: (warm-up steps, timed steps): about a second of warm-up and 6-18 s timed. Full MNIST has 937,
# 600 and 468 batches per epoch: cntk-conv crosses three epoch ends and gorner-dropout one (no validation
# or test evaluation is asked for, so the Trainer only records the epoch there and the window's child
# autosaves), basic-cnn stays in epoch 1.
PLAN = {"cntk-conv": (300, 3000), "gorner-dropout": (60, 1000), "basic-cnn": (10, 160)}
SLICES = 20  # (a) and (b) take turns, steps/SLICES steps at a time


# ---- the headless worker ((a) and (b)) ---------------------------------------------------------------
def _worker(tuned: bool) -> int:
    """Answer JSON commands on stdin, one per line, with JSON results on stdout. `tuned`: set malloc up as
    the app's training process does (cnnviz.training.process_tuning: malloc, frozen GC), else keep the defaults."""
    import torch
    import torch.nn.functional as F

    from cnnviz.training.process_tuning import tune_for_training

    def tune() -> None:  # once the models and the data are built, as the app's training process does
        if tuned:
            tune_for_training()

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

    class Plain:
        """A plain PyTorch loop over shuffled in-memory tensors; `run(k)` does the next k steps."""

        def __init__(self, spec, recipe, data) -> None:
            torch.set_num_threads(default_threads())
            torch.manual_seed(recipe.train.seed)
            self.model = build_model(spec).train()
            self.opt = make_optimizer(self.model.parameters(), recipe.optimizer)
            self.images, self.labels = data.train.images, data.train.labels
            self.n, self.bs = len(self.labels), recipe.train.batch_size
            self.per_epoch = self.n // self.bs
            self.shuffle = torch.Generator().manual_seed(recipe.train.seed)
            self.order = torch.randperm(self.n, generator=self.shuffle)
            self.i = 0

        def run(self, steps: int) -> None:
            model, opt, images, labels, bs = self.model, self.opt, self.images, self.labels, self.bs
            for _ in range(steps):
                if self.i and self.i % self.per_epoch == 0:  # a new epoch: a new order
                    self.order = torch.randperm(self.n, generator=self.shuffle)
                k = self.i % self.per_epoch
                index = self.order[k * bs:(k + 1) * bs]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(images[index]), labels[index])
                loss.backward()
                opt.step()
                self.i += 1

    class Engine:
        """The engine's Trainer without callbacks; `run(k)` fits k more steps (it goes on where it stopped)."""

        def __init__(self, spec, recipe, data) -> None:
            self.trainer = Trainer(spec, recipe.replace(train__evaluate_test=False, train__max_steps=1), data)

        def run(self, steps: int) -> None:
            t = self.trainer
            t.recipe = t.recipe.replace(train__max_steps=t.step_count + steps)
            t.fit()
            assert t.step_count == t.recipe.train.max_steps

    def pair(spec, recipe, data, warm, steps, slices) -> dict:
        """(a) and (b) in turns of steps/slices each, alternating which goes first, so that a slower or
        faster stretch of the machine falls on both alike; rates from the median slice time (a slice that
        another process on the machine slowed down does not count)."""
        runs = {"plain": Plain(spec, recipe, data), "trainer": Engine(spec, recipe, data)}
        tune()
        for run in runs.values():
            run.run(warm)
        seconds = {name: [] for name in runs}
        cpu = 0.0
        per = max(1, steps // slices)
        for k in range(slices):
            for name in (("plain", "trainer") if k % 2 == 0 else ("trainer", "plain")):
                t0, c0 = time.perf_counter(), time.process_time()
                runs[name].run(per)
                seconds[name].append(time.perf_counter() - t0)
                if name == "plain":
                    cpu += time.process_time() - c0
        images = per * recipe.train.batch_size
        return {"plain": images / median(seconds["plain"]), "trainer": images / median(seconds["trainer"]),
                "cpu": cpu / sum(seconds["plain"]), "threads": torch.get_num_threads()}

    def plain_only(spec, recipe, data, warm, steps, slices) -> dict:
        run = Plain(spec, recipe, data)
        tune()
        run.run(warm)
        per, seconds = max(1, steps // slices), []
        for _ in range(slices):
            t0 = time.perf_counter()
            run.run(per)
            seconds.append(time.perf_counter() - t0)
        return {"plain": per * recipe.train.batch_size / median(seconds)}

    for line in sys.stdin:
        cmd = json.loads(line)
        preset = get_preset(cmd["preset"])
        recipe = preset.recipe.replace(data__data_dir=cmd["data_dir"])
        data = data_for(recipe)
        fn = pair if cmd["kind"] == "pair" else plain_only
        result = fn(preset.spec, recipe, data, cmd["warm"], cmd["steps"], cmd["slices"])
        print(json.dumps(result), flush=True)
    return 0


class Worker:
    def __init__(self, tuned: bool = True) -> None:
        argv = [sys.executable, os.path.abspath(__file__), "--worker"] + ([] if tuned else ["--default-malloc"])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

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
    parser.add_argument("--default-malloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(tuned=not args.default_malloc)
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
    worker, worker0 = Worker(), Worker(tuned=False)
    results: dict[str, dict[str, list]] = {}
    layouts = {}
    try:
        for name in args.presets.split(","):
            warm, steps = PLAN[name]
            run = WindowRun(name, args.data_dir)
            layouts[name] = run.layout
            r = results[name] = {k: [] for k in ("plain", "trainer", "window", "plain_cpu", "child_cpu", "gui_cpu",
                                                 "load", "plain0")}
            try:
                worker.run(kind="pair", preset=name, data_dir=args.data_dir, warm=warm, steps=2, slices=2)  # warm up
                worker0.run(kind="plain", preset=name, data_dir=args.data_dir, warm=warm, steps=2, slices=2)
                for k in range(args.rounds):
                    if args.wait_quiet:
                        wait_for_quiet(1.5, args.wait_quiet)
                    before = load_average()
                    jobs = {"ab": lambda: worker.run(kind="pair", preset=name, data_dir=args.data_dir, warm=warm,
                                                     steps=steps, slices=SLICES),
                            "c": lambda: run.measure(warm, steps),
                            "a0": lambda: worker0.run(kind="plain", preset=name, data_dir=args.data_dir, warm=warm,
                                                      steps=steps, slices=SLICES)}
                    order = ("ab", "c", "a0")[k % 3:] + ("ab", "c", "a0")[:k % 3]  # no position favoured
                    done = {key: jobs[key]() for key in order}
                    ab, c, a0 = done["ab"], done["c"], done["a0"]["plain"]
                    a, b = ab["plain"], ab["trainer"]
                    r["plain"].append(a); r["trainer"].append(b); r["window"].append(c["rate"]); r["plain0"].append(a0)
                    r["gui_cpu"].append(c["gui_cpu"]); r["child_cpu"].append(c["child_cpu"])
                    r["plain_cpu"].append(ab["cpu"]); r["load"].append(max(before[0], load_average()[0]))
                    print(f"{name} round {k + 1} ({' then '.join(order)}): plain {a:,.0f} (CPU {100 * ab['cpu']:.0f}%)  "
                          f"trainer {b:,.0f} ({b / a:.3f}x)  window {c['rate']:,.0f} "
                          f"({c['rate'] / a:.3f}x; training process CPU {100 * c['child_cpu']:.0f}%, window "
                          f"process {100 * c['gui_cpu']:.0f}%; {c['batches']} metric messages)  images/s, "
                          f"{ab['threads']} torch thread(s); plain with default malloc and GC {a0:,.0f} "
                          f"(tuning: {a / a0:.3f}x); load {r['load'][-1]:.2f}", flush=True)
            finally:
                run.close()
    finally:
        worker.close()
        worker0.close()
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
                f"{100 * median(r['child_cpu']):.0f}% / {100 * median(r['gui_cpu']):.0f}% | "
                f"{median(r['plain0']):,.0f} ({median([a / a0 for a, a0 in zip(r['plain'], r['plain0'])]):.2f}x) | "
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
        f"MNIST, each preset's batch size and optimizer; images/s over a fixed number of steps after a warm-up "
        f"(process start-up and data loading excluded). (a) plain PyTorch loop, (b) the engine's `Trainer` without callbacks, both "
        f"headless in a worker process whose malloc is tuned as the app's training process tunes its own "
        f"(`cnnviz/training/process_tuning.py`), so that every ratio compares like with like; (a0) the same plain loop "
        f"in a process with glibc's default malloc and garbage collector, for what the tuning buys; (c) the real window with every live view visible, training through its "
        f"controller (child process) at the default refresh rates. (a) and (b) take turns in {SLICES} slices of the timed steps, "
        f"alternating which goes first, and each rate comes from its median slice time. {args.rounds} rounds, "
        f"(a)+(b), (c) and (a0) in rotating order; medians of the rounds; ratios are medians of the per-round ratios (their range "
        f"in brackets). CPU: the share of one core the "
        f"plain loop got during (a), the training process during (c), and the window process (all its threads) "
        f"during (c): a training process below ~100% was preempted (other work needed the cores).",
        "",
        "| preset | batch | timed steps | (a) plain img/s | (b) Trainer img/s | (b)/(a), target >= 0.98 | "
        "(c) window img/s | (c)/(a), target >= 0.90 | CPU (a) / (c) training / (c) window | "
        "(a0) plain, default malloc and GC img/s ((a)/(a0)) | max load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
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
