"""The Trainer's GPU fast path against a hand-written plain loop with the same tricks; time to 99% on MNIST.

    python bench/bench_gpu.py [--data-dir PATH/TO/mnist] [--presets cntk-conv,gorner-dropout] [--steps 2000]
                              [--no-99]

One prepared script for a session that has a CUDA GPU (without one it says so and exits 0). It prints:

1. images/s of the Trainer and of a plain PyTorch loop, the same preset, batch and data, for each variant:
     sync1    the Trainer reads the loss back after every step (check_every 1: a host sync a step, as before);
     fast     the defaults on a GPU: data on the device once, the divergence check every 32 steps, no sync a step;
     bf16     fast + bfloat16 autocast of the forward pass (precision bf16);
     compile  fast + torch.compile (the first steps, compiling, are left out of the timing);
   The plain loop has the same tricks (data on the device, a shuffled order on the device, no .item() per step,
   the same autocast / compile), so the ratio Trainer / plain is the Trainer's own overhead. Each figure times
   --steps steps after --warmup steps, inside one fit (no evaluation), with torch.cuda.synchronize around.
2. (unless --no-99, and with --data-dir) the seconds gorner-dropout takes to reach 99% test accuracy on full MNIST
   with the fast defaults (test set evaluated at every epoch end, up to the preset's 15 epochs), and with bf16.

Issue 4's note, for comparison: cntk-conv 37,000 img/s on an H100 with a host sync every step and the training set
copied to the device every epoch. Decide from these figures which of bf16 / compile to turn on by default: a
variant that is not faster than `fast` stays off.
"""
from __future__ import annotations

import argparse
import sys
import time

from bench_common import setup_env

VARIANTS = {"sync1": dict(check_every=1), "fast": {}, "bf16": dict(precision="bf16"), "compile": dict(compile=True)}


def _data(preset, data_dir):
    from cnnviz.data.prepare import load_data

    recipe = preset.recipe.replace(data__data_dir=data_dir) if data_dir else preset.recipe
    return recipe, load_data(recipe.data, fallback=False)


def trainer_rate(preset, recipe, data, variant: dict, warmup: int, steps: int) -> float:
    """Images/s of the Trainer over `steps` steps after `warmup` (one fit each, no evaluation)."""
    import torch

    from cnnviz.models import spec_for_data
    from cnnviz.training.trainer import Trainer

    changes = {f"train__{k}": v for k, v in variant.items()}
    recipe = recipe.replace(train__device="cuda", train__evaluate_test=False, train__max_steps=warmup,
                            train__epochs=10_000, **changes)
    trainer = Trainer(spec_for_data(preset.spec, data), recipe, data)
    trainer.fit()
    torch.cuda.synchronize()
    trainer.recipe = trainer.recipe.replace(train__max_steps=warmup + steps)
    started = time.perf_counter()
    trainer.fit()
    torch.cuda.synchronize()
    return steps * recipe.train.batch_size / (time.perf_counter() - started)


def plain_rate(preset, recipe, data, variant: dict, warmup: int, steps: int) -> float:
    """Images/s of a plain loop with the same tricks as the variant."""
    import contextlib

    import torch
    import torch.nn.functional as F

    from cnnviz.models import build_model, spec_for_data
    from cnnviz.training.optim import make_optimizer

    torch.manual_seed(0)
    model = build_model(spec_for_data(preset.spec, data)).cuda().train()
    optimizer = make_optimizer(model.parameters(), recipe.optimizer)
    forward = torch.compile(model) if variant.get("compile") else model
    images, labels = data.train.images.cuda(), data.train.labels.cuda()
    n, size = len(labels), recipe.train.batch_size
    order = torch.randperm(n, device="cuda")
    sync_every_step = variant.get("check_every") == 1

    def cast():
        if variant.get("precision") == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run(first: int, count: int) -> None:
        for i in range(first, first + count):
            start = (i * size) % (n - size)
            index = order[start:start + size]
            optimizer.zero_grad(set_to_none=True)
            with cast():
                loss = F.cross_entropy(forward(images[index]), labels[index])
            if sync_every_step:
                loss.item()
            loss.backward()
            optimizer.step()

    run(0, warmup)
    torch.cuda.synchronize()
    started = time.perf_counter()
    run(warmup, steps)
    torch.cuda.synchronize()
    return steps * size / (time.perf_counter() - started)


def time_to_99(preset, recipe, data, variant: dict) -> tuple[float | None, int, float]:
    """(seconds to the first epoch end with test accuracy >= 99%, or None; epochs; best accuracy)."""
    from cnnviz.models import spec_for_data
    from cnnviz.training.callbacks import Callback
    from cnnviz.training.trainer import Trainer

    class Watch(Callback):
        reached, best, started = None, 0.0, 0.0

        def on_fit_start(self, trainer):
            self.started = time.perf_counter()

        def on_evaluation(self, trainer, evaluation):
            self.best = max(self.best, evaluation.accuracy)
            if self.reached is None and evaluation.accuracy >= 0.99:
                self.reached = time.perf_counter() - self.started
                trainer.request_stop()

    watch = Watch()
    changes = {f"train__{k}": v for k, v in variant.items()}
    trainer = Trainer(spec_for_data(preset.spec, data), recipe.replace(train__device="cuda", **changes), data,
                      callbacks=[watch])
    trainer.fit()
    return watch.reached, trainer.epoch, watch.best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="a folder of the four MNIST IDX files (default: the embedded sample, "
                        "which is too small for the 99%% figure)")
    parser.add_argument("--presets", default="cntk-conv,gorner-dropout")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--no-99", action="store_true", help="leave out the time to 99%")
    args = parser.parse_args()
    setup_env()
    import torch

    if not torch.cuda.is_available():
        print("bench_gpu: skipped, no CUDA GPU here (torch " + torch.__version__ + ")")
        return 0
    from cnnviz.presets import get_preset

    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | {args.steps} steps after {args.warmup}")
    for name in args.presets.split(","):
        preset = get_preset(name)
        recipe, data = _data(preset, args.data_dir)
        for variant_name in args.variants.split(","):
            variant = VARIANTS[variant_name]
            ours = trainer_rate(preset, recipe, data, variant, args.warmup, args.steps)
            plain = plain_rate(preset, recipe, data, variant, args.warmup, args.steps)
            print(f"{name:<15} {variant_name:<8} Trainer {ours:>10,.0f} img/s   plain {plain:>10,.0f} img/s   "
                  f"Trainer/plain {ours / plain:.2f}", flush=True)
    if not args.no_99:
        if not args.data_dir:
            print("time to 99%: skipped (give --data-dir with full MNIST)")
            return 0
        preset = get_preset("gorner-dropout")
        recipe, data = _data(preset, args.data_dir)
        for variant_name in ("fast", "bf16"):
            seconds, epochs, best = time_to_99(preset, recipe, data, VARIANTS[variant_name])
            reached = f"{seconds:.1f} s ({epochs} epochs)" if seconds is not None else f"not reached in {epochs} epochs"
            print(f"gorner-dropout {variant_name:<8} to 99% test accuracy: {reached}; best {best * 100:.2f}%",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
