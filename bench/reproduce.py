"""Train every preset with its tutorial recipe on full MNIST and compare with the tutorial's accuracy.

    python bench/reproduce.py --data-dir PATH/TO/mnist [--presets a,b] [--epochs-cap N] [--threads T]

Writes the table into docs/benchmarks.md (section "reproduce") and the raw figures to docs/reproduce.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, today, write_section  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with the four MNIST IDX files")
    parser.add_argument("--presets", help="comma-separated preset names (default: all)")
    parser.add_argument("--epochs-cap", type=int, help="train at most this many epochs (noted in the table)")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--json", default=str(Path(__file__).resolve().parent.parent / "docs" / "reproduce.json"))
    args = parser.parse_args()

    import os

    import torch

    from cnnviz.data.prepare import load_data
    from cnnviz.models import summarize
    from cnnviz.presets import PRESETS
    from cnnviz.training.trainer import Trainer

    threads = args.threads or os.cpu_count() or 1
    names = args.presets.split(",") if args.presets else list(PRESETS)
    out = Path(args.json)
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in names:
        preset = PRESETS[name]
        epochs = preset.recipe.train.epochs
        if args.epochs_cap:
            epochs = min(epochs, args.epochs_cap)
        recipe = preset.recipe.replace(data__data_dir=args.data_dir, train__epochs=epochs, train__threads=threads)
        data = load_data(recipe.data, fallback=False)
        torch.set_num_threads(threads)
        started = time.perf_counter()
        result = Trainer(preset.spec, recipe, data).fit()
        seconds = time.perf_counter() - started
        ev = result.evaluation
        results[name] = {
            "params": summarize(preset.spec).total, "epochs": result.epochs_completed,
            "recipe_epochs": preset.recipe.train.epochs, "train_examples": len(data.train),
            "test_examples": len(data.test), "test_accuracy": ev.accuracy if ev else None,
            "reported": preset.reported_accuracy, "reported_note": preset.reported_note,
            "seconds": round(seconds, 1), "images_per_second": round(result.images_per_second, 1),
            "status": result.status, "date": today(), "machine": machine(), "threads": threads,
        }
        print(f"{name}: {result.status} test accuracy {ev.accuracy * 100 if ev else float('nan'):.2f}% "
              f"in {seconds:.0f} s ({result.images_per_second:,.0f} img/s)", flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        write_section("reproduce", render(results))
    return 0


def render(results: dict) -> str:
    lines = ["| preset | params | epochs | train / test examples | our test accuracy | tutorial | difference | "
             "wall time | images/s | date, machine |", "|---|---|---|---|---|---|---|---|---|---|"]
    machines = sorted({f"{r['machine']} ({r['threads']} torch threads)" for r in results.values()})
    for name, r in results.items():
        ours = r["test_accuracy"]
        reported = r["reported"]
        diff = f"{(ours - reported) * 100:+.2f} pts" if ours is not None and reported else "-"
        tut = r["reported_note"] or (f"{reported * 100:.2f}%" if reported else "not given")
        epochs = f"{r['epochs']}" + ("" if r["epochs"] == r["recipe_epochs"] else f" (recipe {r['recipe_epochs']})")
        where = machines.index(f"{r['machine']} ({r['threads']} torch threads)") + 1
        lines.append(f"| `{name}` | {r['params']:,} | {epochs} | {r['train_examples']:,} / {r['test_examples']:,} | "
                     f"{ours * 100:.2f}% | {tut} | {diff} | {r['seconds']:.0f} s | {r['images_per_second']:,.0f} | "
                     f"{r['date']} [{where}] |")
    lines.append("")
    lines.append("Machines: " + "; ".join(f"[{k}] {m}" for k, m in enumerate(machines, 1)))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
