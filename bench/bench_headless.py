"""Headless training at its default threads against a plain PyTorch loop at torch's default threads.

    python bench/bench_headless.py --data-dir PATH/TO/mnist [--rounds 5] [--presets gorner-dropout,cntk-conv]
                                   [--no-write]

Each round runs, in fresh processes and in a rotating order:
  (h)  `cnnviz train --preset P --data-dir D --max-steps K --json`: the real CLI, default threads;
  (h1) the same with `--threads 1` (the old default on this 2-core machine: cores - 1);
  (p)  a plain PyTorch loop (build_model(spec), the preset's optimizer, in-memory tensors, a shuffled order),
       torch's default threads, no tuning of any kind: what a user would write;
  (p1) the same plain loop at one thread.
Every variant times the same K steps from the first one (K stays inside the first epoch, so no evaluation is
timed), and images/s are taken as (steps x batch) / seconds. Target (issue 11): (h) >= 0.98 x (p) by the
median over the rounds. Writes the "headless-threads" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench_common import load_average, load_note, median, setup_env

STEPS = {"gorner-dropout": 500, "cntk-conv": 900, "basic-cnn": 60}  # inside epoch 1 of full MNIST


def plain_loop(preset_name: str, data_dir: str, steps: int, threads: int | None) -> float:
    """Images/s of a plain PyTorch loop over the first `steps` batches."""
    import torch
    import torch.nn.functional as F

    from cnnviz.data.prepare import load_data
    from cnnviz.models import build_model
    from cnnviz.presets import get_preset
    from cnnviz.training.optim import learning_rate, make_optimizer

    if threads:
        torch.set_num_threads(threads)
    preset = get_preset(preset_name)
    recipe = preset.recipe.replace(data__data_dir=data_dir)
    data = load_data(recipe.data, fallback=False)
    torch.manual_seed(0)
    model = build_model(preset.spec).train()
    optimizer = make_optimizer(model.parameters(), recipe.optimizer)
    images, labels, size = data.train.images, data.train.labels, recipe.train.batch_size
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe.optimizer, step, 0)
        index = order[step * size:(step + 1) * size]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images[index]), labels[index])
        loss.item()  # as any loop that logs its loss does
        loss.backward()
        optimizer.step()
    return steps * size / (time.perf_counter() - started)


def run_variant(kind: str, preset: str, data_dir: str, steps: int) -> float:
    if kind.startswith("h"):
        cmd = [sys.executable, "-m", "cnnviz", "train", "--preset", preset, "--data-dir", data_dir,
               "--max-steps", str(steps), "--json"] + (["--threads", "1"] if kind == "h1" else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return float(json.loads(out)["images_per_second"])
    cmd = [sys.executable, __file__, "--plain", preset, "--data-dir", data_dir, "--steps", str(steps)] + \
        (["--threads", "1"] if kind == "p1" else [])
    return float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--presets", default="gorner-dropout,cntk-conv")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(plain_loop(args.plain, args.data_dir, args.steps, args.threads))
        return 0
    setup_env()
    from _report import machine, today, write_section

    before = load_average()
    kinds = ["h", "p", "h1", "p1"]
    rows = []
    for preset in args.presets.split(","):
        steps = STEPS[preset]
        rates: dict[str, list[float]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            order = kinds[r % 4:] + kinds[:r % 4]
            for kind in order:
                rates[kind].append(run_variant(kind, preset, args.data_dir, steps))
            print(f"{preset} round {r + 1}: " + ", ".join(f"{k} {rates[k][-1]:,.0f}" for k in kinds), flush=True)
        m = {k: median(v) for k, v in rates.items()}
        ratios = [h / p for h, p in zip(rates["h"], rates["p"])]
        rows.append((preset, steps, m, ratios))
    note = load_note(before)
    lines = ["### Headless threads (issue 11): `cnnviz train` at its default threads vs a plain loop",
             "", f"{today()}, {machine()}; `python bench/bench_headless.py --rounds {args.rounds}`; {note}.", "",
             "| preset (steps) | (h) cnnviz train, default threads | (p) plain loop, torch's default threads | "
             "(h) / (p) (target >= 0.98) | rounds (h)/(p) | (h1) --threads 1 | (p1) plain, 1 thread |",
             "|---|---|---|---|---|---|---|"]
    for preset, steps, m, ratios in rows:
        verdict = "met" if m["h"] / m["p"] >= 0.98 else "MISSED"
        lines.append(f"| {preset} ({steps}) | {m['h']:,.0f} img/s | {m['p']:,.0f} img/s | "
                     f"**{m['h'] / m['p']:.3f}x** ({verdict}) | {min(ratios):.3f}-{max(ratios):.3f} | "
                     f"{m['h1']:,.0f} img/s (default: {m['h'] / m['h1']:.2f}x faster) | {m['p1']:,.0f} img/s |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("headless-threads", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
