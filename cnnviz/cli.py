"""Headless sub-commands on the same engine as the window: presets, train, evaluate, predict, download.

A user error (bad file, bad option, impossible spec) prints one line ``error: ...`` on stderr and exits
with code 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
from pathlib import Path

from cnnviz.errors import CnnvizError
from cnnviz.training.callbacks import Callback

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors become ours: one line, exit 2
        raise CnnvizError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnviz", description="Watch a CNN learn. With no command, opens the window.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("presets", help="list the tutorial presets")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("train", help="train a preset headless and save the run")
    p.add_argument("--preset", default="gorner", help="preset name (see `cnnviz presets`)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: the preset's)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data-dir", help="a folder holding the four MNIST-format IDX files")
    source.add_argument("--dataset", choices=["sample", "mnist", "fashion", "kmnist"],
                        help="the embedded sample (default) or a dataset downloaded on demand")
    p.add_argument("--out", help="run folder to write the checkpoint and metrics into")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the preset's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    p.add_argument("--subset", type=int, help="train on a stratified subset of N examples")
    p.add_argument("--max-steps", type=int, help="stop after this many batches")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where to train (default auto)")
    p.add_argument("--threads", type=int, help="torch threads (default: cores - 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of text")

    p = sub.add_parser("evaluate", help="evaluate a saved run on its test set")
    p.add_argument("run", help="a run folder or checkpoint file")
    p.add_argument("--data-dir", help="evaluate on this IDX folder instead of the run's dataset")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("predict", help="classify an image file with a saved run")
    p.add_argument("checkpoint", help="a run folder or checkpoint file")
    p.add_argument("image", help="a PNG/JPEG of one digit (any size; dark on light or light on dark)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("download", help="download a dataset into the cache")
    p.add_argument("dataset", choices=["mnist", "fashion", "kmnist"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; ``argv`` None means this process is the ``cnnviz`` program itself (so ``train`` may
    tune the process for training, which a caller that passes ``argv`` never wants done to its own)."""
    own_process = argv is None
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        args.own_process = own_process
        if args.command is None:
            from cnnviz.app import run_app

            return run_app([a for a in argv if a != "--debug"])
        return COMMANDS[args.command](args)
    except CnnvizError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def cmd_presets(args) -> int:
    from cnnviz.models import summarize
    from cnnviz.presets import PRESETS

    rows = []
    for preset in PRESETS.values():
        s = summarize(preset.spec)
        rows.append({"name": preset.name, "title": preset.title, "source": preset.source, "params": s.total,
                     "trainable": s.trainable, "reported_accuracy": preset.reported_accuracy})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            acc = f"{r['reported_accuracy'] * 100:.2f}%" if r["reported_accuracy"] else "-"
            print(f"{r['name']:<15} {r['params']:>10,} params  tutorial {acc:>7}  {r['title']}")
    return 0


def cmd_train(args) -> int:
    from cnnviz.data.prepare import load_data
    from cnnviz.presets import get_preset
    from cnnviz.training.process_tuning import tune_for_training
    from cnnviz.training.checkpoint import CHECKPOINT_NAME, from_trainer, save_checkpoint
    from cnnviz.training.trainer import Trainer

    preset = get_preset(args.preset)
    changes = {}
    for key, value in (("train__epochs", args.epochs), ("train__seed", args.seed),
                       ("train__batch_size", args.batch_size), ("optimizer__lr", args.lr),
                       ("data__train_subset", args.subset), ("train__max_steps", args.max_steps),
                       ("train__device", args.device), ("train__threads", args.threads),
                       ("data__data_dir", args.data_dir), ("data__dataset", args.dataset)):
        if value is not None:
            changes[key] = value
    if args.seed is not None:
        changes["data__seed"] = args.seed
    recipe = preset.recipe.replace(**changes).validate()
    progress = _Progress(enabled=not args.json)
    data = load_data(recipe.data, progress=progress.download, fallback=False)
    if data.notice:
        print(f"note: {data.notice}", file=sys.stderr)
    trainer = Trainer(preset.spec, recipe, data, callbacks=[progress])
    if args.own_process:
        tune_for_training()  # the `cnnviz train` process only trains from here on
    result = trainer.fit()
    progress.finish()
    if args.out:
        out = Path(args.out)
        save_checkpoint(out / CHECKPOINT_NAME, from_trainer(trainer))
        (out / "metrics.csv").write_text(trainer.history.to_csv())
        (out / "steps.csv").write_text(trainer.history.steps_csv())
    evaluation = result.evaluation
    summary = {
        "preset": preset.name, "params": sum(_param_counts(trainer.model)), "epochs": result.epochs_completed,
        "steps": result.steps, "status": result.status, "dataset": data.name,
        "test_accuracy": evaluation.accuracy if evaluation else None, "seconds": round(result.seconds, 3),
        "images_per_second": round(result.images_per_second, 1),
    }
    if args.out:
        (Path(args.out) / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    if result.error:
        raise CnnvizError(result.error)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_evaluation(evaluation, data.class_names)
        print(f"{result.status}: {result.epochs_completed} epochs, {result.steps} steps in {result.seconds:.1f} s "
              f"({result.images_per_second:,.0f} images/s)" + (f"; saved to {args.out}" if args.out else ""))
    return 0


def cmd_evaluate(args) -> int:
    from cnnviz.config import DataConfig
    from cnnviz.data.prepare import load_data
    from cnnviz.training.checkpoint import load_checkpoint
    from cnnviz.training.trainer import evaluate
    import dataclasses

    ckpt = load_checkpoint(args.run)
    data_cfg = ckpt.recipe.data
    if args.data_dir:
        data_cfg = dataclasses.replace(data_cfg, data_dir=args.data_dir)
    data = load_data(data_cfg, fallback=False)
    if data.num_classes != ckpt.spec.num_classes:
        raise CnnvizError(f"the run has {ckpt.spec.num_classes} classes but this data has {data.num_classes}")
    split = dataclasses.replace(data.test)
    split = _renormalize(split, ckpt.normalization)
    result = evaluate(ckpt.build_model(), split, "test", ckpt.step)
    if args.json:
        print(json.dumps({"test_accuracy": result.accuracy, "loss": result.loss,
                          "per_class_accuracy": [float(v) for v in result.per_class_accuracy],
                          "confusion": result.confusion.tolist(), "examples": int(len(result.labels))}))
    else:
        _print_evaluation(result, data.class_names)
    return 0


def cmd_predict(args) -> int:
    import numpy as np
    import torch

    from cnnviz.imagefile import read_grayscale
    from cnnviz.inspect.activations import predict_proba
    from cnnviz.inspect.canvas import to_mnist
    from cnnviz.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    gray = read_grayscale(args.image)  # float32 in [0, 1]
    if gray.mean() > 0.5:  # dark ink on light paper: MNIST is light ink on black
        gray = 1.0 - gray
    image = to_mnist(gray)
    if image is None:
        raise CnnvizError(f"{args.image}: the image is blank; there is nothing to classify")
    x = ckpt.normalization.apply(image[None])
    probs = predict_proba(ckpt.build_model(), x)
    probs = np.asarray(probs).reshape(-1)
    if not np.isfinite(probs).all():  # a file can hold finite weights that still overflow on this image
        raise CnnvizError(f"{args.checkpoint}: the model's output for this image is not a number; "
                          f"its weights or normalisation are unusable")
    best = int(torch.tensor(probs).argmax())
    if args.json:
        print(json.dumps({"prediction": ckpt.class_names[best], "class": best,
                          "probabilities": [float(p) for p in probs]}))
    else:
        print(f"{ckpt.class_names[best]} ({probs[best] * 100:.1f}%)")
        for name, p in zip(ckpt.class_names, probs):
            print(f"  {name:>12} {p * 100:6.2f}% {'#' * int(round(p * 40))}")
    return 0


def cmd_download(args) -> int:
    from cnnviz.data.download import fetch_dataset

    progress = _Progress(enabled=True)
    folder = fetch_dataset(args.dataset, progress=progress.download)
    progress.finish()
    print(f"{args.dataset}: ready in {folder}")
    return 0


COMMANDS = {"presets": cmd_presets, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "download": cmd_download}


def _renormalize(split, normalization):
    import dataclasses

    return dataclasses.replace(split, images=normalization.apply(split.raw))


def _param_counts(model) -> tuple[int, int]:
    from cnnviz.models import count_parameters

    return count_parameters(model)


def _print_evaluation(evaluation, class_names) -> None:
    if evaluation is None:
        return
    print(f"test accuracy {evaluation.accuracy * 100:.2f}% on {len(evaluation.labels):,} images "
          f"(loss {evaluation.loss:.4f})")
    for name, acc in zip(class_names, evaluation.per_class_accuracy):
        print(f"  {name:>12}: {acc * 100:6.2f}%")


class _Progress(Callback):
    """A one-line progress bar with throughput and ETA on stderr, redrawn 10 times a second (every 5 s when
    stderr is not a terminal).

    It asks the training thread for the latest metrics between two batches (`control.call_soon`) instead of
    listening to every step, which keeps the Trainer on its cheapest path (a step listener costs ~4% of a
    cntk-conv step)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._dirty = False
        self.interval = 0.1 if self.tty else 5.0  # seconds between two redraws of the line
        self._test = None  # a test evaluation not shown yet
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def on_fit_start(self, trainer) -> None:
        if not self.enabled:
            return
        interval = self.interval

        def poll() -> None:
            while not self._stop.wait(interval):
                trainer.control.call_soon(lambda: self.show(trainer.latest_step_metrics()))

        self._stop.clear()
        self._poller = threading.Thread(target=poll, name="cnnviz-progress", daemon=True)
        self._poller.start()

    def on_fit_end(self, trainer, result) -> None:
        if self._poller is not None:
            self._stop.set()
            self._poller.join()
            self._poller = None
        self._test = None

    def show(self, m) -> None:
        """Redraw the line from a step's metrics (None before the first step: nothing to show)."""
        if m is None or not self.enabled:
            return
        eta = _fmt_seconds(m.eta_seconds) if m.eta_seconds is not None else "?"
        bar = "#" * int(m.progress * 30)
        rate = f"{m.images_per_second:,.0f}" if m.images_per_second > 0 else "-"  # one poll gives no rate yet
        line = (f"epoch {m.epoch}/{m.epochs} [{bar:<30}] {m.progress * 100:5.1f}% loss {m.loss:.4f} "
                f"acc {m.accuracy * 100:5.1f}% {rate} img/s ETA {eta}")
        self._write(line)

    def on_epoch_end(self, trainer, m) -> None:
        if not self.enabled:
            return
        val = f", val acc {m.val_accuracy * 100:.2f}%" if m.val_accuracy is not None else ""
        test, self._test = self._test, None  # the epoch's test evaluation comes just before its end
        test = f", test acc {test.accuracy * 100:.2f}%" if test is not None else ""
        self._write(f"epoch {m.epoch}: loss {m.train_loss:.4f}, train acc {m.train_accuracy * 100:.2f}%{val}{test}, "
                    f"{m.seconds:.1f} s, {m.images_per_second:,.0f} img/s", newline=True)

    def on_evaluation(self, trainer, evaluation) -> None:
        if self.enabled:
            self._test = evaluation  # shown on its epoch's line (the final one is printed with the results)

    def download(self, done: int, total: int | None, message: str = "") -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and (total is None or done < total)):
            return
        self._last = now
        size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        self._write(f"{message} {size}")

    def _write(self, line: str, newline: bool = False) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line + ("\n" if newline else ""))
            self._dirty = not newline
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self._dirty:
            sys.stderr.write("\n")
            self._dirty = False


def _fmt_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
