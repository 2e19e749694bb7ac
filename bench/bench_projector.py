"""The projector's costs: t-SNE of 10,000 test images, a PCA or nearest-bank refresh, and the GUI thread's
share of every pen move (the nearest digits' query, the projector's star).

    python bench/bench_projector.py [--data-dir PATH/TO/mnist] [--points 10000] [--steps 300]

`gorner-dropout` trained for --steps steps (a model that has learned a little: its embedding has clusters),
then: t-SNE of the test set's embeddings (up to --points) as the projector runs it (openTSNE, progress every
10 iterations); one PCA refresh (2,000 test images, background thread); one nearest-digit bank refresh
(5,000 training images); per pen move on the GUI thread: the prediction (reference), the nearest digits'
query and display, and placing the projector's star (p50/p99 of 300 calls). Prints; writes nothing.
Targets: t-SNE of 10,000 points <= 60 s with a progress bar.
"""
from __future__ import annotations

import argparse
import time

from bench_common import load_average, load_note, pct, qapp, setup_env, spin_until

setup_env()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="MNIST from this folder (default: the embedded sample)")
    parser.add_argument("--points", type=int, default=10_000, help="test images for t-SNE")
    parser.add_argument("--steps", type=int, default=300, help="training steps before measuring")
    args = parser.parse_args()
    app = qapp()
    import numpy as np
    import torch

    torch.set_num_threads(1)  # as the window (cnnviz.app)
    from cnnviz.config import DataConfig
    from cnnviz.data.prepare import load_data
    from cnnviz.gui.session import Session
    from cnnviz.gui.widgets.draw_panel import DrawPanel
    from cnnviz.gui.widgets.projector_view import ProjectorView, _pca_work
    from cnnviz.inspect.projection import embed_and_predict, subset_indices
    from cnnviz.inspect.tsne import tsne
    from cnnviz.presets import get_preset
    from cnnviz.training.trainer import Trainer

    load0 = load_average()
    data = load_data(DataConfig(data_dir=args.data_dir, validation="none") if args.data_dir
                     else DataConfig(validation="none"))
    preset = get_preset("gorner-dropout")
    recipe = preset.recipe.replace(train__max_steps=args.steps, train__evaluate_test=False, data__validation="none")
    trainer = Trainer(preset.spec, recipe, data)
    trainer.fit()
    session = Session(preset.spec, recipe)
    session.set_data(data)
    session.apply_snapshot(trainer.snapshot())
    print(f"{data.summary()}; gorner-dropout after {args.steps} steps", flush=True)

    idx = subset_indices(len(data.test), args.points)
    emb, _ = embed_and_predict(session.model, data.test.images[idx])
    reports = []
    t0 = time.perf_counter()
    tsne(emb, progress=lambda d, t: reports.append(time.perf_counter()))
    took = time.perf_counter() - t0
    gaps = np.diff([t0, *reports])
    print(f"t-SNE of {len(idx):,} points x {emb.shape[1]} features: {took:.1f} s (target <= 60 s); "
          f"{len(reports)} progress reports, longest gap {gaps.max():.1f} s", flush=True)

    view, panel = ProjectorView(session), DrawPanel(session)
    view.show()
    panel.show()
    spin_until(lambda: view.shown() is not None and panel.nearest.bank_ready(), 300)
    view.wait()
    view.class_actmax.wait()
    t = time.perf_counter()
    view._pca_job.submit(_pca_work(view._pca_model.take(session), data.test.images, data.test.labels.numpy(),
                                   view._subset(2000), session.weights_step))
    view.wait()
    print(f"one PCA refresh (2,000 test images, background thread): {1e3 * (time.perf_counter() - t):.0f} ms")
    t = time.perf_counter()
    panel.nearest._recompute()
    panel.nearest.wait()
    print(f"one nearest-digit bank refresh (5,000 training images, background): "
          f"{1e3 * (time.perf_counter() - t):.0f} ms")
    pixels = data.test.raw[0].astype(np.float32) / 255
    e = panel.nearest.query(pixels)

    def timed(fn, n=300):
        fn()
        out = []
        for _ in range(n):
            a = time.perf_counter()
            fn()
            out.append((time.perf_counter() - a) * 1e3)
        return f"p50 {pct(out, 50):.2f} / p99 {pct(out, 99):.2f} ms"

    print(f"per pen move, GUI thread: prediction {timed(lambda: session.predict(pixels))}; nearest digits "
          f"(embed, search 5,000, show 8) {timed(lambda: panel.nearest.query(pixels))}; projector star "
          f"{timed(lambda: view.set_drawing(e))}")
    view.shutdown()
    panel.shutdown()
    app.processEvents()
    print(load_note(load0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
