"""Exporting the learning process as an animation (issue 14): a GIF of the filters of a 10-epoch `cntk-conv`
run on full MNIST is written in <= 10 s and is <= 5 MB.

    python bench/bench_export.py --data-dir PATH/TO/mnist [--run DIR] [--rounds 3] [--no-write]

Trains that run into --run first when it is not there (about 40 s on 2 cores; kept for the next time), then
exports it `--rounds` times in fresh processes (`cnnviz export RUN --gif OUT.gif`, the defaults: one frame per
stored step thinned to 150, 640x480, 10 frames a second), timing the whole command, and once each with
--view feature-maps and --view curves, and once as an MP4 when imageio-ffmpeg is installed. Writes the "export"
section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import load_note, median, setup_env, wait_for_quiet


def cnnviz(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], capture_output=True, text=True)


def ensure_run(run: Path, data_dir: str) -> str:
    if (run / "events.jsonl").is_file() and (run / "checkpoint.safetensors").is_file():
        return "kept from an earlier bench"
    started = time.perf_counter()
    proc = cnnviz("train", "--preset", "cntk-conv", "--epochs", "10", "--data-dir", data_dir, "--out", str(run),
                  "--overwrite", "--json")
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return f"trained in {time.perf_counter() - started:.0f} s"


def export(run: Path, out: Path, *extra: str) -> tuple[float, int, str]:
    """(seconds of the whole command, bytes written, what it printed)."""
    started = time.perf_counter()
    proc = cnnviz("export", str(run), *extra)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"cnnviz export {' '.join(extra)} failed: {proc.stderr[-2000:]}")
    return seconds, out.stat().st_size, proc.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--run", default=str(Path(tempfile.gettempdir()) / "cnnviz-bench-cntk-10"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    setup_env()
    from _report import machine, today, write_section

    run = Path(args.run)
    how = ensure_run(run, args.data_dir)
    info = json.loads(cnnviz("info", str(run), "--json").stdout)
    before = wait_for_quiet(1.0, 300)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        gif = Path(tmp) / "filters.gif"
        times, sizes, said = [], [], ""
        for r in range(args.rounds):
            seconds, size, said = export(run, gif, "--gif", str(gif))
            times.append(seconds)
            sizes.append(size)
            print(f"round {r + 1}: {seconds:.2f} s, {size / 1e6:.2f} MB", flush=True)
        seconds, size = median(times), sizes[-1]
        met = seconds <= 10 and size <= 5e6
        lines.append(f"- **filters GIF: {seconds:.1f} s, {size / 1e6:.2f} MB** ({'met' if met else 'MISSED'}: "
                     f"<= 10 s and <= 5 MB; median of {args.rounds} fresh `cnnviz export RUN --gif OUT.gif` "
                     f"processes, {min(times):.1f}-{max(times):.1f} s, start-up and reading the run included). "
                     f"It said: `{said}`.")
        for view in ("feature-maps", "curves"):
            out = Path(tmp) / f"{view}.gif"
            seconds, size, _ = export(run, out, "--gif", str(out), "--view", view)
            lines.append(f"- {view} GIF: {seconds:.1f} s, {size / 1e6:.2f} MB (same defaults).")
        try:
            import imageio_ffmpeg  # noqa: F401

            out = Path(tmp) / "filters.mp4"
            seconds, size, _ = export(run, out, "--mp4", str(out))
            lines.append(f"- filters MP4 (H.264, crf 18): {seconds:.1f} s, {size / 1e6:.2f} MB.")
        except ImportError:
            lines.append("- MP4: imageio-ffmpeg is not installed here; not measured.")
    for line in lines:
        print(line)
    body = "\n".join([
        "### Exporting the learning process as an animation (issue 14)", "",
        f"{today()}, {machine()}; `python bench/bench_export.py --rounds {args.rounds}`; {load_note(before)}.", "",
        f"The run: `cnnviz train --preset cntk-conv --epochs 10` on full MNIST ({how}): {info['steps']:,} steps, "
        f"{len(info['keyframe_steps'])} stored steps ({', '.join(info['keyframe_precision'])} keyframes), test "
        f"accuracy {info['test_accuracy'] * 100:.2f}%. Defaults: 150 frames (the stored steps thinned evenly by "
        "index, so they keep their log spacing), 640x480, 10 frames a second, one palette of 255 colours for "
        "all frames, the last frame held 2 s.", "", *lines])
    if not args.no_write:
        write_section("export", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
