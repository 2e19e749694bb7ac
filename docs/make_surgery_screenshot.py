"""A screenshot of filter surgery during a real run (docs/screenshots/surgery.png).

    QT_QPA_PLATFORM=offscreen python docs/make_surgery_screenshot.py --data-dir PATH/TO/mnist

Trains `cntk-conv` on full MNIST in the real window, pauses it, freezes one filter of conv1, zeroes a third of
the others and re-initialises one, goes on training, and grabs the window: the filters (the frozen one
outlined, the zeroed ones blank) beside the curves, where dotted lines mark the operations and the accuracy
drops and recovers.
"""
from __future__ import annotations

import argparse

from make_screenshots import OUT, paused_window, settle, wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with the four MNIST IDX files")
    parser.add_argument("--before", type=int, default=500, help="steps before the surgery")
    parser.add_argument("--after", type=int, default=400, help="steps after it")
    args = parser.parse_args()
    w = paused_window(args.data_dir, "cntk-conv", args.before)
    count = w.session.model.layers.conv1.weight.shape[0]
    operations = [("conv1", 0, "freeze"), ("conv1", 2, "reinit")] + [("conv1", i, "zero") for i in range(3, count)]
    for layer, index, action in operations:
        w.controller.operate_filter(layer, index, action)
    wait_until(lambda: len(w.session.surgeries) == len(operations), timeout=60)
    w.toggle_pause()
    start = w.session.history.steps
    wait_until(lambda: w.session.history.steps >= start + args.after, timeout=600)
    w.toggle_pause()
    wait_until(lambda: w.session.state == "paused")
    w.docks["filters"].raise_()
    w.docks["curves"].raise_()
    w.filters.select_filter("conv1", 2)
    settle(1.5)
    OUT.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(OUT / "surgery.png"))
    print("wrote", OUT / "surgery.png", flush=True)
    w.stop()
    wait_until(lambda: not w.controller.active, timeout=60)
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
