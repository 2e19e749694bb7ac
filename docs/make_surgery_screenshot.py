"""A screenshot of filter surgery during a real run (docs/screenshots/surgery.png).

    QT_QPA_PLATFORM=offscreen python docs/make_surgery_screenshot.py --data-dir PATH/TO/mnist

Trains `cntk-conv` on full MNIST in the real window, pauses it, freezes one filter of conv1, zeroes a third of
the others and re-initialises one, goes on training, and grabs the window: the filters (the frozen one
outlined, the zeroed ones blank) beside the curves, where dotted lines mark the operations and the accuracy
drops and recovers.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from make_screenshots import OUT, settle, wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with the four MNIST IDX files")
    parser.add_argument("--before", type=int, default=500, help="steps before the surgery")
    parser.add_argument("--after", type=int, default=400, help="steps after it")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["CNNVIZ_NO_SETTINGS"] = "1"
    os.environ["CNNVIZ_DATA_DIR"] = tempfile.mkdtemp(prefix="cnnviz-shots-")

    from cnnviz.app import create_window

    w = create_window([])
    w.confirm = lambda *a: True
    w.resize(1600, 1000)
    w.apply_preset("cntk-conv")
    wait_until(lambda: not w.loader.busy)
    w.request_dataset("sample", str(Path(args.data_dir).resolve()))
    wait_until(lambda: not w.loader.busy)
    w.session.set_recipe(w.session.recipe.replace(train__epochs=2))
    w.train()
    wait_until(lambda: w.session.history.steps >= args.before, timeout=600)
    w.toggle_pause()
    wait_until(lambda: w.session.state == "paused")
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
