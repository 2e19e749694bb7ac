"""The training loop. It knows nothing of its consumers: everything else arrives as callbacks."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import heapq
import itertools
import math
import os
import time
from collections import deque

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.config import Recipe
from cnnviz.data.prepare import PreparedData, Split
from cnnviz.errors import CnnvizError, ConfigError, SpecError, TrainingError
from cnnviz.models import ModelSpec, build_model, input_mismatch
from cnnviz.training.callbacks import HOOKS, bound_hooks
from cnnviz.training.control import RunControl
from cnnviz.training.distributed import local_batch_size, rank_seed, shard, shard_length
from cnnviz.training.history import History
from cnnviz.training.ledger import StepLedger
from cnnviz.training.messages import (FAILED, FINISHED, PAUSED, RUNNING, STOPPED, EpochMetrics, Evaluation,
                                      FitResult, StepMetrics, WeightsSnapshot)
from cnnviz.training.optim import learning_rate, make_optimizer, set_learning_rate
from cnnviz.training.surgery import FilterOperation, SurgeryLog, check_operation


# A batch-mean cross-entropy this large means logits thousands apart: the run has blown up (with ReLU nets
# it then often "dies" at a finite loss instead of reaching NaN, so NaN alone is too late a signal).
DIVERGED_LOSS = 1000.0
# Steps whose training accuracy is counted together when no step callback needs it at once: three small
# tensor ops a step were ~1% of a cntk-conv step (py-spy). Up to _ACCURACY_BATCH steps, holding at most
# _ACCURACY_BYTES of logits and labels, are counted in one numpy pass.
_ACCURACY_BATCH = 128
_ACCURACY_BYTES = 4 << 20
# Steps between two reads of the losses where no sync a step is wanted (a GPU, several processes): the check for
# divergence comes at most this many steps late, and the run then goes back to its last good state as it would.
DEFERRED_CHECK_EVERY = 32


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an unavailable device is a clear error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available; use 'cpu' or 'auto'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was asked for but Apple's MPS is not available; use 'cpu' or 'auto'")
    return torch.device(name)


def default_threads() -> int:
    """Torch threads of the window's training process: every core but one, which is left for the window
    (at least 1). Two threads beside a busy window on 2 cores collapse (OpenMP waits on the preempted
    thread), so the window keeps a core. Headless training keeps torch's own default: every core."""
    return max(1, (os.cpu_count() or 1) - 1)


class Trainer:
    """Trains one model on prepared data with a recipe.

    `pause()`, `resume()`, `step()` and `request_stop()` may be called from any thread and take effect
    before the next batch. `fit()` returns a :class:`FitResult` and never raises for user errors
    (diverging loss, out of memory): those end the run as FAILED with a message, keeping the last good weights.

    `distributed` (`training/distributed.py`) makes this one process of several: the model is wrapped in
    DistributedDataParallel, each epoch's order is this process's shard, its batches are the recipe's batch size
    divided by the processes, the epoch figures are summed over all of them, and rank 0 alone evaluates.
    """

    def __init__(self, spec: ModelSpec, recipe: Recipe, data: PreparedData, callbacks=(), distributed=None) -> None:
        self.recipe = recipe.validate()
        self.distributed = distributed
        self.world_size = distributed.world_size if distributed is not None else 1
        local_batch_size(self.recipe.train.batch_size, self.world_size)  # refused when it does not divide
        self.data = data
        if spec.num_classes != data.num_classes:
            raise ConfigError(f"the model has {spec.num_classes} outputs but the task has {data.num_classes} "
                              f"classes ({', '.join(data.class_names)})")
        mismatch = input_mismatch(spec, data)
        if mismatch:  # said here, not as a matrix-size error from the first batch (callers fit specs with
            raise SpecError(mismatch)  # cnnviz.models.spec_for_data; this is for one that did not)
        self.device = resolve_device(recipe.train.device) if distributed is None else distributed.device()
        torch.manual_seed(recipe.train.seed)
        self.model = build_model(spec).to(self.device)
        self.spec = self.model.spec
        self._train_model: torch.nn.Module | None = None  # what the loop calls: see _training_module
        self.optimizer = make_optimizer(self.model.parameters(), recipe.optimizer)
        self.shuffle = torch.Generator().manual_seed(recipe.train.seed)
        self.control = RunControl()
        self.history = History()
        self.epoch = 0  # epochs completed
        self.step_count = 0  # batches done in all
        self.batch_in_epoch = 0  # batches done in the current epoch
        self.epoch_shuffle_state = self.shuffle.get_state()
        self.last_evaluation: Evaluation | None = None
        self.surgery = SurgeryLog()  # the filter operations applied so far, and the filters they froze
        self.set_callbacks(callbacks)
        weights = data.class_weights.to(self.device) if data.class_weights is not None else None
        self._class_weights = weights
        self._good: _GoodState | None = None
        self.remember_good_state()
        self._lr: float | None = None  # the learning rate last written into the optimizer
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # (logits, labels) of steps not yet counted
        self._pending_limit = _ACCURACY_BATCH
        self._ledger: StepLedger | None = None  # the deferred mode's queued steps (see check_every)
        self._first_bad: tuple[int, float, float] | None = None  # (step, loss, lr) of the first diverged step read
        self._loss_sum = 0.0  # this epoch's loss times examples
        self._on_device: tuple | None = None  # (split, images, labels): the training data on the device, once
        self._epoch_order: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)  # (shuffle state, order)
        self._hits = 0
        self._start_step, self._fit_started = self.step_count, time.perf_counter()
        self._rate, self._polled_rate, self._images_done, self._images_polled = _Rate(), _Rate(), 0, 0
        self._at_step: list[tuple[int, int, object]] = []  # heap of (step, order, fn): calls after a given step
        self._next_at = _NEVER  # the smallest step in _at_step (checked once per step)
        self._recipe_in_effect = self.recipe  # a live change (lr) is announced when the loop first uses it

    # -- control (thread-safe) -------------------------------------------------------------------------
    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def step(self) -> None:
        self.control.step()

    def request_stop(self) -> None:
        self.control.request_stop()

    def call_at_step(self, step: int, fn) -> None:
        """Run `fn()` on the training thread right after step `step` is done (at once, between two batches,
        when the run is already past it). For a consumer that must see exact steps (the timeline's
        keyframes) without listening to every step: the loop compares one integer per step."""
        heapq.heappush(self._at_step, (int(step), next(_ORDER), fn))
        self._next_at = self._at_step[0][0]
        if step <= self.step_count:
            self.control.call_soon(self._run_due_calls)

    def _run_due_calls(self) -> None:
        while self._at_step and self._at_step[0][0] <= self.step_count:
            _, _, fn = heapq.heappop(self._at_step)
            fn()
        self._next_at = self._at_step[0][0] if self._at_step else _NEVER

    def set_callbacks(self, callbacks) -> None:
        self.callbacks = tuple(callbacks)
        self._hooks = {hook: bound_hooks(self.callbacks, hook) for hook in HOOKS}

    def set_learning_rate(self, lr: float) -> None:
        """Change the base learning rate while running (the schedule scales from it)."""
        self.recipe = dataclasses.replace(self.recipe, optimizer=dataclasses.replace(self.recipe.optimizer, lr=lr))
        self.recipe.optimizer.validate()

    def set_batch_size(self, batch_size: int) -> None:
        """Change the batch size; takes effect at the next epoch."""
        self.recipe = dataclasses.replace(self.recipe, train=dataclasses.replace(self.recipe.train,
                                                                                batch_size=batch_size))
        self.recipe.train.validate()

    def operate(self, layer: str, index: int, action: str) -> None:
        """Zero, freeze, unfreeze or re-initialise filter `index` of conv layer `layer` before the next batch
        (any thread). A wrong layer, filter or action is a ConfigError at once."""
        op = FilterOperation(layer, int(index), action)
        check_operation(self.model, op)
        self.control.call_soon(lambda: self.apply_operation(op))

    def apply_operation(self, op: FilterOperation) -> FilterOperation:
        """Apply `op` now, after the current step (training thread, or while not running), and announce it."""
        op = self.surgery.apply(self.model, self.optimizer, dataclasses.replace(op, step=self.step_count),
                                self.recipe.train.seed)
        self._emit("on_surgery", self, op)
        return op

    # -- the loop --------------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Train until the recipe's epochs are done, a stop is requested, or training fails."""
        if self.recipe.train.threads:  # else the process's setting: torch's default (every core) headless,
            torch.set_num_threads(self.recipe.train.threads)  # cores - 1 in the window's training process
        cfg = self.recipe.train
        started = time.perf_counter()
        self._start_step, self._rate, self._fit_started = self.step_count, _Rate(), started
        self._polled_rate, self._images_done, self._images_polled = _Rate(), 0, 0
        status, error = FINISHED, None
        self._parked = False
        if self._train_model is None:  # (DDP starts with a collective: every process gets here)
            self._train_model = self._training_module()
        self._ledger = StepLedger(self.world_size) if self.check_every is not None else None
        self._first_bad = None
        if self.distributed is not None and self.distributed.rank:  # dropout masks of its own, not rank 0's
            torch.manual_seed(rank_seed(cfg.seed, self.distributed.rank, self.step_count))
        self.remember_good_state()  # a failure goes back to where this fit started, or a later epoch end
        self._emit("on_fit_start", self)
        self._emit("on_state_change", self, RUNNING, "")
        try:
            self._check_sizes()
            while self.epoch < cfg.epochs:
                if cfg.max_steps is not None and self.step_count >= cfg.max_steps:
                    break  # before this epoch's shuffle is drawn, so a resumed run draws the same one
                self.model.train()
                epoch_started = time.perf_counter()
                self._hits, self._loss_sum = 0, 0.0  # this epoch's (counted at once or by _settle_accuracy)
                self._pending_limit = _pending_limit(self._local_batch(), self.spec.num_classes)
                outcome, seen = self._train_epoch()
                self._settle_accuracy()
                if outcome == STOPPED:
                    status = STOPPED
                    break
                if outcome is None:  # max_steps reached
                    break
                self._end_epoch(self._loss_sum, self._hits, seen, time.perf_counter() - epoch_started)
        except CnnvizError as exc:
            self._settle_accuracy()
            status, error = FAILED, str(exc)
            self._restore_good_state()
            self._emit("on_exception", self, exc)
        except BaseException as exc:
            self._settle_accuracy()
            if not _is_out_of_memory(exc):
                self._emit("on_exception", self, exc)
                raise
            status, error = FAILED, _oom_message(self.recipe.train.batch_size, exc)
            self._restore_good_state()
            self._emit("on_exception", self, exc)
        seconds = time.perf_counter() - started
        images = (self.step_count - self._start_step) * self.recipe.train.batch_size
        fresh = self.last_evaluation is not None and self.last_evaluation.step == self.step_count
        if status != FAILED and self.recipe.train.evaluate_test and not fresh and self.step_count > 0 and self.is_main:
            self.evaluate_test()
        result = FitResult(status, self.epoch, self.step_count, seconds, images / seconds if seconds > 0 else 0.0,
                           error, self.last_evaluation)
        self._emit("on_state_change", self, status, error or "")
        self._emit("on_fit_end", self, result)
        return result

    def _train_epoch(self) -> tuple[str | None, int]:
        """The training loop proper: this epoch's remaining batches. Returns (FINISHED when the epoch is done,
        STOPPED on a stop request, None when max_steps is reached; the examples seen by all processes).

        The PyTorch step stands in the middle, as in a plain loop; what the run keeps of each step goes
        through `_record_step`. No name holds the batch past its step (it is freed with the graph, as in a
        plain loop): a batch still alive while the next one is gathered kept the allocator from handing back
        its cache-hot buffers (0.3% of a cntk-conv step, measured in issue 4). With `check_every` set, the loss
        stays on the device and is checked every `check_every` steps (`_check`) instead of before each update."""
        model, optimizer, weights, cast = self._train_model, self.optimizer, self._class_weights, self._autocast()
        surgery = self.surgery
        order, images, labels, size, starts = self._epoch_plan()
        max_steps, last, every = self.recipe.train.max_steps, (starts[-1] if starts else None), self.check_every
        seen = 0
        for start in starts:
            if not self.control.idle and not self._may_run():  # a pause, stop or queued call (lock-free check)
                if self.distributed is None:
                    if every is not None:
                        self._check()
                    return STOPPED, seen
                # (several processes stop together, at their next check)
            index = order[start:start + size]
            y = labels[index]
            lr = self._scheduled_lr()

            optimizer.zero_grad(set_to_none=True)
            with cast:
                logits = model(images[index])
                loss = F.cross_entropy(logits, y, weight=weights)
            value = loss.item() if every is None else loss  # deferred: read back later, with other steps'
            if every is None and not value <= DIVERGED_LOSS:  # also NaN
                raise self._diverged(value, lr)
            loss.backward()
            optimizer.step()
            surgery.restore_frozen()  # frozen filters back to their values (nothing to do when none are)

            seen += y.shape[0] * self.world_size
            self._record_step(value, lr, logits, y)
            done = max_steps is not None and self.step_count >= max_steps
            if every is not None and (self.step_count % every == 0 or start == last or done) and self._check():
                return STOPPED, seen
            if done and start != last:
                return None, seen  # (on the epoch's last batch the epoch ends first, as it should)
        return FINISHED, seen

    def _scheduled_lr(self) -> float:
        """The learning rate of the coming step (the recipe may change live), written into the optimizer only
        when it changed: touching every param group each step costs more than the check."""
        if self.recipe is not self._recipe_in_effect:  # a live change, announced before the step that uses it
            self._recipe_in_effect = self.recipe
            self._emit("on_recipe_change", self)
        lr = learning_rate(self.recipe.optimizer, self.step_count, self.epoch)
        if lr != self._lr:
            set_learning_rate(self.optimizer, lr)
            self._lr = lr
        return lr

    def _record_step(self, loss: float | torch.Tensor, lr: float, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Count the step and keep its loss, learning rate and accuracy. The accuracy is counted at once when a
        callback watches every step; else many steps are counted together (`_settle_accuracy`). In the deferred
        mode `loss` is the loss tensor, queued on the ledger with the step's right answers (read back by
        `_settle_accuracy`)."""
        batch = y.shape[0] * self.world_size
        self.step_count += 1
        self.batch_in_epoch += 1
        self._images_done += batch
        history = self.history
        history.step_lr.append(lr)
        if self._ledger is not None:
            self._ledger.add(loss, logits, y)
            if self._hooks["on_step_end"]:
                self._settle_accuracy()
                self._notify_step(history.step_loss[-1], history.step_accuracy[-1], lr, batch)
        else:  # (one process: batch is this process's)
            history.step_loss.append(loss)
            self._loss_sum += loss * batch
            if self._hooks["on_step_end"]:
                self._settle_accuracy()
                correct = _correct(logits, y)
                self._hits += correct
                history.step_accuracy.append(correct / batch)
                self._notify_step(loss, correct / batch, lr, batch)
            else:
                self._pending.append((logits.detach(), y))
                if len(self._pending) >= self._pending_limit:
                    self._settle_accuracy()
        if self.step_count >= self._next_at:
            self._settle_accuracy()  # a call at an exact step sees that step's accuracy too
            self._run_due_calls()

    def _check(self) -> bool:
        """The deferred mode's check: read the queued steps back (one host sync for many steps) and fail back to
        the last good state when one of them diverged. With several processes every one of them calls this at
        the same steps and reads the same summed figures, so they fail together, and they agree on a stop here
        (True: one of them was asked to stop, so all stop now)."""
        self._settle_accuracy()
        stop = self.distributed.any(self.control.stop_requested) if self.distributed is not None else False
        if self._first_bad is not None:
            step, loss, lr = self._first_bad
            raise self._diverged(loss, lr, step)
        return stop

    def _diverged(self, loss: float, lr: float, step: int | None = None) -> TrainingError:
        g = self._good
        if g.step_count == 0:
            where = "the start"
        elif g.batch_in_epoch == 0:
            where = f"the end of epoch {g.epoch} (step {g.step_count})"
        else:
            where = f"step {g.step_count}"
        return TrainingError(
            f"the loss became {loss:.4g} at step {step or self.step_count + 1} (epoch {self.epoch + 1}) with learning "
            f"rate {lr:g}: training diverged. The run went back to its last good state, from {where}; try a "
            f"smaller learning rate.")

    def _epoch_plan(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, range]:
        """This epoch's shuffled order, the training images and labels on the device, the batch size, and the
        start of each batch still to do (those already done are skipped when resuming mid-epoch)."""
        if self.batch_in_epoch == 0:
            self.epoch_shuffle_state = self.shuffle.get_state()
        n, size = shard_length(len(self.data.train), self.world_size), self._local_batch()
        cached_state, order = self._epoch_order
        if self.batch_in_epoch == 0 or cached_state is not self.epoch_shuffle_state or len(order) != n:
            self.shuffle.set_state(self.epoch_shuffle_state)
            order = torch.randperm(len(self.data.train), generator=self.shuffle)  # the same in every process
            if self.distributed is not None:
                order = shard(order, self.distributed.rank, self.world_size)
            order = order.to(self.device)
            self._epoch_order = (self.epoch_shuffle_state, order)  # a fit() resumed mid-epoch reuses it
        end = n - 1 if n % size == 1 and size > 1 and n > 1 else n  # a lone last example breaks batch norm
        starts = range(self.batch_in_epoch * size, end, size)
        images = self.data.train.images
        if hasattr(images, "batches"):  # streamed from disk (cnnviz/data/streaming.py): read in the planned order
            return order, images.batches(order, starts, size, self.device), self._device_data()[1], size, starts
        return (order, *self._device_data(), size, starts)

    def _device_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training images and labels on the device, copied there once (not every epoch: on a GPU that copy
        was a large share of a small network's epoch)."""
        split = self.data.train
        if self._on_device is None or self._on_device[0] is not split:
            images = split.images if hasattr(split.images, "batches") else split.images.to(self.device)
            self._on_device = (split, images, split.labels.to(self.device))
        return self._on_device[1], self._on_device[2]

    def _local_batch(self) -> int:
        """This process's batch size: the recipe's, divided among the processes."""
        return self.recipe.train.batch_size // self.world_size

    def _training_module(self) -> torch.nn.Module:
        """What the loop calls: the model, wrapped in DDP (which gives every process rank 0's weights) and compiled
        (`compile`) as the processes and the recipe ask; made when the first fit starts. It shares the model's
        parameters, so everything else reads `self.model`."""
        module = self.model
        if self.distributed is not None:
            from torch.nn.parallel import DistributedDataParallel

            module = DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda"
                                             else None)
        if self.recipe.train.compile:
            module = torch.compile(module)
        return module

    def _autocast(self):
        """The forward pass's precision: bfloat16 autocast (`precision` 'bf16') or as it is."""
        if self.recipe.train.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def check_every(self) -> int | None:
        """Steps between two reads of the losses and divergence checks; None: every step, before its update (one
        CPU process: the read costs nothing there). On a GPU or with several processes the recipe's setting or
        DEFERRED_CHECK_EVERY: no host sync a step, and the processes check at the same steps."""
        every = self.recipe.train.check_every
        if every is None and (self.device.type == "cuda" or self.world_size > 1):
            every = DEFERRED_CHECK_EVERY
        return every

    @property
    def is_main(self) -> bool:
        """True in the process that evaluates, writes and prints (the only one, or rank 0)."""
        return self.distributed is None or self.distributed.is_main

    def _notify_step(self, loss: float, accuracy: float, lr: float, images: int) -> None:
        now = time.perf_counter()
        metrics = self._step_metrics(loss, accuracy, lr, self._rate.add(now, images), now)
        for hook in self._hooks["on_step_end"]:
            hook(self, metrics)

    def latest_step_metrics(self) -> StepMetrics | None:
        """The last step's metrics, as `on_step_end` would have given them, for a consumer that polls between
        batches (via `control.call_soon`) instead of listening to every step, which keeps the loop on its
        cheapest path. None before the first step of this fit. Call from the training thread."""
        h = self.history
        if self.step_count == self._start_step or not h.step_loss:
            return None
        self._settle_accuracy()
        now = time.perf_counter()
        rate = self._polled_rate.add(now, self._images_done - self._images_polled)
        self._images_polled = self._images_done
        accuracy = h.step_accuracy[-1] if len(h.step_accuracy) == len(h.step_loss) else math.nan
        return self._step_metrics(h.step_loss[-1], accuracy, h.step_lr[-1], rate, now)

    def _step_metrics(self, loss: float, accuracy: float | None, lr: float, rate: float, now: float) -> StepMetrics:
        """Metrics of the step just done; between two epochs that is the last batch of the finished one."""
        cfg = self.recipe.train
        per_epoch = self.batches_per_epoch()
        epoch, batch = (self.epoch, per_epoch) if self.batch_in_epoch == 0 else (self.epoch + 1, self.batch_in_epoch)
        remaining = (cfg.epochs * per_epoch - self.step_count) * cfg.batch_size
        if cfg.max_steps is not None:
            remaining = min(remaining, (cfg.max_steps - self.step_count) * cfg.batch_size)
        return StepMetrics(self.step_count, epoch, cfg.epochs, batch, per_epoch, loss, accuracy, lr, rate,
                           max(0, remaining) / rate if rate > 0 else None, now - self._fit_started)

    def _end_epoch(self, loss_sum: float, hits: int, seen: int, seconds: float) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        val = None
        if self.data.val is not None and self.is_main:  # rank 0 alone evaluates (the others wait for it)
            self._emit("on_evaluation_start", self, "val")
            val = evaluate(self.model, self.data.val, "val", self.step_count)
        n = max(1, seen)
        metrics = EpochMetrics(self.epoch, loss_sum / n, hits / n, val.loss if val else None,
                               val.accuracy if val else None, self.optimizer.param_groups[0]["lr"], seconds,
                               seen / seconds if seconds > 0 else 0.0, self.step_count)
        self.history.epochs.append(metrics)
        if self.recipe.train.evaluate_test and self.is_main:
            self.evaluate_test()
            self.history.test_accuracy.append(self.last_evaluation.accuracy)
        self.remember_good_state()
        self._emit("on_epoch_end", self, metrics)

    # -- helpers ---------------------------------------------------------------------------------------
    def _settle_accuracy(self) -> None:
        """Count the hits of the pending steps in one go: their accuracies go to the history, the hits to
        this epoch's count. In the deferred mode: read the ledger's steps back, noting the first that diverged."""
        if self._ledger is not None and len(self._ledger):
            self._read_ledger()
        if not self._pending:
            return
        pending = self._pending.copy()
        self._pending.clear()  # the same list: the loop holds it
        logits = torch.cat([logits for logits, _ in pending]).to("cpu", torch.float32).numpy()
        labels = torch.cat([y for _, y in pending]).cpu().numpy()
        sizes = np.array([y.shape[0] for _, y in pending])
        hits = np.add.reduceat(logits.argmax(1) == labels, np.cumsum(sizes) - sizes)  # numpy's argmax: 3x torch's here
        self.history.step_accuracy.extend((hits / sizes).tolist())
        self._hits += int(hits.sum())

    def _read_ledger(self) -> None:
        h, queued = self.history, len(self._ledger)
        first = self.step_count - queued + 1
        lrs = h.step_lr[len(h.step_lr) - queued:]
        for i, (loss, hits, examples) in enumerate(self._ledger.read()):
            h.step_loss.append(loss)
            h.step_accuracy.append(hits / examples)
            self._hits += hits
            self._loss_sum += loss * examples
            if self._first_bad is None and not loss <= DIVERGED_LOSS:  # also NaN
                self._first_bad = (first + i, loss, lrs[i])

    def evaluate_test(self) -> Evaluation:
        """Evaluate the test set with the current weights and tell the callbacks."""
        self._emit("on_evaluation_start", self, "test")
        self.last_evaluation = evaluate(self.model, self.data.test, "test", self.step_count)
        self._emit("on_evaluation", self, self.last_evaluation)
        return self.last_evaluation

    def batches_per_epoch(self) -> int:
        """Batches in an epoch (of this process's shard, the same number in every process)."""
        n, size = shard_length(len(self.data.train), self.world_size), self._local_batch()
        full, rest = divmod(n, size)
        return full + (1 if rest >= 2 or (rest == 1 and n == 1) else 0)

    def snapshot(self) -> WeightsSnapshot:
        """A copy of the current weights as numpy arrays (call from the training thread)."""
        state = {k: v.detach().to("cpu", copy=True).numpy() for k, v in self.model.state_dict().items()}
        return WeightsSnapshot(self.step_count, self.epoch, state)

    def weight_arrays(self) -> dict[str, np.ndarray]:
        """The current weights as numpy arrays, views of the model's own on the CPU: copy them before the
        next step (call from the training thread)."""
        return {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}

    def _check_sizes(self) -> None:
        n = len(self.data.train)
        if n == 0:
            raise TrainingError("the training set is empty")
        if self.recipe.train.batch_size > n:
            raise TrainingError(f"batch size {self.recipe.train.batch_size} is larger than the {n} training "
                                f"examples; choose a batch size of at most {n}")
        if self._local_batch() == 1 and any(layer.kind == "batchnorm" for layer in self.spec.layers):
            raise TrainingError(f"batch norm needs at least 2 examples per batch; choose a batch size of "
                                f"{2 * self.world_size} or more")

    def _may_run(self) -> bool:
        """Wait while paused; False when a stop was requested. Reports paused/running transitions."""
        self._settle_accuracy()  # whoever stops, pauses or saves the run sees the whole history
        allowed = self.control.wait_to_run(self._on_parked)
        if allowed and self._parked and not self.control.paused:
            self._parked = False
            self._emit("on_state_change", self, RUNNING, "")
        return allowed

    def _on_parked(self) -> None:
        if self._ledger is not None and self.distributed is None:
            self._check()  # a paused run (which may be saved) holds no unchecked step
        self._settle_accuracy()  # whoever paused the run reads the whole history
        if not self._parked:
            self._parked = True
            self._emit("on_state_change", self, PAUSED, "")

    def _emit(self, hook: str, *args) -> None:
        for fn in self._hooks[hook]:
            fn(*args)

    def _state_copy(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def remember_good_state(self) -> None:
        """Keep the whole state as it is now (weights, optimizer, counters, random streams, history length)
        as the one a failed run goes back to. Done at every epoch end and when a fit starts or resumes."""
        h = self.history
        self._good = _GoodState(
            model=self._state_copy(), optimizer=copy.deepcopy(self.optimizer.state_dict()), epoch=self.epoch,
            step_count=self.step_count, batch_in_epoch=self.batch_in_epoch,
            shuffle=self.shuffle.get_state(), epoch_shuffle=self.epoch_shuffle_state, torch_rng=torch.get_rng_state(),
            surgery=self.surgery.copy(),
            lengths=(len(h.step_loss), len(h.step_accuracy), len(h.step_lr), len(h.epochs), len(h.test_accuracy)))

    @property
    def fit_start_step(self) -> int:
        """The step the last (or current) call of `fit` started from."""
        return self._start_step

    @property
    def good_step(self) -> int:
        """The step of the state a failure goes back to (the last epoch end, or where the fit started)."""
        return self._good.step_count

    def _restore_good_state(self) -> None:
        """Go back to the last good state, all of it, so that the run can be saved and continued as if the
        failed steps never happened (the weights alone would leave a diverged optimizer state behind)."""
        g = self._good
        self.model.load_state_dict(g.model)
        self.optimizer.load_state_dict(copy.deepcopy(g.optimizer))
        self.epoch, self.step_count, self.batch_in_epoch = g.epoch, g.step_count, g.batch_in_epoch
        self.shuffle.set_state(g.shuffle)
        self.epoch_shuffle_state = g.epoch_shuffle
        torch.set_rng_state(g.torch_rng)
        self.surgery = g.surgery.copy()
        self.surgery.hold(self.model)
        self._pending.clear()
        if self._ledger is not None:
            self._ledger.clear()
        self._first_bad = None
        self._lr = None
        h = self.history
        for values, n in zip((h.step_loss, h.step_accuracy, h.step_lr, h.epochs, h.test_accuracy), g.lengths):
            del values[n:]


@dataclasses.dataclass(frozen=True)
class _GoodState:
    """Everything a failed run goes back to (see Trainer.remember_good_state)."""

    model: dict
    optimizer: dict
    epoch: int
    step_count: int
    batch_in_epoch: int
    shuffle: torch.Tensor
    epoch_shuffle: torch.Tensor
    torch_rng: torch.Tensor
    surgery: SurgeryLog
    lengths: tuple[int, ...]


_NEVER = 1 << 62  # no call waits for a step
_ORDER = itertools.count()  # ties of call_at_step run in the order they were asked for


def _pending_limit(batch_size: int, classes: int) -> int:
    """How many steps' logits and labels to hold before counting their accuracy."""
    return max(1, min(_ACCURACY_BATCH, _ACCURACY_BYTES // (batch_size * (classes * 4 + 8))))


def _correct(logits: torch.Tensor, y: torch.Tensor) -> int:
    """How many of the batch's predictions (the logits' argmax) match the labels."""
    return int((logits.argmax(1) == y).sum())


class _Rate:
    """Images per second over the last few seconds."""

    def __init__(self, window: float = 3.0) -> None:
        self.window = window
        self.events: deque[tuple[float, int]] = deque()
        self.images = 0

    def add(self, now: float, images: int) -> float:
        self.events.append((now, images))
        self.images += images
        while len(self.events) > 2 and now - self.events[0][0] > self.window:
            self.images -= self.events.popleft()[1]
        span = now - self.events[0][0]
        if span <= 0:
            return 0.0
        return (self.images - self.events[0][1]) / span


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, name: str = "test", step: int = 0,
             batch_size: int = 1000, progress=None, cancel=None) -> Evaluation:
    """Loss, accuracy, per-class accuracy, confusion matrix and predictions on one split.

    `progress(done, total)` is called after each batch; when `cancel` (a threading.Event) is set, a
    TrainingError says so at the next batch."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        probs, losses = [], 0.0
        for start in range(0, len(split), batch_size):
            if cancel is not None and cancel.is_set():
                raise TrainingError("the evaluation was cancelled")
            if progress is not None:
                progress(start, len(split))
            x = split.images[start:start + batch_size].to(device)
            y = split.labels[start:start + batch_size].to(device)
            logits = model(x)
            losses += float(F.cross_entropy(logits, y, reduction="sum"))
            probs.append(torch.softmax(logits, 1).cpu())
    finally:
        model.train(was_training)
    probabilities = torch.cat(probs).numpy().astype(np.float32) if probs else np.zeros((0, 0), np.float32)
    labels = split.labels.cpu().numpy().astype(np.int64)
    classes = probabilities.shape[1] if probabilities.size else 0
    predicted = probabilities.argmax(1).astype(np.int64) if len(labels) else np.zeros(0, np.int64)
    confusion = np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    per_class = np.divide(np.diag(confusion), confusion.sum(1), out=np.zeros(classes), where=confusion.sum(1) > 0)
    n = max(1, len(labels))
    return Evaluation(name, step, losses / n, float((predicted == labels).mean()) if len(labels) else 0.0,
                      per_class, confusion.astype(np.int64), labels, predicted, probabilities)


def _is_out_of_memory(exc: BaseException) -> bool:
    """torch raises OutOfMemoryError on GPUs, but a plain RuntimeError when the CPU allocator fails."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def _oom_message(batch_size: int, exc: BaseException) -> str:
    return (f"out of memory with batch size {batch_size} ({type(exc).__name__}); the last good weights were kept. "
            f"Try a smaller batch size or a smaller model.")
