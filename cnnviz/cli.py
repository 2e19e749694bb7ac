"""Headless sub-commands on the same engine as the window: presets, train, evaluate, predict, explain,
top-patches, ablate, export, download.

A user error (bad file, bad option, impossible spec) prints one line ``error: ...`` on stderr and exits
with code 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from cnnviz.config import DATASETS as DATASET_CHOICES
from cnnviz.errors import CnnvizError
from cnnviz.formatting import format_seconds
from cnnviz.training.callbacks import Callback

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # as a Unix tool killed by SIGPIPE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors become ours: one line, exit 2
        raise CnnvizError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnviz", description="Watch a CNN learn. With no command, opens the window "
                     "(`cnnviz RUN` opens a saved run in it).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--data-dir", dest="window_data_dir", metavar="DIR",
                        help="open the window on this data folder (four IDX files, or images in class "
                             "subfolders) instead of the embedded sample")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("presets", help="list the tutorial presets")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("train", help="train a preset headless and save the run")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--preset", help="preset name (see `cnnviz presets`; default gorner)")
    model.add_argument("--model", metavar="FILE.json", help="a model saved from the window's model editor")
    p.add_argument("--epochs", type=int, help="number of epochs in all (default: the preset's)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data-dir", help="a folder holding the four MNIST-format IDX files, or images "
                        "(PNG/JPEG/BMP/GIF, gray or colour) in class subfolders: DIR/train/<class>/ and "
                        "DIR/test/<class>/, or DIR/<class>/ (every 5th file of a class is a test image); "
                        "brought to the most common size, at most 64 pixels a side, and cached")
    source.add_argument("--dataset", choices=list(DATASET_CHOICES),
                        help="the embedded sample (default) or a dataset downloaded on demand (cifar10: "
                             "CIFAR-10's 170 MB binary archive, MD5-verified)")
    p.add_argument("--out", help="run folder to write the checkpoint and metrics into (checked before training)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace the run that --out already holds")
    again.add_argument("--resume", action="store_true", help="continue the run that --out holds")
    p.add_argument("--no-timeline", action="store_true",
                   help="record only the final checkpoint and metrics, no timeline (keyframes, anchors, statistics)")
    p.add_argument("--timeline-mb", type=float, metavar="MB",
                   help="disk budget of the run folder, 0 to 100000 MB (default 100): keyframes are written "
                        "while it has room; the anchors that make every step exact are always kept")
    p.add_argument("--seed", type=int, help="random seed, 0 to 2**32 - 1 (default 0)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the preset's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    p.add_argument("--subset", type=int, help="train on a stratified subset of N examples")
    p.add_argument("--max-steps", type=int, help="stop when the run has done this many batches in all")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where to train (default auto)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, every core; with --nproc N, "
                   "cores / N in each process)")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train with N processes on this machine (DistributedDataParallel started as torchrun "
                        "does: gloo on CPUs, NCCL with one GPU each); --batch-size stays the global batch, split "
                        "evenly (it must divide by N); rank 0 alone writes --out and prints. Several machines: "
                        "torchrun --nnodes ... -m cnnviz train ...")
    p.add_argument("--check-every", type=int, metavar="K",
                   help="read the losses back and check for divergence every K steps instead of every step (no "
                        "host sync a step; a divergence goes back to the last good state as ever); default: every "
                        "step on one CPU process, 32 on a GPU or with several processes")
    p.add_argument("--precision", choices=["fp32", "bf16"], help="bf16: the forward pass under bfloat16 autocast "
                   "(GPUs with bf16; default fp32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model for training (a GPU's fast "
                   "path; the first steps wait for the compiler)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of text")

    p = sub.add_parser("evaluate", help="evaluate a saved run on its test set")
    p.add_argument("run", help="a run folder or checkpoint file")
    p.add_argument("--data-dir", help="evaluate on this data folder (IDX files or class subfolders of images) "
                   "instead of the run's dataset")
    p.add_argument("--step", type=int, help="the exact weights of this step (0: the initial weights), recomputed "
                   "from the run's timeline")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("info", help="what a run folder holds: steps, epochs, keyframes, statistics, size")
    p.add_argument("run", help="a run folder or checkpoint file")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("export", help="take a run to other tools: its model as ONNX, its learning as TensorBoard "
                       "event files or as an animation (GIF, MP4)", description="Export a run. Every output is checked before any work; "
                       "several can be written at once. View a TensorBoard export with `tensorboard --logdir DIR` "
                       "(pip install tensorboard).")
    p.add_argument("run", help="a run folder or checkpoint file")
    p.add_argument("--onnx", metavar="OUT.onnx", help="the model at --step as ONNX: input 'pixels', float32 (N, C, H, "
                   "W) in [0, 1] as read from the files (the run's normalisation is inside), output 'scores' (logits)")
    p.add_argument("--tensorboard", metavar="DIR", help="the whole run as TensorBoard event files in DIR/<run name>/ "
                   "(curves, weight and gradient histograms, filters at keyframes); a second export replaces them")
    p.add_argument("--step", type=int, metavar="N", help="the step of the --onnx model (default: the last; 0: the initial "
                   "weights), recomputed exactly from the run's timeline")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of text")
    _add_animation_options(p)

    p = sub.add_parser("predict", help="classify an image file with a saved run")
    p.add_argument("checkpoint", help="a run folder or checkpoint file")
    p.add_argument("image", help="a PNG/JPEG of one digit (any size; dark on light or light on dark); for a model "
                   "trained on colour images, any picture, fitted to its size as its training images were")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("explain", help="why a run's model reads an image as it does: its probabilities, the nearest "
                       "training examples, and the smallest change that makes it each other class")
    p.add_argument("run", help="a run folder or checkpoint file")
    p.add_argument("image", help="a PNG/JPEG of one digit, prepared as `cnnviz predict` does")
    p.add_argument("--out", metavar="DIR", help="write each changed image found as DIR/counterfactual-<class>.png (which "
                   "`cnnviz predict` reads as that class)")
    _add_step_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("top-patches", help="the test images (and the patch in each) that excite each filter of a "
                       "conv layer most")
    p.add_argument("run", help="a run folder or checkpoint file")
    p.add_argument("--layer", required=True, help="a conv layer's name, e.g. conv1 (see the model table)")
    p.add_argument("--k", type=int, default=8, help=f"patches per filter, {K_RANGE[0]} to {K_RANGE[1]} (default 8)")
    _add_step_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output: filter index -> its patches "
                   "(index, row, col, activation), highest first")

    p = sub.add_parser("ablate", help="the test accuracy with each filter of a conv layer zeroed")
    p.add_argument("run", help="a run folder or checkpoint file")
    p.add_argument("--layer", required=True, help="a conv layer's name, e.g. conv1 (see the model table)")
    _add_step_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("open", help="open a saved run in the window (or follow one that is training)")
    p.add_argument("run", help="a run folder or checkpoint file")
    p.add_argument("compare", nargs="?", help="a second run to compare with, side by side")
    p.add_argument("--follow", action="store_true",
                   help="follow the run live while another process (cnnviz train --out) writes it")
    p.add_argument("--data-dir", dest="open_data_dir", metavar="DIR",
                   help="the data folder (IDX files or images in class subfolders) to show it on (default: "
                        "the run's own data)")

    p = sub.add_parser("download", help="download a dataset into the cache")
    p.add_argument("dataset", choices=[d for d in DATASET_CHOICES if d != "sample"])
    return parser


K_RANGE = (1, 100)  # top-patches --k
NEAREST = 8  # explain: training examples listed


def _add_step_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--step", type=int, metavar="N", help="the exact weights of step N (0: the initial weights), "
                   "recomputed from the run's timeline (default: the run's last weights)")


# -- export as an animation (cnnviz/exports/animation.py): the options and their dispatch, kept together --------
def _add_animation_options(p: argparse.ArgumentParser) -> None:
    from cnnviz.exports import animation as a

    target = p.add_mutually_exclusive_group()
    target.add_argument("--gif", metavar="OUT.gif", help="write the learning process as a looping GIF")
    target.add_argument("--mp4", metavar="OUT.mp4", help="... as an H.264 MP4 (needs the video extra: "
                        "pip install imageio imageio-ffmpeg)")
    p.add_argument("--view", choices=a.VIEWS, default="filters",
                   help="what the animation shows (default filters; window needs a display or offscreen Qt)")
    p.add_argument("--image", metavar="test:INDEX|FILE.png",
                   help="the input of --view feature-maps: a test image by index (default test:0) or an image file")
    p.add_argument("--fps", type=int, default=a.DEFAULT_FPS,
                   help=f"frames a second, {a.FPS_RANGE[0]} to {a.FPS_RANGE[1]} (default {a.DEFAULT_FPS})")
    p.add_argument("--size", default="x".join(map(str, a.DEFAULT_SIZE)), metavar="WxH",
                   help=f"frame size in pixels, {a.WIDTH_RANGE[0]}-{a.WIDTH_RANGE[1]} x "
                        f"{a.HEIGHT_RANGE[0]}-{a.HEIGHT_RANGE[1]} (default {a.DEFAULT_SIZE[0]}x{a.DEFAULT_SIZE[1]})")
    spacing = p.add_mutually_exclusive_group()
    spacing.add_argument("--every", type=int, metavar="N",
                         help="one frame every N steps (each shows the stored step at or before it)")
    spacing.add_argument("--frames", type=int, metavar="N",
                         help=f"at most N frames, one per stored step, thinned evenly (default {a.DEFAULT_FRAMES})")
    p.add_argument("--compare", metavar="RUN_B", help="a second run, its view beside this run's at the same point "
                   "of training (the same step, or the same fraction of the epoch when its epochs differ)")
    p.add_argument("--scale", choices=["run", "frame"],
                   help="colour scale of each layer: one for the whole run (default for filters: change shows) or "
                        "one per frame (default for feature maps, whose deeper layers grow many times over)")


def _export_animation(args):
    from cnnviz.exports.animation import (DEFAULT_FRAMES, AnimationOptions, StderrProgress, export_animation,
                                          parse_size)

    opts = AnimationOptions(run=args.run, out=args.gif or args.mp4, kind="gif" if args.gif else "mp4",
                            view=args.view, image=args.image, fps=args.fps, size=parse_size(args.size),
                            every=args.every, frames=args.frames or DEFAULT_FRAMES, scale=args.scale,
                            compare=args.compare)
    progress = StderrProgress()
    try:
        return export_animation(opts, progress=progress, note=lambda text: print(f"note: {text}", file=sys.stderr))
    finally:
        progress.finish()


def main(argv: list[str] | None = None) -> int:
    """Run a command; ``argv`` None means this process is the ``cnnviz`` program itself (so ``train`` may
    tune the process for training, which a caller that passes ``argv`` never wants done to its own)."""
    own_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(_open_shorthand(argv))
        args.own_process, args.argv = own_process, argv
        if args.command is None:
            from cnnviz.app import run_app

            return run_app(data_dir=_absolute(args.window_data_dir))
        return COMMANDS[args.command](args)
    except CnnvizError as exc:
        if getattr(exc, "quiet", False):  # another training process said it (see training/distributed.py)
            return EXIT_USER_ERROR
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        from cnnviz.training.distributed import is_secondary_process

        if not is_secondary_process():  # (one of several training processes: rank 0 says it)
            print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnviz presets | head`: the reader went away; end quietly, as Unix tools do
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _open_shorthand(argv: list[str]) -> list[str]:
    """`cnnviz RUN` means `cnnviz open RUN`: a first word that is no command but an existing path."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--data-dir" else 1  # the top-level options before the first word
    if i < len(argv) and argv[i] not in COMMANDS and Path(argv[i]).exists():
        return argv[:i] + ["open"] + argv[i:]
    return argv


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _absolute(path: str | None) -> str | None:
    """A folder as an absolute path, so that a run stores where its data really is."""
    return str(Path(path).expanduser().absolute()) if path else None


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
    from cnnviz.training import distributed

    world = distributed.environment_world_size()  # > 1: this is one of several processes torchrun started
    try:  # the options are checked before anything is created (the same in every process: rank 0 says it)
        if args.resume and not args.out:
            raise CnnvizError("--resume continues the run in a folder: give it with --out RUN")
        if args.overwrite and not args.out:
            raise CnnvizError("--overwrite replaces the run in --out: give the folder with --out RUN")
        if args.nproc is not None and not 1 <= args.nproc <= 1024:
            raise CnnvizError(f"--nproc must be between 1 and 1024, got {args.nproc}")
        budget = _timeline_budget(args.timeline_mb)
        if not args.resume:
            name, spec, recipe = _new_run_setup(args)
            distributed.local_batch_size(recipe.train.batch_size, args.nproc or world)
    except CnnvizError as exc:
        if distributed.is_secondary_process():
            raise distributed.PeerFailed(str(exc)) from None
        raise
    if args.nproc is not None and args.nproc > 1 and world == 1:  # start the processes: each runs this again
        return distributed.launch(args.nproc, distributed.without_option(args.argv, "--nproc"))
    group = distributed.start(args.device or "auto" if args.resume else recipe.train.device)
    try:
        return _train(args, group, budget, *(() if args.resume else (name, spec, recipe)))
    finally:
        if group is not None:
            group.close()


def _train(args, group, budget, name=None, spec=None, recipe=None) -> int:
    """`cnnviz train` in this process: alone (`group` None) or as one of several (rank 0 writes and prints)."""
    import contextlib

    from cnnviz.data.prepare import load_data
    from cnnviz.models import spec_for_data
    from cnnviz.training.process_tuning import tune_for_training
    from cnnviz.training.rundir import RunFolder

    main = group is None or group.is_main
    run = RunFolder(args.out) if args.out else None  # the other ranks only read it (--resume)
    writes = run is not None and main
    existed = run is not None and run.path.exists()
    recorder = None
    try:
        with group.together() if group is not None else contextlib.nullcontext():
            if writes:  # created, writable and ours, before any work; refused while another trains
                run.prepare().acquire()
            if run is not None and args.resume:
                name, spec, recipe, checkpoint = _resume_setup(args, run)
                if group is not None:
                    from cnnviz.training.distributed import local_batch_size

                    local_batch_size(recipe.train.batch_size, group.world_size)
            elif writes and run.holds_run() and not args.overwrite:
                raise CnnvizError(f"{run.path} already holds a run; pass --overwrite to replace it, --resume to "
                                  "continue it, or choose another --out folder")
            progress = _Progress(enabled=not args.json and main)
            data = load_data(recipe.data, progress=progress.download, fallback=False)
            if data.notice and main:
                print(f"note: {data.notice}", file=sys.stderr)
            if not args.resume:  # the model's input shape and class count come from the data
                spec = spec_for_data(spec, data, what=f"{'model' if args.model else 'preset'} '{name}'")
            callbacks = [progress]
            if writes:  # writes the run folder as it trains (the timeline, unless --no-timeline)
                from cnnviz.timeline.recorder import RunRecorder

                recorder = RunRecorder(run.path, name, timeline=not args.no_timeline, budget_bytes=budget,
                                       staging=run.holds_run() and not args.resume,
                                       on_notice=lambda text: print(f"note: {text}", file=sys.stderr))
                callbacks.append(recorder)
            trainer = _make_trainer(spec, recipe, data, callbacks, checkpoint if args.resume else None, group)
        if args.own_process:
            tune_for_training()  # the `cnnviz train` process only trains from here on
        with _stop_on_ctrl_c(trainer, quiet=not main):
            result = trainer.fit()
        progress.finish()
        summary = _summary(name, trainer, result)
        if recorder is not None and recorder.timeline:  # what recording took of the training thread's time
            summary["recording_seconds"] = round(recorder.recording_seconds, 3)
        saved = _outcome(run, recorder, trainer, result, summary) if recorder is not None else None
        if recorder is not None:
            run.worthless = getattr(recorder, "worthless", False)
    finally:
        if writes:
            run.release()
            if not existed and saved_nothing(run):
                shutil.rmtree(run.path, ignore_errors=True)  # we made it and nothing of worth went in
    if result.error:
        if not main:  # the processes failed together (they agree on a divergence); rank 0 says it
            from cnnviz.training.distributed import PeerFailed

            raise PeerFailed(result.error)
        raise CnnvizError(result.error + (f" {saved}" if saved else ""))
    if not main:
        return 0
    if args.json:
        print(json.dumps(summary))
    else:
        _print_evaluation(result.evaluation, data.class_names)
        workers = f" on {trainer.world_size} processes" if trainer.world_size > 1 else ""
        print(f"{result.status}: {result.epochs_completed} epochs, {result.steps} steps in {result.seconds:.1f} s "
              f"({result.images_per_second:,.0f} images/s{workers})" + (f"; {saved}" if saved else ""))
    return 0


def _new_run_setup(args):
    """(name, spec, recipe) of a new run from the options; every problem is a CnnvizError."""
    from cnnviz.presets import get_preset

    if args.model:
        from cnnviz.models.files import read_model_file
        from cnnviz.presets import PRESETS, DEFAULT_PRESET

        spec, name, base = read_model_file(args.model), Path(args.model).stem, PRESETS[DEFAULT_PRESET].recipe
    else:
        preset = get_preset(args.preset or "gorner")
        name, spec, base = preset.name, preset.spec, preset.recipe
    changes = _recipe_changes(args)
    if args.subset is not None:
        changes["data__train_subset"] = args.subset
    if args.seed is not None:
        changes["train__seed"] = changes["data__seed"] = args.seed
    if args.data_dir is not None:
        changes["data__data_dir"] = _absolute(args.data_dir)
    if args.dataset is not None:
        changes["data__dataset"] = args.dataset
    return name, spec, base.replace(**changes).validate()


def _resume_setup(args, run):
    """(name, spec, recipe, checkpoint) to continue the run in `run`; options that would change what the run
    is (model, data, seed) are refused, those of the loop (epochs, lr, batch size, ...) apply."""
    from cnnviz.training.checkpoint import load_checkpoint

    for option, value in (("--preset", args.preset), ("--model", args.model), ("--dataset", args.dataset),
                          ("--subset", args.subset), ("--seed", args.seed)):
        if value is not None:
            raise CnnvizError(f"{option} cannot change a run that is continued with --resume")
    if not run.checkpoint.is_file():
        raise CnnvizError(f"{run.path} holds no run to continue ({run.checkpoint.name} is missing)")
    checkpoint = load_checkpoint(run.checkpoint)
    changes = _recipe_changes(args)
    if args.data_dir is not None:
        changes["data__data_dir"] = _absolute(args.data_dir)
    recipe = checkpoint.recipe.replace(**changes).validate()
    if checkpoint.epoch >= recipe.train.epochs and (recipe.train.max_steps is None
                                                   or checkpoint.step >= recipe.train.max_steps):
        raise CnnvizError(f"the run in {run.path} has already trained {checkpoint.epoch} of its "
                          f"{recipe.train.epochs} epochs; pass --epochs N with N > {checkpoint.epoch} to go on")
    name = _summary_name(run) or "run"
    return name, checkpoint.spec, recipe, checkpoint


def _timeline_budget(megabytes: float | None) -> int:
    from cnnviz.timeline.schedule import DEFAULT_BUDGET_BYTES

    if megabytes is None:
        return DEFAULT_BUDGET_BYTES
    if not 0 <= megabytes <= 100_000 or megabytes != megabytes:
        raise CnnvizError(f"--timeline-mb must be between 0 and 100000, got {megabytes:g}")
    return int(megabytes * 1_000_000)


def _recipe_changes(args) -> dict:
    changes = {}
    for key, value in (("train__epochs", args.epochs), ("train__batch_size", args.batch_size),
                       ("optimizer__lr", args.lr), ("train__max_steps", args.max_steps),
                       ("train__device", args.device), ("train__threads", args.threads),
                       ("train__check_every", args.check_every), ("train__precision", args.precision),
                       ("train__compile", args.compile or None)):
        if value is not None:
            changes[key] = value
    return changes


def _make_trainer(spec, recipe, data, callbacks, checkpoint, group=None):
    from cnnviz.training.checkpoint import resume_trainer
    from cnnviz.training.trainer import Trainer

    if checkpoint is not None:
        return resume_trainer(checkpoint, data, callbacks, recipe=recipe, distributed=group)
    return Trainer(spec, recipe, data, callbacks=callbacks, distributed=group)


class _stop_on_ctrl_c:
    """The first Ctrl+C stops the run cleanly at the next batch (so it is saved and can be resumed); a
    second one interrupts at once."""

    def __init__(self, trainer, quiet: bool = False) -> None:
        self.trainer, self.previous, self.quiet = trainer, None, quiet

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.trainer.control.stop_requested:
            raise KeyboardInterrupt
        if not self.quiet:  # (several processes stop together, at their next check)
            when = "at the next check" if getattr(self.trainer, "world_size", 1) > 1 else "after this batch"
            print(f"\nstopping {when} (Ctrl+C again to interrupt at once)", file=sys.stderr)
        self.trainer.request_stop()

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _summary(name, trainer, result) -> dict:
    from cnnviz.training.rundir import run_summary

    return run_summary(name, trainer, result)


def _outcome(run, recorder, trainer, result, summary) -> str:
    """Say what became of the run's folder, in words for the user (the recorder wrote it as the run went).

    A failed run went back to its last good state; when that is where this fit began, there is nothing new
    to keep: a run the folder held stays as it was (the new one recorded aside), a folder made for this run
    goes. A save that failed puts the run into a rescue folder in the user cache, which the message names."""
    from cnnviz.training.checkpoint import from_trainer
    from cnnviz.training.rundir import RunFolder, RunFolderError, rescue_folder

    if result.status == "failed" and trainer.step_count == trainer.fit_start_step:
        held_a_run = recorder.staging is not None or trainer.fit_start_step > 0
        recorder.discard_staging()
        recorder.worthless = not held_a_run
        return f"Nothing was saved; {run.path} is unchanged." if held_a_run else "Nothing was saved."
    if recorder.save_error is not None:
        exc = recorder.save_error
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            rescue = rescue_folder(run.path.name or "run")
            RunFolder(rescue).write(from_trainer(trainer), summary)
        except (OSError, CnnvizError) as again:
            raise RunFolderError(f"could not save the run to {run.path} ({reason}), nor to a rescue folder "
                                 f"({again}); the trained weights are lost") from None
        raise RunFolderError(f"could not save the run to {run.path} ({reason}); it was saved to {rescue} "
                             "instead") from None
    return f"saved to {run.path}" if result.status != "failed" else f"The run up to step {trainer.step_count} " \
        f"was saved to {run.path}."


def saved_nothing(run) -> bool:
    """True when the folder holds nothing of worth: nothing, or only the records of a run that failed before
    any good progress (the CLI made the folder, so it goes)."""
    try:
        return not any(run.path.iterdir()) or getattr(run, "worthless", False)
    except OSError:
        return False


def _summary_name(run) -> str | None:
    """The name the run's summary gives it (the preset), or None."""
    from cnnviz.files import read_regular
    from cnnviz.training.rundir import SUMMARY_NAME

    try:
        name = json.loads(read_regular(run.path / SUMMARY_NAME, 4 << 20, CnnvizError, "run description")).get("preset")
    except (CnnvizError, ValueError, AttributeError, RecursionError):
        return None
    return name if isinstance(name, str) and len(name) < 100 else None


def _model_at_step(ckpt, run: str, step: int | None, quiet: bool):
    """``(model, step)``: the run's model with its last weights, or the exact weights of ``step``, recomputed
    from the nearest anchor before it (progress on stderr unless ``quiet``). Call it after the cheap checks."""
    import torch

    model = ckpt.build_model()
    if step is None:
        return model, ckpt.step
    from cnnviz.timeline.reader import RunTimeline
    from cnnviz.timeline.replay import exact_weights

    progress = _Progress(enabled=not quiet)
    weights = exact_weights(RunTimeline.open(run), step, progress=progress.replay)
    progress.finish()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model.eval(), step


def _run_data(ckpt, data_dir: str | None = None, train: bool = False):
    """The run's data (or that of ``data_dir``), checked against its model, its test split (and its training
    split if ``train``) in the run's normalisation."""
    import dataclasses

    from cnnviz.data.prepare import load_data
    from cnnviz.models import input_mismatch

    data_cfg = ckpt.recipe.data
    if data_dir:
        data_cfg = dataclasses.replace(data_cfg, data_dir=_absolute(data_dir))
    data = load_data(data_cfg, fallback=False)
    mismatch = input_mismatch(ckpt.spec, data, "the run's model")  # trained weights cannot be refitted
    if mismatch:
        raise CnnvizError(mismatch)
    if data.num_classes != ckpt.spec.num_classes:
        raise CnnvizError(f"the run has {ckpt.spec.num_classes} classes but this data has {data.num_classes}")
    data = dataclasses.replace(data, test=_renormalize(data.test, ckpt.normalization))
    return dataclasses.replace(data, train=_renormalize(data.train, ckpt.normalization)) if train else data


def cmd_evaluate(args) -> int:
    from cnnviz.training.checkpoint import load_checkpoint
    from cnnviz.training.trainer import evaluate

    ckpt = load_checkpoint(args.run)
    data = _run_data(ckpt, args.data_dir)
    model, step = _model_at_step(ckpt, args.run, args.step, args.json)
    result = evaluate(model, data.test, "test", step)
    if args.json:
        print(json.dumps({"step": step, "test_accuracy": result.accuracy, "loss": result.loss,
                          "per_class_accuracy": [float(v) for v in result.per_class_accuracy],
                          "confusion": result.confusion.tolist(), "examples": int(len(result.labels))}))
    else:
        _print_evaluation(result, data.class_names)
    return 0


def _read_digit(path: str, ckpt):
    """An image file as the run's model reads it (as `cnnviz predict` does): H x W float32 in [0, 1]."""
    from cnnviz.imagefile import read_grayscale
    from cnnviz.inspect.canvas import to_mnist

    if int(ckpt.spec.input_shape[0]) == 3:  # a colour model: the image as a data folder's images are read
        import numpy as np

        from cnnviz.data.image_folder import decode_image

        return decode_image(Path(path), tuple(ckpt.spec.input_shape[1:]), colour=True) / np.float32(255)
    gray = read_grayscale(path)  # float32 in [0, 1]
    if gray.mean() > 0.5:  # dark ink on light paper: MNIST is light ink on black
        gray = 1.0 - gray
    image = to_mnist(gray, shape=tuple(ckpt.spec.input_shape[1:]))  # MNIST's recipe at the model's H x W
    if image is None:
        raise CnnvizError(f"{path}: the image is blank; there is nothing to classify")
    return image


def cmd_explain(args) -> int:
    import numpy as np

    from cnnviz.inspect.canvas import to_mnist
    from cnnviz.inspect.counterfactual import counterfactuals, quantize
    from cnnviz.inspect.embedding import embed, nearest
    from cnnviz.inspect.inference import InferenceModel
    from cnnviz.training.checkpoint import load_checkpoint

    out = None
    if args.out:
        from cnnviz.exports.outputs import output_folder

        out = output_folder(args.out, "--out")
    ckpt = load_checkpoint(args.run)
    if int(ckpt.spec.input_shape[0]) != 1:
        raise CnnvizError(f"{args.run}: explain works on models of gray images (its search for the smallest change "
                          f"adds or removes ink); this model takes colour images. `cnnviz predict`, `top-patches` and "
                          f"`ablate` work on it")
    image = _read_digit(args.image, ckpt)
    data = _run_data(ckpt, train=True)
    model, step = _model_at_step(ckpt, args.run, args.step, args.json)
    inference = InferenceModel(model, ckpt.normalization, tuple(ckpt.class_names))
    probs = inference.predict(image)
    if not np.isfinite(probs).all():
        raise CnnvizError(f"{args.run}: the model's output for this image is not a number")
    best = int(np.argmax(probs))
    found = nearest(embed(model, data.train.images), embed(model, inference.to_tensor(image))[0], NEAREST)
    near = [{"index": int(data.train.indices[i]), "label": int(data.train.labels[i]), "distance": float(d)}
            for i, d in zip(found.indices, found.distances)]
    shape = tuple(ckpt.spec.input_shape[1:])
    # judged as `cnnviz predict` will read the written file: 8-bit, then MNIST's centring
    # only inside the digit's box, so that the centring reads the box (and the scale) of the original
    rows, cols = np.flatnonzero((image > 0.05).any(axis=1)), np.flatnonzero((image > 0.05).any(axis=0))
    mask = np.zeros_like(image)
    mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = 1
    results = counterfactuals(model, ckpt.normalization, image, [c for c in range(len(probs)) if c != best],
                              mask=mask, prepare=lambda a: to_mnist(quantize(a), shape=shape))
    changes = {}
    for r in results:
        entry = {"success": r.success, "l2": round(r.l2, 4), "probability": r.probability, "steps": r.steps}
        if out is not None and r.success:
            entry["path"] = str(_write_png(out / f"counterfactual-{r.target}.png", r.image))
        changes[str(r.target)] = entry
    if args.json:
        print(json.dumps({"step": step, "prediction": ckpt.class_names[best], "class": best,
                          "probabilities": [float(p) for p in probs], "nearest": near,
                          "counterfactuals": changes}))
        return 0
    print(f"{ckpt.class_names[best]} ({probs[best] * 100:.1f}%) at step {step}")
    print("nearest training examples: " + ", ".join(f"#{n['index']} ({ckpt.class_names[n['label']]}, "
                                                    f"{n['distance']:.2f})" for n in near))
    print("smallest change to read it as another class (L2 in pixel units; smaller: less robust):")
    for c, entry in changes.items():
        result = f"L2 {entry['l2']:.2f}, p {entry['probability'] * 100:.0f}%" if entry["success"] else "not found"
        print(f"  {ckpt.class_names[int(c)]:>12}: {result}" + (f"  {entry['path']}" if "path" in entry else ""))
    return 0


def _write_png(path, image) -> object:
    """A [0, 1] image as an 8-bit grayscale PNG, written atomically."""
    import io

    import numpy as np
    from PIL import Image

    from cnnviz.exports.outputs import write_bytes

    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    write_bytes(path, buffer.getvalue())
    return path


def _conv_layer(model, name: str) -> str:
    """``name`` checked to be one of the model's conv layers (a CnnvizError listing them otherwise)."""
    from cnnviz.inspect.top_patches import conv_layers

    names = conv_layers(model)
    if name not in names:
        raise CnnvizError(f"'{name}' is not a conv layer of this run's model; its conv layers are: "
                          f"{', '.join(names) or 'none'}")
    return name


def cmd_top_patches(args) -> int:
    from cnnviz.training.checkpoint import load_checkpoint
    from cnnviz.inspect.top_patches import top_patches

    if not K_RANGE[0] <= args.k <= K_RANGE[1]:
        raise CnnvizError(f"--k must be from {K_RANGE[0]} to {K_RANGE[1]} (got {args.k})")
    ckpt = load_checkpoint(args.run)
    layer = _conv_layer(ckpt.build_model(), args.layer)
    data = _run_data(ckpt)
    model, step = _model_at_step(ckpt, args.run, args.step, args.json)
    result = top_patches(model, data.test.images, layer, args.k)
    found = {str(f): result.entries(f) for f in range(result.filters)}
    if args.json:
        print(json.dumps(found))
        return 0
    print(f"{layer} at step {step}: the {args.k} test images that excite each filter most (index @ row,col: "
          f"activation)")
    for f, entries in found.items():
        print(f"  filter {f:>3}: " + ", ".join(f"#{e['index']} @{e['row']},{e['col']}: {e['activation']:.2f}"
                                               for e in entries))
    return 0


def cmd_ablate(args) -> int:
    from cnnviz.training.checkpoint import load_checkpoint
    from cnnviz.inspect.ablation import ablate

    ckpt = load_checkpoint(args.run)
    layer = _conv_layer(ckpt.build_model(), args.layer)
    data = _run_data(ckpt)
    model, step = _model_at_step(ckpt, args.run, args.step, args.json)
    progress = _Progress(enabled=not args.json)
    result = ablate(model, data.test.images, data.test.labels, layer,
                    progress=lambda done, total: progress.count("ablating", done, total))
    progress.finish()
    without = {str(f): float(a) for f, a in enumerate(result.accuracy_without_filter)}
    if args.json:
        print(json.dumps({"layer": layer, "step": step, "examples": result.examples,
                          "baseline_accuracy": result.baseline_accuracy, "accuracy_without_filter": without}))
        return 0
    print(f"{layer} at step {step}: test accuracy {result.baseline_accuracy * 100:.2f}% on {result.examples:,} "
          f"images; with one filter zeroed:")
    for f, acc in without.items():
        drop = (result.baseline_accuracy - acc) * 100
        print(f"  filter {f:>3}: {acc * 100:6.2f}% ({-drop:+.2f} points)")
    return 0


def cmd_predict(args) -> int:
    import numpy as np

    from cnnviz.inspect.inference import InferenceModel
    from cnnviz.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    image = _read_digit(args.image, ckpt)
    probs = InferenceModel.from_checkpoint(ckpt).predict(image)
    if not np.isfinite(probs).all():  # a file can hold finite weights that still overflow on this image
        raise CnnvizError(f"{args.checkpoint}: the model's output for this image is not a number; "
                          f"its weights or normalisation are unusable")
    best = int(np.argmax(probs))
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


def cmd_open(args) -> int:
    from cnnviz.app import run_app

    return run_app(run=args.run, data_dir=_absolute(args.open_data_dir or args.window_data_dir), follow=args.follow,
                   compare=args.compare)


def cmd_info(args) -> int:
    from cnnviz.files import human_size
    from cnnviz.timeline.reader import RunTimeline
    from cnnviz.training.surgery import FilterOperation

    info = RunTimeline.open(args.run).info()
    if args.json:
        print(json.dumps(info))
        return 0
    keyframes = info["keyframe_steps"]
    accuracy = f"{info['test_accuracy'] * 100:.2f}%" if isinstance(info["test_accuracy"], float) else "-"
    print(f"{info['path']}: {info['name'] or 'run'}, {info['state']}, run format {info['format_version']}")
    print(f"  steps {info['steps']:,}, epochs {info['epochs']}, test accuracy {accuracy}, {human_size(info['bytes'])}")
    print(f"  keyframes {len(keyframes)} ({', '.join(info['keyframe_precision']) or 'none'}), anchors "
          f"{len(info['anchor_steps'])}; every step {'recomputes exactly' if info['exact'] else 'shows its nearest keyframe'}")
    for layer, names in info["stats"].items():
        print(f"  {layer:>14}: {', '.join(names)}")
    for op in info["filter_operations"]:
        print(f"  filter surgery: {FilterOperation.from_dict(op).describe()}")
    if info["damaged_records"]:
        print(f"  {info['damaged_records']} damaged record(s) skipped")
    return 0


def cmd_export(args) -> int:
    from cnnviz.exports import onnx_export, tensorboard_export
    from cnnviz.exports.outputs import output_file, output_folder

    animation = bool(args.gif or args.mp4)
    if not (args.onnx or args.tensorboard or animation):
        raise CnnvizError("nothing to export: give --onnx OUT.onnx, --tensorboard DIR, --gif OUT.gif or --mp4 OUT.mp4")
    if animation:  # its options are checked before any other export's slow part too
        from cnnviz.exports.animation import AnimationOptions, check_options, parse_size

        check_options(AnimationOptions(run=args.run, out=args.gif or args.mp4, kind="gif" if args.gif else "mp4",
                                       view=args.view, image=args.image, fps=args.fps, size=parse_size(args.size),
                                       every=args.every, frames=args.frames or 150, scale=args.scale))
    if args.step is not None and not args.onnx:
        raise CnnvizError("--step chooses the step of the --onnx model; --tensorboard always writes the whole run")
    if args.onnx:  # every package and output is checked before the slow part (recomputing a step)
        onnx_export.requirements()
        output_file(args.onnx, "--onnx", ".onnx")
    if args.tensorboard:
        tensorboard_export.requirements()
        output_folder(args.tensorboard, "--tensorboard")
    progress, done = _Progress(enabled=not args.json), {}
    if args.onnx:
        r = onnx_export.export_onnx(args.run, args.onnx, args.step, progress=progress.replay)
        progress.finish()
        done["onnx"] = {"path": str(r.path), "step": r.step, "weights": r.source, "bytes": r.bytes}
        if not args.json:
            print(f"wrote {r.path}: step {r.step} ({r.source}); input 'pixels' float32 (N, "
                  f"{', '.join(map(str, r.input_shape))}) in [0, 1], output 'scores' (N, {len(r.class_names)})")

    def steps_written(what: str, step: int, last: int) -> None:
        now = time.monotonic()  # a long run's per-step curves take a while: a line every few seconds
        if not args.json and last > 2000 and (now - progress._last >= progress.interval or step == last):
            progress._last = now
            progress._write(f"{what}: step {step:,}/{last:,}")

    if args.tensorboard:
        r = tensorboard_export.export_tensorboard(args.run, args.tensorboard, progress=steps_written)
        progress.finish()
        done["tensorboard"] = {"folder": str(r.folder), "logdir": str(r.logdir), "scalars": r.scalars,
                               "histograms": r.histograms, "images": r.images, "notes": r.notes}
        for note in [] if args.json else r.notes:
            print(f"note: {note}", file=sys.stderr)
        if not args.json:
            print(f"wrote {r.folder}: {r.scalars:,} scalars, {r.histograms:,} histograms, {r.images:,} filter images;"
                  f" view with: tensorboard --logdir {r.logdir}")
    if animation:
        from cnnviz.exports.animation import describe

        r = _export_animation(args)
        done["animation"] = {"path": str(r.path), "frames": r.frames, "size": list(r.size), "bytes": r.bytes,
                             "seconds": round(r.seconds, 3)}
        if not args.json:
            print(describe(r))
    if args.json:
        print(json.dumps(done))
    return 0


COMMANDS = {"presets": cmd_presets, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "info": cmd_info, "open": cmd_open, "download": cmd_download, "export": cmd_export,
            "explain": cmd_explain, "top-patches": cmd_top_patches, "ablate": cmd_ablate}


def _renormalize(split, normalization):
    import dataclasses

    return dataclasses.replace(split, images=normalization.apply(split.raw))


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

    A Pacer asks the training thread for the latest metrics between two batches instead of listening to
    every step, which keeps the Trainer on its cheapest path (a step listener costs ~4% of a cntk-conv step)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._dirty = False
        self.interval = 0.1 if self.tty else 5.0  # seconds between two redraws of the line
        self._test = None  # a test evaluation not shown yet
        self._poller = None

    def on_fit_start(self, trainer) -> None:
        if not self.enabled:
            return
        from cnnviz.training.pacing import Every, Pacer

        every = Every(self.interval)

        def tick() -> None:
            every.ticked()
            self.show(trainer.latest_step_metrics())

        self._poller = Pacer(trainer.control, tick, every).start("cnnviz-progress")

    def on_fit_end(self, trainer, result) -> None:
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        self._test = None

    def show(self, m) -> None:
        """Redraw the line from a step's metrics (None before the first step: nothing to show)."""
        if m is None or not self.enabled:
            return
        eta = format_seconds(m.eta_seconds)
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

    def replay(self, done: int, total: int) -> None:
        """Progress of a recomputation from an anchor (evaluate --step)."""
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.interval and done < total):
            return
        self._last = now
        self._write(f"recomputing from the nearest anchor: {done:,}/{total:,} steps")

    def count(self, what: str, done: int, total: int) -> None:
        """Progress of a piece of work counted in parts (the batches of an ablation)."""
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.interval and done < total):
            return
        self._last = now
        self._write(f"{what}: {done:,}/{total:,}")

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
