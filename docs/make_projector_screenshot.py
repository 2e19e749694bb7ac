"""A screenshot of the projector and the nearest training digits during a real run (docs/screenshots/projector.png).

    QT_QPA_PLATFORM=offscreen python docs/make_projector_screenshot.py --data-dir PATH/TO/mnist

Trains `gorner-dropout` on full MNIST in the real window for a few hundred steps, pauses it, puts a test
image of a 4 on the canvas (the star in the cloud, its nearest training digits under the canvas), lassoes a
group of points (their images in the gallery, the outline kept on the plot) and grabs the projector and the
draw panel side by side.
"""
from __future__ import annotations

import argparse

import numpy as np

from PySide6.QtGui import QPainter, QPixmap

from make_screenshots import OUT, paused_window, settle, wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with the four MNIST IDX files")
    parser.add_argument("--steps", type=int, default=300, help="training steps before the picture")
    args = parser.parse_args()
    w = paused_window(args.data_dir, "gorner-dropout", args.steps)
    data = w.session.data
    four = int(np.flatnonzero(data.test.labels == 4)[3])
    w.draw.set_image(data.test.raw[four].astype(np.float32) / 255.0)
    w.docks["projector"].show()
    w.docks["projector"].raise_()
    w.docks["draw"].raise_()
    settle(1.0)
    p = w.projector
    p.wait(120000)
    wait_until(lambda: p.shown() is not None and w.draw.nearest.shown(), timeout=120)
    c = p.shown().coords
    x0, x1 = np.percentile(c[:, 0], [50, 90])
    y0, y1 = np.percentile(c[:, 1], [10, 45])
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    for x, y in ring:  # as a drag would: the outline stays on show with the gallery's points
        from PySide6.QtCore import QPointF

        p.view_box.add_lasso_point(QPointF(x, y))
    p.view_box.finish_lasso()
    settle(1.5)
    left, right = w.docks["projector"].grab(), w.docks["draw"].grab()
    out = QPixmap(left.width() + right.width(), max(left.height(), right.height()))
    out.fill(w.palette().window().color())
    painter = QPainter(out)
    painter.drawPixmap(0, 0, left)
    painter.drawPixmap(left.width(), 0, right)
    painter.end()
    OUT.mkdir(parents=True, exist_ok=True)
    out.save(str(OUT / "projector.png"))
    print("wrote", OUT / "projector.png", flush=True)
    w.controller.stop()
    wait_until(lambda: not w.controller.active, timeout=60)
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
