"""Start-up time of the window, and loading full MNIST from its gz files into tensors.

    python bench/bench_startup.py [--data-dir PATH/TO/mnist] [--runs 5] [--no-write]

1. Window: launches `python -m cnnviz` (offscreen, no saved settings, a throwaway data folder) with
   CNNVIZ_STARTUP_MARKER=<file>; the app writes the wall-clock time into that file when its event loop
   first runs with the window shown. Start-up = that time - the time just before the launch. One
   untimed launch first (warm disk cache), then the median of `--runs`. Reference: a bare
   `python -c "import torch"`, measured the same way. Target < 3 s.
2. MNIST (with --data-dir): `load_data(DataConfig(data_dir=...))` in this process (the default
   options: 10% of train held out for validation, pixels scaled to [0, 1]), median of `--runs`,
   split into reading + gunzipping the IDX files and preparing the tensors. Target < 1 s.
Writes the "perf-startup" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import ROOT, load_average, load_note, median, setup_env

setup_env()


def launch_once(timeout: float = 60.0) -> float:
    """Seconds from launching `python -m cnnviz` to its marker; the process is then closed."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "shown"
        env = dict(os.environ, CNNVIZ_STARTUP_MARKER=str(marker), CNNVIZ_DATA_DIR=tmp,
                   QT_QPA_PLATFORM="offscreen", CNNVIZ_NO_SETTINGS="1")
        start = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "cnnviz"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout
            while not marker.exists() or not marker.read_text().strip():
                if proc.poll() is not None:
                    raise RuntimeError(f"cnnviz exited with code {proc.returncode} before showing its window")
                if time.monotonic() > deadline:
                    raise RuntimeError("cnnviz did not show its window in time")
                time.sleep(0.005)
            return float(marker.read_text()) - start
        finally:
            proc.send_signal(signal.SIGINT)  # the app closes its window on Ctrl+C
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def python_seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=dict(os.environ))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder with the four MNIST IDX .gz files (for the load timing)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    from _report import machine, today, write_section

    load0 = load_average()
    launch_once()  # warm the disk cache
    starts = [launch_once() for _ in range(args.runs)]
    torch_s = median([python_seconds("import torch") for _ in range(3)])
    print(f"window shown after {median(starts):.2f} s (median of {args.runs}: "
          f"{', '.join(f'{s:.2f}' for s in starts)}); target < 3 s: {'ok' if median(starts) < 3 else 'MISS'}")
    print(f"reference: python -c 'import torch' {torch_s:.2f} s")
    rows = [f"| window shown after launching `python -m cnnviz` | {median(starts):.2f} s "
            f"({', '.join(f'{s:.2f}' for s in starts)}) | < 3 s | {'ok' if median(starts) < 3 else 'MISS'} |",
            f"| reference: `python -c 'import torch'` (interpreter start-up + torch) | {torch_s:.2f} s | | |"]
    if args.data_dir:
        from cnnviz.config import DataConfig
        from cnnviz.data.prepare import load_data, prepare
        from cnnviz.data.sources import load_raw

        cfg = DataConfig(data_dir=args.data_dir)
        load_data(cfg)  # warm the disk cache
        totals, reads, preps = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            data = load_data(cfg)
            totals.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            raw = load_raw(cfg)
            t1 = time.perf_counter()
            prepare(raw, cfg)
            reads.append(t1 - t0)
            preps.append(time.perf_counter() - t1)
        total = median(totals)
        print(f"full MNIST into tensors: {total:.2f} s (median of {args.runs}; reading + gunzip "
              f"{median(reads):.2f} s, preparing {median(preps):.2f} s; {data.summary()}); target < 1 s: "
              f"{'ok' if total < 1 else 'MISS'}")
        rows.append(f"| full MNIST gz -> tensors (`load_data`, default options: {data.summary()}) | {total:.2f} s "
                    f"(read + gunzip {median(reads):.2f}, prepare {median(preps):.2f}) | < 1 s | "
                    f"{'ok' if total < 1 else 'MISS'} |")
    note = load_note(load0)
    print(note)
    if args.no_write:
        return 0
    body = "\n".join([
        "### Start-up and data loading (`python bench/bench_startup.py --data-dir PATH/TO/mnist`)",
        "",
        f"{today()}, {machine()}. Start-up: from just before launching `python -m cnnviz` (offscreen, no saved "
        "settings) to the app's first event-loop turn with the window shown (`CNNVIZ_STARTUP_MARKER`); one "
        f"untimed launch first (warm disk cache), then the median of {args.runs}.",
        "",
        "| measurement | median | target | |",
        "|---|---|---|---|",
        *rows,
        "",
        note + ".",
    ])
    write_section("perf-startup", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
