"""The window on a folder of colour images (docs/screenshots/colour.png and colour_maps.png).

    QT_QPA_PLATFORM=offscreen python docs/make_colour_screenshot.py [--epochs 4]

Generates a small colour dataset in class subfolders (9 classes: a red, green or blue disc, square or bar on
a dark noisy background, 32 x 32 with every 5th image 48 x 40, PNG and JPEG), opens it in the real window
with the ConvNetJS CIFAR-10 preset, trains a few epochs and grabs the window with the filters (the first
layer in colour) and with the feature maps (the input's red, green and blue channels).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_screenshots import OUT, settle, wait_until  # noqa: E402

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230)}
SHAPES = ("disc", "square", "bar")


def make_folder(root: Path, per_class: int = 150, seed: int = 0) -> Path:
    """``root/train/<colour>-<shape>/`` and ``root/test/...``: 80% / 20% of ``per_class`` images each."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class * 4 // 5), ("test", per_class // 5)):
        for shape in SHAPES:
            for colour, rgb in COLOURS.items():
                folder = root / split / f"{colour}-{shape}"
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    width, height = (32, 32) if i % 5 else (48, 40)
                    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 90, 3)))
                    pen = ImageDraw.Draw(image)
                    r = int(rng.integers(6, 12))
                    x, y = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
                    fill = tuple(int(np.clip(v + rng.integers(-30, 30), 0, 255)) for v in rgb)
                    if shape == "disc":
                        pen.ellipse([x - r, y - r, x + r, y + r], fill=fill)
                    elif shape == "square":
                        pen.rectangle([x - r, y - r, x + r, y + r], fill=fill)
                    else:
                        pen.rectangle([x - r, y - 3, x + r, y + 3], fill=fill)
                    noisy = np.asarray(image).astype(int) + rng.integers(-12, 12, (height, width, 3))
                    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
                        folder / (f"{i:03d}.png" if i % 3 else f"{i:03d}.jpg"))
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["CNNVIZ_NO_SETTINGS"] = "1"
    os.environ["CNNVIZ_DATA_DIR"] = tempfile.mkdtemp(prefix="cnnviz-shots-")
    folder = make_folder(Path(tempfile.mkdtemp(prefix="cnnviz-colour-")) / "coloured-shapes")
    OUT.mkdir(parents=True, exist_ok=True)

    from cnnviz.app import create_window

    w = create_window([])
    w.confirm = lambda *a: True
    w.resize(1600, 1000)
    w.apply_preset("convnetjs-cifar")
    wait_until(lambda: not w.loader.busy)
    w.request_dataset("sample", str(folder))
    wait_until(lambda: not w.loader.busy)
    assert w.session.spec.input_shape[0] == 3, "the folder should load in colour"
    w.session.set_recipe(w.session.recipe.replace(train__epochs=args.epochs))
    w.train()
    wait_until(lambda: not w.controller.active, timeout=1800)
    w.session.select_test_image(7)
    d = w.docks
    for name, dock in (("colour", "filters"), ("colour_maps", "feature_maps")):
        d["curves"].raise_()
        d[dock].raise_()
        settle(1.0)
        path = OUT / f"{name}.png"
        w.grab().save(str(path))
        print("wrote", path, flush=True)
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
