"""Records a run into its folder while it trains: the same for `cnnviz train --out` and the window's runs.

A :class:`RunRecorder` is a training callback. It writes ``run.json`` (what the run is) at the start and
keeps it up to date, the checkpoint and the CSV files at every epoch end and at the end, and the timeline:
the steps' metrics a few times a second, weight keyframes at the planned steps (`schedule.py`), an anchor (an
exact, resumable state) at the start, at every epoch end and whenever the recipe changes live, the test
evaluations, and the layer statistics (`stats.py`) a few times a second.

Nothing here listens to every step: keyframes are calls at exact steps (`Trainer.call_at_step`, one integer
compared per step), the rest is paced between batches (`training/pacing.py`). Recording keeps to a small
share of the training time, measured as it goes: the keyframe plan is thinned when its keyframes would take
more than ``KEYFRAME_SHARE`` of it (`schedule.py`), and the statistics are spaced so that they take at most
``STATS_SHARE`` (and at most ``MAX_STATS_RECORDS`` records a fit). The whole folder keeps to the byte budget:
a keyframe is skipped when writing it would leave too little for what the run still has to write.
A write that fails (a full disk) stops the timeline with a notice, never the training.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import bisect
import math
import time
from pathlib import Path

import numpy as np
import torch

from cnnviz import __version__
from cnnviz.errors import CnnvizError
from cnnviz.training.callbacks import Callback
from cnnviz.training.pacing import Pacer
from cnnviz.timeline.schedule import (DEFAULT_BUDGET_BYTES, KEYFRAME_SHARE, MAX_STATS_RECORDS, optimizer_slots,
                                      plan_keyframes, reserve_bytes, thin)
from cnnviz.timeline.stats import LayerStats
from cnnviz.timeline.store import (ANCHORS, EVALS, FORMAT_VERSION, KEYFRAMES, EventWriter, encode_evaluation,
                                   encode_keyframe, step_file, write_file)

STEPS_INTERVAL = 0.25  # seconds between two records of the steps' metrics (a follower shows them within ~0.5 s)
STATS_INTERVAL = 0.25  # seconds between two records of layer statistics, at least
STATS_SHARE = 0.006  # the share of the training time the statistics may take
THIN_AT = (2, 8, 32, 128, 512)  # keyframes written in this fit after which the plan is checked against the time
THIN_FROM_SECONDS = 3.0  # a fit expected to train for less is not thinned (its keyframes cost milliseconds)


class RunRecorder(Callback):
    """Writes a run's folder while it trains.

    Parameters
    ----------
    folder
        The run folder (created and locked by the caller, see `training/rundir.py`).
    name
        What the run is called (the preset, or the model file's name).
    timeline
        False: only ``run.json``, the checkpoint and the CSV files, at the end (``--no-timeline``).
    budget_bytes
        What the timeline may take on disk (keyframes adapt their number and precision to it).
    staging
        A folder inside `folder` to record into until the run has made good progress (its first epoch end,
        or a clean end), then moved up over the run the folder held (``--overwrite``): a run that fails before
        that never replaces the one that was there.
    on_notice
        Called with a sentence when the timeline had to stop (a write failed).
    on_saved
        Called with (checkpoint path, trainer) after each save of the checkpoint (the window learns what
        Train continues from).
    """

    def __init__(self, folder: str | os.PathLike, name: str = "run", timeline: bool = True,
                 budget_bytes: int = DEFAULT_BUDGET_BYTES, staging: bool = False, on_notice=None,
                 on_saved=None) -> None:
        self.run_folder = Path(folder)
        self.name, self.timeline, self.budget = name, timeline, budget_bytes
        self.staging = self.run_folder / f".incoming-{os.getpid()}" if staging else None
        self.folder = self.staging or self.run_folder
        self.on_notice = on_notice
        self.on_saved = on_saved  # called with (checkpoint path, trainer) after each save of the checkpoint
        self.trainer = None
        self.events: EventWriter | None = None
        self.spent = sum(_folder_bytes(self.folder / kind) for kind in (KEYFRAMES, ANCHORS, EVALS))
        self.written_steps = 0  # steps whose metrics are in the event log
        self.keyframes: list[int] = []
        self.anchors: set[int] = set()
        self.stats: LayerStats | None = None
        self._pacer: Pacer | None = None
        self._last_steps = self._last_stats = 0.0
        self._plan: tuple[int, ...] = ()
        self._compress = False
        self._fit_first = 0  # the step this fit started from
        self._fit_last = 0  # the last step it plans to reach
        self._fit_started = 0.0
        self._kf_seconds = 0.0  # time spent writing this fit's keyframes
        self._kf_count = 0
        self.recording_seconds = 0.0  # all recording work on the training thread in this fit (the writes)
        self._depth = 0
        self._stats_interval = STATS_INTERVAL
        self._next_stats_step = 0
        self._eval_bytes = 0
        self._failed = False
        self.promoted = not staging
        self.save_error: Exception | None = None  # the last save of the run that failed
        self.worthless = False

    # -- the fit ---------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer) -> None:
        self.trainer = trainer
        self.folder.mkdir(parents=True, exist_ok=True)
        self.written_steps = trainer.history.steps
        self._guard(self._write_header, trainer, "running")
        if not self.timeline:
            return
        self._guard(self._open_timeline, trainer)

    def _open_timeline(self, trainer) -> None:
        self.events = EventWriter(self.folder)
        self.anchors |= _existing_steps(self.folder / ANCHORS)
        if trainer.step_count not in self.anchors:
            self.write_anchor(trainer)  # where this fit starts: exact
        self.stats = LayerStats(trainer.model)
        self._plan_keyframes(trainer)
        self._pacer = Pacer(trainer.control, self._tick, self._due_in).start("cnnviz-recorder")

    def _plan_keyframes(self, trainer) -> None:
        cfg, per_epoch = trainer.recipe.train, trainer.batches_per_epoch()
        last = cfg.epochs * per_epoch
        if cfg.max_steps is not None:
            last = min(last, cfg.max_steps)
        self._fit_first, self._fit_last = trainer.step_count, last
        self._anchor_floor = None  # (the model or the recipe may have changed since the last fit)
        self._fit_started = time.perf_counter()
        self._next_stats_step = trainer.step_count + max(1, math.ceil((last - trainer.step_count) / MAX_STATS_RECORDS))
        plan = plan_keyframes(trainer.step_count, last, self._epochs_left(trainer), self._values(trainer),
                              self._anchor_estimate(trainer), self.budget, self.spent,
                              self._eval_estimate(trainer), len(self.stats.weighted) if self.stats else 1)
        self.precision, self._compress = plan.precision, plan.compress
        self._plan = tuple(s for s in plan.steps if s % per_epoch or s == last)
        if self._plan:
            self._schedule_next(trainer)

    # what the budget plans with
    def _values(self, trainer) -> int:
        return sum(int(v.numel()) for v in trainer.model.state_dict().values())

    def _epochs_left(self, trainer) -> int:
        """Epoch ends still to come before the last step this fit plans to reach."""
        steps_left = max(0, self._fit_last - trainer.step_count)
        per_epoch = max(1, trainer.batches_per_epoch())
        return min(max(0, trainer.recipe.train.epochs - trainer.epoch), math.ceil(steps_left / per_epoch))

    def _anchor_estimate(self, trainer) -> int:
        """An anchor's size once the optimizer has its state (the anchor of step 0 has none yet); the model's
        part is worked out once a fit (every keyframe asks)."""
        if self._anchor_floor is None:
            opt = trainer.recipe.optimizer
            params = sum(int(p.numel()) for p in trainer.model.parameters())
            slots = optimizer_slots(opt.name, float(getattr(opt, "momentum", 0.0) or 0.0))
            self._anchor_floor = self._values(trainer) * 4 + slots * params * 4 + 16 * 1024
        return max(self._anchor_bytes, self._anchor_floor)

    _anchor_floor: int | None = None

    def _eval_estimate(self, trainer) -> int:
        if self._eval_bytes:
            return self._eval_bytes
        n, classes = len(trainer.data.test), len(trainer.data.class_names)
        return n * (2 * (1 if classes <= 256 else 4) + 2 * classes) + 1024

    def _schedule_next(self, trainer) -> None:
        i = bisect.bisect_right(self._plan, trainer.step_count)
        if i < len(self._plan):
            trainer.call_at_step(self._plan[i], lambda: self._keyframe_due(trainer))

    def _keyframe_due(self, trainer) -> None:
        if trainer.step_count in self._plan:  # (a thinned plan may have dropped it)
            started = time.perf_counter()
            written = self._guard(self.write_keyframe, trainer)
            took = time.perf_counter() - started
            if written:
                self._kf_seconds += took
                self._kf_count += 1
                if self._kf_count in THIN_AT:
                    self._thin_plan(trainer)
        self._schedule_next(trainer)

    def _thin_plan(self, trainer) -> None:
        """Keep the keyframes within ``KEYFRAME_SHARE`` of the training time, as measured so far."""
        done = trainer.step_count - self._fit_first
        training = time.perf_counter() - self._fit_started - self.recording_seconds
        if done <= 0 or training <= 0 or self._kf_count == 0:
            return
        projected = training / done * max(1, self._fit_last - self._fit_first)
        if projected < THIN_FROM_SECONDS:
            return
        allowed = int(KEYFRAME_SHARE * projected / (self._kf_seconds / self._kf_count))
        i = bisect.bisect_right(self._plan, trainer.step_count)
        upcoming = self._plan[i:]
        keep = max(0, allowed - self._kf_count)
        if keep < len(upcoming):
            self._plan = self._plan[:i] + thin(upcoming, keep)

    def on_fit_end(self, trainer, result) -> None:
        if self._pacer is not None:
            self._pacer.stop()
            self._pacer = None
        if self.stats is not None:
            self.stats.disarm()
        if result.status == "failed":  # it went back to its last good state: nothing after it stays
            self._rewind(trainer.step_count, len(trainer.surgery.operations))
        if self.staging is not None and not self.promoted and result.status != "failed" and trainer.step_count > 0:
            self._guard(self.promote)
        self._guard(self._flush_steps, trainer)
        if self.events is not None and trainer.step_count not in self.anchors:
            self._guard(self.write_anchor, trainer)  # a stop mid-epoch: the next fit continues exactly from here
        if self.events is not None:
            self._guard(self.events.write, {"t": "end", "status": str(result.status), "step": trainer.step_count,
                                           "epoch": trainer.epoch, "error": result.error}, True)
            self.events.close()
            self.events = None
        if self.promoted and (result.steps > 0 or trainer.step_count > 0):
            try:
                self.save_state(trainer, result)
            except (OSError, CnnvizError) as exc:
                self.save_error = exc  # the caller rescues the run (the CLI) or says so (the window)
                if self.on_notice is not None:
                    self.on_notice(f"could not save the run in {self.folder}: {getattr(exc, 'strerror', None) or exc}")

    # -- hooks -----------------------------------------------------------------------------------------------
    def on_epoch_end(self, trainer, metrics) -> None:
        self._guard(self._flush_steps, trainer)
        self._event({"t": "epoch", **dataclasses.asdict(metrics)}, sync=True)
        if self.timeline and self.events is not None:
            self._guard(self.write_anchor, trainer)
        if self.staging is not None and not self.promoted:
            self._guard(self.promote)
        if self.promoted:
            try:
                self.save_state(trainer)
            except (OSError, CnnvizError) as exc:
                self.save_error = exc

    def on_evaluation(self, trainer, evaluation) -> None:
        if self.events is None:
            return
        relative = step_file(EVALS, evaluation.step)
        payload = encode_evaluation(evaluation)
        self._eval_bytes = len(payload)
        self.spent += self._guard(write_file, self.folder, relative, payload) or 0
        self._event({"t": "eval", "split": evaluation.split, "step": int(evaluation.step),
                     "loss": _finite(evaluation.loss), "accuracy": float(evaluation.accuracy),
                     "per_class": [float(v) for v in evaluation.per_class_accuracy],
                     "confusion": np.asarray(evaluation.confusion).tolist(), "file": relative})

    def on_recipe_change(self, trainer) -> None:
        """A live change (learning rate, batch size): an anchor here keeps every later step exact."""
        if self.events is not None and trainer.step_count not in self.anchors:
            self._guard(self._flush_steps, trainer)
            self._guard(self.write_anchor, trainer)

    def on_surgery(self, trainer, operation) -> None:
        """A filter operation: logged with its place in the run's list (a replay applies those its anchor lacks)."""
        self._event({"t": "surgery", "n": len(trainer.surgery.operations) - 1, **operation.to_dict()}, sync=True)

    def on_state_change(self, trainer, state, message) -> None:
        self._event({"t": "state", "state": str(state), "step": trainer.step_count, "message": message})

    # -- what is written -----------------------------------------------------------------------------------
    def write_keyframe(self, trainer) -> bool:
        """The weights of this step as a keyframe, if the budget leaves room for it (True when written)."""
        step = trainer.step_count
        if step in self.keyframes or step in self.anchors:
            return False
        payload = encode_keyframe(trainer.weight_arrays(), self.precision, self._compress)  # before the next step
        steps_left = max(0, self._fit_last - step)
        reserve = reserve_bytes(self._epochs_left(trainer), steps_left, self._anchor_estimate(trainer),
                                self._eval_estimate(trainer), len(self.stats.weighted) if self.stats else 1)
        if self.spent + len(payload) + reserve > self.budget:
            return False  # over budget: the anchors still make every step exact
        relative = step_file(KEYFRAMES, step) + (".zlib" if self._compress else "")
        self.spent += write_file(self.folder, relative, payload)
        self.keyframes.append(step)
        self._event({"t": "keyframe", "step": step, "epoch": trainer.epoch, "file": relative,
                     "precision": self.precision})
        return True

    def write_anchor(self, trainer) -> None:
        from cnnviz.training.checkpoint import checkpoint_bytes, from_trainer

        # the history is in the event log: an anchor holds the state alone (weights, optimizer, streams, recipe)
        payload = checkpoint_bytes(dataclasses.replace(from_trainer(trainer), history=type(trainer.history)()))
        step = trainer.step_count
        self.spent += write_file(self.folder, step_file(ANCHORS, step), payload)
        self._anchor_bytes = len(payload)
        self.anchors.add(step)
        self._event({"t": "anchor", "step": step, "epoch": trainer.epoch, "file": step_file(ANCHORS, step)},
                    sync=True)

    _anchor_bytes = 0

    def save_state(self, trainer, result=None) -> None:
        """The checkpoint, the CSV files and run.json as they are now (at epoch ends and the end)."""
        from cnnviz.training.checkpoint import from_trainer
        from cnnviz.training.rundir import RunFolder, run_summary

        folder = RunFolder(self.folder)
        folder.write(from_trainer(trainer), self._header(trainer, run_summary(self.name, trainer, result)))
        if self.on_saved is not None and trainer.step_count != self._saved_step:
            self.on_saved(folder.checkpoint, trainer)
        self._saved_step = trainer.step_count

    _saved_step = -1

    def _write_header(self, trainer, status: str) -> None:
        from cnnviz.training.rundir import SUMMARY_NAME, run_summary, write_text_atomic

        summary = run_summary(self.name, trainer)
        summary["status"] = status
        write_text_atomic(self.folder / SUMMARY_NAME, json.dumps(self._header(trainer, summary), indent=2) + "\n")

    def _header(self, trainer, summary: dict) -> dict:
        return {
            **summary, "format": "cnnviz-run", "format_version": FORMAT_VERSION, "name": self.name,
            "spec": trainer.spec.to_dict(), "recipe": trainer.recipe.to_dict(),
            "class_names": list(trainer.data.class_names), "normalization": trainer.data.normalization.to_dict(),
            "device": trainer.device.type, "threads": torch.get_num_threads(),
            # GPU kernels are not deterministic, nor is one process's replay of several processes' sums: shown
            # from keyframes
            "exact": trainer.device.type == "cpu" and getattr(trainer, "world_size", 1) == 1,
            "timeline": self.timeline, "budget_bytes": self.budget, "batches_per_epoch": trainer.batches_per_epoch(),
            "versions": {"cnnviz": __version__, "torch": torch.__version__, "python": platform.python_version()},
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    # -- paced records -------------------------------------------------------------------------------------
    def _due_in(self, now: float) -> float:
        return min(self._last_steps + STEPS_INTERVAL, self._last_stats + STATS_INTERVAL) - now

    def _tick(self) -> None:
        trainer, now = self.trainer, time.perf_counter()
        if trainer is None or self.events is None:
            return
        if now >= self._last_steps + STEPS_INTERVAL:
            self._last_steps = now
            self._guard(self._flush_steps, trainer)
        if now >= self._last_stats + self._stats_interval and self.stats is not None and not self.stats.armed \
                and trainer.step_count > 0 and trainer.step_count >= self._next_stats_step:
            self._last_stats = now
            self.stats.arm()
            self._armed_at = time.perf_counter()
            self._stats_seconds = self._armed_at - now
            self.recording_seconds += self._stats_seconds
            step = trainer.step_count + 1
            trainer.call_at_step(step, lambda: self._guard(self._collect_stats, trainer))

    _stats_seconds = 0.0
    _armed_at = 0.0

    def _collect_stats(self, trainer) -> None:
        if self.stats is not None and self.stats.armed:
            started = time.perf_counter()
            # the hooks' work: how much longer the hooked step took than the fit's steps do on average
            done = max(1, trainer.step_count - self._fit_first)
            mean_step = (started - self._fit_started - self.recording_seconds) / done
            hooks = max(0.0, started - self._armed_at - mean_step)
            self._event({"t": "stats", "step": trainer.step_count, "layers": self.stats.collect()})
            took = self._stats_seconds + hooks + time.perf_counter() - started
            self.recording_seconds += hooks  # (the guard around this call adds the rest)
            self._stats_interval = max(STATS_INTERVAL, took / STATS_SHARE)
            gap = max(1, math.ceil((self._fit_last - self._fit_first) / MAX_STATS_RECORDS))
            self._next_stats_step = trainer.step_count + gap

    def _flush_steps(self, trainer) -> None:
        """The steps done since the last record: loss, accuracy, learning rate, and where the run stands."""
        if self.events is None:
            return
        latest = trainer.latest_step_metrics()  # also counts the accuracies still pending
        h = trainer.history
        end = min(len(h.step_loss), len(h.step_accuracy), len(h.step_lr))
        if end <= self.written_steps:
            return
        first = trainer.step_count - h.steps + self.written_steps + 1
        event = {"t": "steps", "first": first, "wall": round(time.time(), 3),  # when written (follow latency)
                 "loss": _floats(h.step_loss[self.written_steps:end]),
                 "accuracy": _floats(h.step_accuracy[self.written_steps:end]),
                 "lr": _floats(h.step_lr[self.written_steps:end])}
        if latest is not None:
            event["latest"] = {k: _finite(v) if isinstance(v, float) else v
                               for k, v in dataclasses.asdict(latest).items()}
        self.written_steps = end
        self._event(event)

    def _rewind(self, step: int, surgeries: int) -> None:
        """A failed run went back to an earlier state: the records after it no longer belong to the run (nor the
        filter operations past the first `surgeries`)."""
        self._event({"t": "rewind", "step": step, "surgeries": surgeries}, sync=True)
        self.written_steps = min(self.written_steps, step)
        self.keyframes = [s for s in self.keyframes if s <= step]

    # -- staging (--overwrite) -----------------------------------------------------------------------------
    def promote(self) -> None:
        """The run made good progress: its files replace those of the run the folder held."""
        if self.staging is None or self.promoted:
            return
        if self.events is not None:
            self.events.close()
        from cnnviz.training.rundir import MARKER_NAME

        keep = {MARKER_NAME, self.staging.name}
        for entry in list(self.run_folder.iterdir()):
            if entry.name in keep or entry.name.startswith(".cnnviz-write-test"):
                continue
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        for entry in list(self.staging.iterdir()):
            os.replace(entry, self.run_folder / entry.name)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.folder, self.promoted = self.run_folder, True
        if self.events is not None:
            self.events = EventWriter(self.folder)

    def discard_staging(self) -> None:
        """The run failed before it was promoted: forget what it wrote (the folder's old run stays)."""
        if self.staging is not None and not self.promoted:
            shutil.rmtree(self.staging, ignore_errors=True)

    # -- failures ------------------------------------------------------------------------------------------
    def _event(self, event: dict, sync: bool = False) -> None:
        if self.events is not None:
            self._guard(self.events.write, event, sync)

    def _guard(self, fn, *args):
        """Run a write; a failure stops the timeline (never the training) and says so once."""
        if self._failed and fn is not self.promote:
            return None
        started = time.perf_counter()
        self._depth += 1
        try:
            return fn(*args)
        except (OSError, CnnvizError) as exc:
            self._failed = True
            if self.events is not None:
                self.events.close()
                self.events = None
            if self.on_notice is not None:
                self.on_notice(f"the run's timeline stopped recording: {getattr(exc, 'strerror', None) or exc}")
            return None
        finally:
            self._depth -= 1
            if self._depth == 0:  # the outermost write: its time is the recording's
                self.recording_seconds += time.perf_counter() - started


def _floats(values) -> list:
    return [_finite(float(v)) for v in np.asarray(values).tolist()]


def _finite(value):
    """JSON has no NaN or infinity: they are written as null."""
    return value if value is None or np.isfinite(value) else None


def _existing_steps(folder: Path) -> set[int]:
    steps = set()
    try:
        for entry in folder.iterdir():
            if entry.suffix == ".safetensors" and entry.stem.isdigit():
                steps.add(int(entry.stem))
    except OSError:
        pass
    return steps


def _folder_bytes(folder: Path) -> int:
    try:
        return sum(entry.stat().st_size for entry in folder.iterdir() if entry.is_file())
    except OSError:
        return 0
