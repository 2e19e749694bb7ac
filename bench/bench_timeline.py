"""The run timeline's targets (issue 13), each measured in one run.

    python bench/bench_timeline.py --data-dir PATH/TO/mnist [--rounds 3] [--run DIR] [--parts a,b,c,d,e,f]
                                   [--no-write]

  (a) recording cost: `cnnviz train --max-steps K` with the timeline against `--no-timeline`, fresh processes
      taking turns, for cntk-conv (1,200 steps: an epoch end, its anchor and evaluation), gorner-dropout (700)
      and basic-cnn (100). Target: recording costs <= 2% (ratio >= 0.98 by the median). Also the share of the
      training time the recorder itself measured on the training thread (`recording_seconds` of the JSON):
      on a VM whose speed swings by 10-20% from run to run, the ratio of medians is the noisier figure.
  (b) size: a 15-epoch gorner-dropout run on full MNIST with the default schedule (kept in --run for the
      parts below). Targets: <= 100 MB and >= 200 keyframes, as `cnnviz info` reports them.
  (c) seek: the real window with every live view visible on that run; the slider moved to 80 random steps;
      time until every visible view has painted the new weights. Target: p50 <= 100 ms, p99 <= 250 ms.
  (d) exact recomputation: the weights of the step before the 8th epoch end, recomputed from the anchor an
      epoch before it, in steps/s against training the same steps in the same process (the Trainer resumed from
      that anchor, no callbacks), taking turns. Target: >= 0.9x.
  (e) following: a headless trainer writes a fresh gorner-dropout run while the window follows it; for each
      steps record written once the window follows, the time from its writing (its `wall`) to the window having
      it (records written while the window was starting are its catch-up, not following). Target: <= 1 s. And the
      trainer's speed with and without a follower (fresh processes, taking turns).
  (f) replay: Play through the run's keyframes at 30 frames a second with every live view visible; the
      event loop's lateness (a 100 Hz timer). Target: p99 <= 17 ms.
Writes the "timeline" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import load_average, load_note, median, pct, setup_env, show_every_live_view, spin

PLAN = {"cntk-conv": 1200, "gorner-dropout": 700, "basic-cnn": 100}


def train(args: list[str], data_dir: str, threads: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "cnnviz", "train", "--data-dir", data_dir, "--json", *args]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


def part_a(data_dir: str, rounds: int, threads: int | None) -> list[str]:
    lines = ["| preset (steps) | with the timeline | --no-timeline | ratio (target >= 0.98) | rounds | recording's own time |",
             "|---|---|---|---|---|---|"]
    for preset, steps in PLAN.items():
        on, off, shares = [], [], []
        for r in range(rounds):
            for timeline in ((True, False) if r % 2 == 0 else (False, True)):
                with tempfile.TemporaryDirectory() as tmp:
                    extra = [] if timeline else ["--no-timeline"]
                    summary = train(["--preset", preset, "--max-steps", str(steps), "--out", f"{tmp}/run", *extra],
                                    data_dir, threads)
                (on if timeline else off).append(summary["images_per_second"])
                if timeline:
                    shares.append(summary["recording_seconds"] / summary["seconds"])
            print(f"(a) {preset} round {r + 1}: timeline {on[-1]:,.0f}  none {off[-1]:,.0f} img/s; recording "
                  f"{shares[-1] * 100:.2f}% of the training time", flush=True)
        ratios = [a / b for a, b in zip(on, off)]
        ratio = median(on) / median(off)
        lines.append(f"| {preset} ({steps}) | {median(on):,.0f} img/s | {median(off):,.0f} img/s | **{ratio:.3f}x** "
                     f"({'met' if ratio >= 0.98 else 'MISSED'}) | {min(ratios):.3f}-{max(ratios):.3f} | "
                     f"{median(shares) * 100:.2f}% ({'met' if median(shares) <= 0.02 else 'MISSED'}) |")
    return lines


def part_b(data_dir: str, run: Path) -> tuple[list[str], dict]:
    if not (run / "events.jsonl").is_file():
        started = time.perf_counter()
        train(["--preset", "gorner-dropout", "--out", str(run)], data_dir)
        print(f"(b) trained the 15-epoch run in {time.perf_counter() - started:.0f} s", flush=True)
    info = json.loads(subprocess.run([sys.executable, "-m", "cnnviz", "info", str(run), "--json"], capture_output=True,
                                     text=True, check=True).stdout)
    size_ok, count_ok = info["bytes"] <= 100_000_000, len(info["keyframe_steps"]) >= 200
    return [f"- (b) 15-epoch `gorner-dropout`, full MNIST, default schedule: **{info['bytes'] / 1e6:.1f} MB** "
            f"({'met' if size_ok else 'MISSED'}: <= 100 MB), **{len(info['keyframe_steps'])} stored steps** "
            f"({'met' if count_ok else 'MISSED'}: >= 200; {len(info['anchor_steps'])} of them exact anchors), "
            f"keyframes at {', '.join(info['keyframe_precision'])}, test accuracy {info['test_accuracy'] * 100:.2f}%, "
            f"{info['steps']:,} steps."], info


def open_window(run: Path | None):
    from bench_common import qapp
    from cnnviz.app import create_window

    qapp()
    window = create_window([])
    layout = show_every_live_view(window)
    if run is not None:
        window.open_run(str(run))
    spin(1.0)
    return window, layout


def part_c(run: Path) -> list[str]:
    from PySide6.QtCore import QEvent, QObject

    window, layout = open_window(run)

    class Painted(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.last: dict[str, float] = {}

        def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt override)
            if event.type() == QEvent.Type.Paint:
                self.last[obj.objectName()] = time.perf_counter()
            return False

    views = {"curves": window.curves, "filters": window.filters, "feature_maps": window.feature_maps,
             "draw": window.draw, "evaluation": window.evaluation}
    painted = Painted()
    for view in views.values():
        for child in [view, *view.findChildren(QObject)]:
            if hasattr(child, "installEventFilter") and hasattr(child, "isVisible"):
                child.installEventFilter(painted)
    times = []
    slider = window.timeline_bar.slider
    steps = random.Random(0).sample(range(1, window.timeline.last_step), 80)
    for step in steps:
        painted.last.clear()
        started = time.perf_counter()
        slider.setValue(step)
        while time.perf_counter() < started + 3.0:  # until every view has painted and 0.3 s pass with no paint
            spin(0.01)
            quiet_since = max(painted.last.values()) if painted.last else started
            if time.perf_counter() - quiet_since > 0.3:
                break
        times.append((max(painted.last.values()) - started) * 1e3 if painted.last else float("nan"))
    window.close()
    p50, p99 = pct(times, 50), pct(times, 99)
    ok = p50 <= 100 and p99 <= 250
    return [f"- (c) seek, 80 random steps of that run, every live view visible ({layout.split(';')[0]}): "
            f"**p50 {p50:.0f} ms, p99 {p99:.0f} ms**, max {max(times):.0f} ms from the slider's move to the last "
            f"view's paint ({'met' if ok else 'MISSED'}: p50 <= 100, p99 <= 250)."]


def part_d(run: Path, info: dict, rounds: int = 3) -> list[str]:
    """Exact recomputation against training the same steps, in this process, taking turns.

    The reference is the run's own Trainer resumed from the same anchor with the same recipe and threads and no
    callbacks: training speed here and now. (The first version compared with the images/s the run recorded
    while it trained, another day's speed on a VM whose speed swings by 10-20% and more from hour to hour.)"""
    import dataclasses

    import torch

    from cnnviz.data.prepare import load_data
    from cnnviz.timeline.reader import RunTimeline
    from cnnviz.timeline.replay import exact_weights
    from cnnviz.training.checkpoint import resume_trainer

    timeline = RunTimeline.open(run)
    ends = [e.step for e in timeline.history.epochs]
    target = ends[7] - 1
    anchor = timeline.anchor_before(target)
    batch = timeline.header["recipe"]["train"]["batch_size"]
    started = time.perf_counter()
    loaded = timeline.load_anchor(anchor)
    data = load_data(loaded.recipe.data, fallback=False)  # the window has it loaded
    loading = time.perf_counter() - started

    def replay() -> float:
        started = time.perf_counter()
        exact_weights(timeline, target, data=data)
        return time.perf_counter() - started

    def train() -> float:  # the same steps trained, as the run trained them
        recipe = loaded.recipe.replace(train__max_steps=target, train__evaluate_test=False,
                                       train__epochs=max(loaded.recipe.train.epochs, loaded.epoch + 1 + target))
        threads, before = timeline.header.get("threads"), torch.get_num_threads()
        if isinstance(threads, int) and threads > 0:
            torch.set_num_threads(threads)
        try:
            trainer = resume_trainer(timeline.load_anchor(anchor), dataclasses.replace(data, val=None), [],
                                     recipe=recipe)
            started = time.perf_counter()
            trainer.fit()
            return time.perf_counter() - started
        finally:
            torch.set_num_threads(before)

    replays, trains = [], []
    for r in range(rounds):  # taking turns, alternating which goes first
        for fn, out in ((replay, replays), (train, trains)) if r % 2 == 0 else ((train, trains), (replay, replays)):
            out.append(fn())
    steps = target - anchor
    rate, trained = steps * batch / median(replays), steps * batch / median(trains)
    ratio = rate / trained
    with_loading = steps * batch / (median(replays) + loading)
    return [f"- (d) exact recomputation of step {target:,} from the anchor at {anchor:,} ({steps} steps; "
            f"the data loaded, as in the window): **{rate:,.0f} img/s against {trained:,.0f} img/s training the same "
            f"steps here = {ratio:.2f}x** ({'met' if ratio >= 0.9 else 'MISSED'}: >= 0.9x; medians of {rounds} rounds "
            f"taking turns, ratios per round {', '.join(f'{t / r:.2f}' for r, t in zip(replays, trains))}); "
            f"{with_loading / trained:.2f}x with the data's loading ({loading:.1f} s, as `cnnviz evaluate --step` "
            f"pays it)."]


def part_e(data_dir: str, rounds: int) -> list[str]:
    from cnnviz.timeline.store import EventReader

    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "followed"
        trainer = subprocess.Popen([sys.executable, "-m", "cnnviz", "train", "--data-dir", data_dir, "--preset",
                                    "gorner-dropout", "--epochs", "1", "--out", str(run), "--json"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (run / "events.jsonl").is_file():
            time.sleep(0.05)
        time.sleep(0.5)
        window, _ = open_window(None)
        window.open_run(str(run), follow=True)
        following = time.time()  # records written before (while the window started) are a catch-up, not follow
        reader, walls = EventReader(run), {}
        arrived: dict[int, float] = {}
        window.session.steps_added.connect(lambda batch: arrived.setdefault(window.session.history.steps,
                                                                             time.time()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and trainer.poll() is None:
            spin(0.02)
            for event in reader.read_new():
                if event.get("t") == "steps" and "wall" in event:
                    walls[event["first"] + len(event["loss"]) - 1] = event["wall"]
        for step, wall in walls.items():
            if wall < following:
                continue
            got = [t for s, t in arrived.items() if s >= step]
            if got:
                latencies.append(min(got) - wall)
        window.close()
        trainer.kill()
        trainer.wait()
    followed, alone = [], []
    for r in range(rounds):  # the trainer's speed with and without a follower
        for with_follower in ((True, False) if r % 2 == 0 else (False, True)):
            with tempfile.TemporaryDirectory() as tmp:
                run = Path(tmp) / "r"
                cmd = [sys.executable, "-m", "cnnviz", "train", "--data-dir", data_dir, "--preset", "gorner-dropout",
                       "--max-steps", "500", "--out", str(run), "--json"]
                trainer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                follower = None
                if with_follower:
                    follower = subprocess.Popen([sys.executable, "-c", FOLLOWER, str(run)])
                out = trainer.communicate()[0]
                if follower is not None:
                    follower.kill()
                    follower.wait()
                (followed if with_follower else alone).append(json.loads(out)["images_per_second"])
    p50, p99 = pct([x * 1e3 for x in latencies], 50), pct([x * 1e3 for x in latencies], 99)
    ratio = median(followed) / median(alone)
    return [f"- (e) following a headless `gorner-dropout` run on full MNIST: a written steps record is in the window "
            f"**p50 {p50:.0f} ms, p99 {p99:.0f} ms** later ({len(latencies)} records; "
            f"{'met' if p99 <= 1000 else 'MISSED'}: <= 1 s). The trainer with a follower reading its folder: "
            f"{median(followed):,.0f} img/s against {median(alone):,.0f} alone = **{ratio:.3f}x** ({rounds} rounds each)."]


FOLLOWER = """
import sys, time
from cnnviz.timeline.follow import RunFollower
while True:
    try:
        f = RunFollower(sys.argv[1]); break
    except Exception:
        time.sleep(0.1)
while not f.finished:
    f.poll(0.05)
"""


def part_f(run: Path) -> list[str]:
    from bench_ui_latency import build_probe

    window, layout = open_window(run)
    bar = window.timeline_bar
    bar.slider.setValue(0)
    bar.speed.setCurrentIndex(0)
    probe = build_probe()
    keyframes = len(window.timeline.timeline.keyframe_steps())
    bar.play_button.setChecked(True)
    lateness = probe.run(min(12.0, keyframes / 30 + 0.5))
    shown = window.shown_step()
    bar.play_button.setChecked(False)
    window.close()
    p99 = pct(lateness, 99)
    return [f"- (f) Play at 30 frames a second through the keyframes, every live view visible: event-loop lateness "
            f"**p99 {p99:.1f} ms**, p50 {pct(lateness, 50):.1f}, max {max(lateness):.1f} ms "
            f"({'met' if p99 <= 17 else 'MISSED'}: p99 <= 17 ms); it reached step {shown:,}."]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run", default=str(Path(tempfile.gettempdir()) / "cnnviz-bench-gorner-15"))
    parser.add_argument("--parts", default="a,b,c,d,e,f")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    setup_env()
    from _report import machine, today, write_section

    parts, run = set(args.parts.split(",")), Path(args.run)
    before = load_average()
    lines: list[str] = []
    info = None
    if "a" in parts:
        lines += part_a(args.data_dir, args.rounds, args.threads) + [""]
    if parts & {"b", "c", "d", "f"}:
        more, info = part_b(args.data_dir, run)
        lines += more if "b" in parts else []
    for key, fn in (("c", lambda: part_c(run)), ("d", lambda: part_d(run, info, args.rounds)),
                    ("e", lambda: part_e(args.data_dir, args.rounds)), ("f", lambda: part_f(run))):
        if key in parts:
            lines += fn()
            print(lines[-1], flush=True)
    body = "\n".join(["### The run timeline (issue 13)", "",
                      f"{today()}, {machine()}; `python bench/bench_timeline.py --rounds {args.rounds}`; "
                      f"{load_note(before)}.", "", *lines])
    print(body)
    if not args.no_write:
        write_section("timeline", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
