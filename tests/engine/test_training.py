"""The trainer: learning, control from another thread, NaN handling, schedules, callbacks."""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch

from cnnviz.config import DataConfig, OptimizerConfig, Recipe, TrainConfig
from cnnviz.data.prepare import load_data
from cnnviz.errors import ConfigError
from cnnviz.models import ModelSpec, conv, dense, maxpool
from cnnviz.training.callbacks import Callback
from cnnviz.training.messages import FAILED, FINISHED, PAUSED, RUNNING, STOPPED
from cnnviz.training.optim import learning_rate, make_optimizer
from cnnviz.training.trainer import Trainer, evaluate

TINY = ModelSpec((conv(4, 5, 2, "same"), maxpool(2), dense(10)))


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(validation="train", train_subset=1000))


def recipe(**train) -> Recipe:
    return Recipe(optimizer=OptimizerConfig(name="adam", lr=0.01),
                  train=TrainConfig(**{"epochs": 2, "batch_size": 50, **train}))


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append(("fit_start",))

    def on_step_end(self, trainer, m):
        self.events.append(("step", m.step))

    def on_epoch_end(self, trainer, m):
        self.events.append(("epoch", m.epoch))

    def on_evaluation(self, trainer, ev):
        self.events.append(("evaluation", ev.step))

    def on_state_change(self, trainer, state, message):
        self.events.append(("state", state))

    def on_fit_end(self, trainer, result):
        self.events.append(("fit_end", result.status))


def test_loss_falls_and_accuracy_rises_on_real_digits(data):
    trainer = Trainer(TINY, recipe(epochs=3), data)
    result = trainer.fit()
    assert result.status == FINISHED and result.epochs_completed == 3
    losses = trainer.history.step_loss
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])
    assert result.evaluation.accuracy > 0.7  # 1,000 real digits, 3 epochs of a tiny net
    assert len(trainer.history.epochs) == 3 and trainer.history.epochs[-1].val_accuracy > 0.6
    assert result.images_per_second > 0


def test_callbacks_arrive_in_order(data):
    rec = Recorder()
    Trainer(TINY, recipe(epochs=1), data, [rec]).fit()
    kinds = [e[0] for e in rec.events]
    assert kinds[0] == "fit_start" and rec.events[1] == ("state", RUNNING)
    assert kinds[-2:] == ["state", "fit_end"] and rec.events[-1] == ("fit_end", FINISHED)
    steps = [e[1] for e in rec.events if e[0] == "step"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 20
    assert kinds.index("epoch") > kinds.index("step")
    assert kinds.count("evaluation") == 1  # the epoch's evaluation is not repeated at the end


def test_step_metrics_carry_progress_eta_and_throughput(data):
    seen = []

    class Grab(Callback):
        def on_step_end(self, trainer, m):
            seen.append(m)

    Trainer(TINY, recipe(epochs=2), data, [Grab()]).fit()
    last = seen[-1]
    assert last.progress == pytest.approx(1.0) and last.batches_per_epoch == 20 and last.epochs == 2
    assert seen[5].eta_seconds is not None and seen[5].eta_seconds > 0
    assert all(m.images_per_second >= 0 for m in seen)


def test_same_seed_same_run(data):
    # On the CPU, bit for bit (CUDA's kernels are not deterministic, so the device is fixed here and below)
    a = Trainer(TINY, recipe(epochs=1, seed=3, device="cpu"), data)
    b = Trainer(TINY, recipe(epochs=1, seed=3, device="cpu"), data)
    a.fit(), b.fit()
    assert a.history.step_loss == b.history.step_loss
    c = Trainer(TINY, recipe(epochs=1, seed=4, device="cpu"), data)
    c.fit()
    assert c.history.step_loss != a.history.step_loss


def test_stop_from_another_thread_takes_effect_within_one_batch(data):
    class StopAt(Callback):
        def __init__(self):
            self.requested_at = None

        def on_step_end(self, trainer, m):
            if m.step == 5:
                self.requested_at = m.step
                threading.Thread(target=trainer.request_stop).start()
                threading.Event().wait(0.2)  # the other thread's call has landed

    stopper = StopAt()
    trainer = Trainer(TINY, recipe(epochs=5), data, [stopper])
    result = trainer.fit()
    assert result.status == STOPPED and trainer.step_count == 5


def test_pause_step_resume_from_another_thread(data):
    states, steps = [], []
    paused = threading.Event()

    class Watch(Callback):
        def on_state_change(self, trainer, state, message):
            states.append(state)
            if state == PAUSED:
                paused.set()

        def on_step_end(self, trainer, m):
            steps.append(m.step)

    trainer = Trainer(TINY, recipe(epochs=1), data, [Watch()])
    trainer.pause()  # parked before the first batch
    thread = threading.Thread(target=trainer.fit)
    thread.start()
    assert paused.wait(10)
    assert steps == []
    trainer.step()
    deadline = threading.Event()
    for _ in range(100):
        if steps:
            break
        deadline.wait(0.05)
    deadline.wait(0.2)
    assert steps == [1]  # exactly one batch, still paused
    trainer.resume()
    thread.join(30)
    assert not thread.is_alive()
    assert states[0] == RUNNING and PAUSED in states and states[-1] == FINISHED
    assert steps == list(range(1, 21))


@pytest.mark.parametrize("preset", ["cntk-conv", "gorner", "dense-baseline"])
def test_lr_100_stops_with_a_clear_message_and_keeps_good_weights(data, preset):
    from cnnviz.presets import PRESETS

    p = PRESETS[preset]
    trainer = Trainer(p.spec, p.recipe.replace(optimizer__lr=100.0, train__epochs=2, train__batch_size=50), data)
    first = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.fit()
    assert result.status == FAILED
    assert "diverged" in result.error and "smaller learning rate" in result.error
    for key, value in trainer.model.state_dict().items():
        assert torch.isfinite(value.float()).all()
        assert torch.equal(value, first[key])  # diverged in epoch 1: the initial weights are the good ones


def test_nan_input_loss_is_caught(data):
    import dataclasses

    bad = dataclasses.replace(data.train, images=data.train.images.clone())
    bad.images[:] = float("nan")
    result = Trainer(TINY, recipe(), dataclasses.replace(data, train=bad)).fit()
    assert result.status == FAILED and "nan" in result.error


def test_batch_larger_than_the_data_is_a_clear_error(data):
    result = Trainer(TINY, recipe(batch_size=5000), data).fit()
    assert result.status == FAILED and "larger than the 1000 training examples" in result.error


def test_max_steps_and_model_data_class_mismatch(data):
    result = Trainer(TINY, recipe(epochs=5, max_steps=7), data).fit()
    assert result.status == FINISHED and result.steps == 7
    with pytest.raises(ConfigError, match="2 outputs but the task has 10 classes"):
        Trainer(TINY.with_num_classes(2), recipe(), data)


def test_bad_recipe_values_are_rejected():
    with pytest.raises(ConfigError, match="epochs"):
        Recipe(train=TrainConfig(epochs=0)).validate()
    with pytest.raises(ConfigError, match="Nesterov"):
        Recipe(optimizer=OptimizerConfig(nesterov=True)).validate()
    with pytest.raises(ConfigError, match="learning rate"):
        Recipe(optimizer=OptimizerConfig(lr=-1)).validate()
    with pytest.raises(ConfigError, match="unknown"):
        Recipe.from_dict({"train": {"epochz": 3}})
    assert Recipe.from_dict(recipe().to_dict()) == recipe()


def test_schedules():
    gorner = OptimizerConfig(name="adam", lr=0.003, schedule="gorner", lr_min=0.0001, decay_steps=2000)
    assert learning_rate(gorner, 0, 0) == pytest.approx(0.003)
    assert learning_rate(gorner, 2000, 3) == pytest.approx(0.0001 + 0.0029 * math.exp(-1))
    step = OptimizerConfig(lr=0.1, schedule="step", step_epochs=2, gamma=0.5)
    assert [learning_rate(step, 0, e) for e in range(5)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    exp = OptimizerConfig(lr=0.1, schedule="exponential", gamma=0.5, decay_steps=100)
    assert learning_rate(exp, 200, 0) == pytest.approx(0.025)
    assert learning_rate(OptimizerConfig(lr=0.2), 999, 9) == 0.2


@pytest.mark.parametrize("name", ["sgd", "adam", "adadelta", "rmsprop"])
def test_every_optimizer_learns(data, name):
    lr = {"sgd": 0.1, "adam": 0.01, "adadelta": 1.0, "rmsprop": 0.001}[name]
    r = Recipe(optimizer=OptimizerConfig(name=name, lr=lr, momentum=0.9 if name == "sgd" else 0.0,
                                         nesterov=name == "sgd"), train=TrainConfig(epochs=2, batch_size=50))
    trainer = Trainer(TINY, r, data)
    trainer.fit()
    assert np.mean(trainer.history.step_loss[-5:]) < np.mean(trainer.history.step_loss[:5])
    opt = make_optimizer(torch.nn.Linear(2, 2).parameters(), r.optimizer)
    assert type(opt).__name__.lower() == name


def test_learning_rate_recorded_per_step_follows_the_schedule(data):
    r = Recipe(optimizer=OptimizerConfig(name="adam", lr=0.01, schedule="exponential", gamma=0.5, decay_steps=10),
               train=TrainConfig(epochs=1, batch_size=50))
    trainer = Trainer(TINY, r, data)
    trainer.fit()
    assert trainer.history.step_lr[0] == pytest.approx(0.01)
    assert trainer.history.step_lr[10] == pytest.approx(0.005)


def test_binary_task_with_class_weights():
    data = load_data(DataConfig(one_vs_rest=6, train_subset=1000, validation="none"))
    spec = ModelSpec((conv(4, 3), dense(2)), num_classes=2)
    trainer = Trainer(spec, Recipe(optimizer=OptimizerConfig(name="adam", lr=0.01),
                                   train=TrainConfig(epochs=2, batch_size=50)), data)
    result = trainer.fit()
    assert result.status == FINISHED and result.evaluation.confusion.shape == (2, 2)
    assert result.evaluation.per_class_accuracy[1] > 0.5  # the rare class is learned, not ignored


def test_evaluate_reports_confusion_and_per_class(data):
    trainer = Trainer(TINY, recipe(epochs=1), data)
    trainer.fit()
    ev = evaluate(trainer.model, data.test)
    assert ev.confusion.sum() == len(data.test) and ev.probabilities.shape == (len(data.test), 10)
    assert ev.accuracy == pytest.approx(np.trace(ev.confusion) / ev.confusion.sum())
    np.testing.assert_allclose(ev.per_class_accuracy, np.diag(ev.confusion) / ev.confusion.sum(1))
    assert trainer.model.training  # evaluate restores the mode


@pytest.mark.parametrize("limit", [128, 8])
def test_accuracy_counted_in_batches_without_a_step_callback_matches_every_step(data, monkeypatch, limit):
    """With no step callback the Trainer counts hits for many steps at once; the history must be exactly
    what a run that computes them step by step records, including after a stop mid-epoch and a resume."""
    import cnnviz.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "_ACCURACY_BATCH", limit)  # 8: counted when the batch is full too

    class Steps(Callback):
        def on_step_end(self, trainer, m):
            pass

    # Batch 40 gives 23 steps an epoch; stop mid-epoch at step 37, then go on to the end.
    runs = {}
    for name, callbacks in (("eager", [Steps()]), ("batched", [])):
        t = Trainer(TINY, recipe(epochs=3, batch_size=40, max_steps=37, device="cpu"), data, callbacks)
        t.fit()
        assert len(t.history.step_accuracy) == len(t.history.step_loss) == 37
        t.recipe = t.recipe.replace(train__max_steps=None)
        t.fit()
        runs[name] = t
    eager, batched = runs["eager"].history, runs["batched"].history
    assert len(batched.step_accuracy) == len(batched.step_loss) == len(eager.step_loss) > 2 * 23
    assert batched.step_loss == eager.step_loss
    assert batched.step_accuracy == eager.step_accuracy
    assert [e.train_accuracy for e in batched.epochs] == [e.train_accuracy for e in eager.epochs]


def test_a_fit_stopped_mid_epoch_and_resumed_trains_as_one_uninterrupted_fit(data):
    """A resumed fit() reuses the epoch's shuffled order; the batches and results are those of one long fit."""
    whole = Trainer(TINY, recipe(epochs=2, batch_size=40, device="cpu"), data)
    whole.fit()
    pieces = Trainer(TINY, recipe(epochs=2, batch_size=40, max_steps=5, device="cpu"), data)
    for stop in (5, 11, 30, None):
        pieces.recipe = pieces.recipe.replace(train__max_steps=stop)
        pieces.fit()
    assert pieces.history.step_loss == whole.history.step_loss
    assert pieces.history.step_accuracy == whole.history.step_accuracy
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, pieces.model.state_dict()[key]), key


def test_latest_step_metrics_describe_the_last_step_for_a_polling_consumer(data):
    t = Trainer(TINY, recipe(epochs=2, batch_size=40, max_steps=5), data)
    assert t.latest_step_metrics() is None  # nothing trained yet
    t.fit()
    m = t.latest_step_metrics()
    per_epoch = t.batches_per_epoch()
    assert (m.step, m.epoch, m.batch, m.batches_per_epoch) == (5, 1, 5, per_epoch)
    assert (m.loss, m.accuracy, m.lr) == (t.history.step_loss[-1], t.history.step_accuracy[-1], 0.01)
    assert m.elapsed_seconds > 0 and m.eta_seconds is None  # one poll: no rate yet
    polled = []

    class PollAtEpochEnd(Callback):  # polls between batches, as the training process's streamer does
        def on_epoch_end(self, trainer, metrics):
            polled.append(trainer.latest_step_metrics())

    t.set_callbacks([PollAtEpochEnd()])
    t.recipe = t.recipe.replace(train__max_steps=per_epoch + 3)
    t.fit()
    assert (polled[0].step, polled[0].epoch, polled[0].batch) == (per_epoch, 1, per_epoch)  # the epoch's last
    m = t.latest_step_metrics()
    assert (m.step, m.epoch, m.batch) == (per_epoch + 3, 2, 3)
    assert m.images_per_second > 0 and m.eta_seconds == 0.0  # max_steps reached: nothing left


def test_evaluation_start_is_announced_before_each_evaluation(data):
    events = []

    class Evaluations(Callback):
        def on_evaluation_start(self, trainer, split):
            events.append(("start", split, trainer.step_count))

        def on_epoch_end(self, trainer, m):
            events.append(("epoch", m.epoch, trainer.step_count))

        def on_evaluation(self, trainer, ev):
            events.append(("done", ev.split, ev.step))

    t = Trainer(TINY, recipe(epochs=1, batch_size=100), data, [Evaluations()])
    t.fit()
    n = t.step_count
    assert events == [("start", "val", n), ("start", "test", n), ("done", "test", n), ("epoch", 1, n)]


def test_batch_size_one_trains_every_example(data):
    t = Trainer(TINY, recipe(epochs=1, batch_size=1, max_steps=None), data)
    assert t.fit().status == FINISHED
    assert t.step_count == len(data.train) == t.batches_per_epoch()


def test_batch_size_one_with_batch_norm_is_a_clear_error(data):
    from cnnviz.models import batchnorm

    spec = ModelSpec((dense(16), batchnorm(), dense(10)))
    result = Trainer(spec, recipe(batch_size=1), data).fit()
    assert result.status == FAILED
    assert "batch norm needs at least 2 examples per batch" in result.error


def test_a_stop_or_a_divergence_leaves_no_step_without_its_accuracy(data):
    t = Trainer(TINY, recipe(epochs=50), data)
    threading.Timer(0.3, t.request_stop).start()
    assert t.fit().status == STOPPED
    assert len(t.history.step_accuracy) == len(t.history.step_loss) > 0
    from cnnviz.presets import PRESETS

    p = PRESETS["gorner"]  # at lr 100 it diverges within the first epoch (see the test above)
    diverging = Trainer(p.spec, p.recipe.replace(optimizer__lr=100.0, train__epochs=2, train__batch_size=50), data)
    result = diverging.fit()
    assert result.status == FAILED
    assert len(diverging.history.step_accuracy) == len(diverging.history.step_loss)


def test_a_paused_run_without_a_step_callback_shows_its_whole_history(data):
    paused = threading.Event()

    class States(Callback):  # no on_step_end: the Trainer counts hits in batches
        def on_state_change(self, trainer, state, message):
            if state == PAUSED:
                paused.set()

    t = Trainer(TINY, recipe(epochs=200), data, [States()])
    runner = threading.Thread(target=t.fit)
    runner.start()
    try:
        while len(t.history.step_loss) < 5:
            time.sleep(0.005)
        t.pause()
        assert paused.wait(10)
        assert len(t.history.step_accuracy) == len(t.history.step_loss) > 0
    finally:
        t.request_stop()
        t.resume()
        runner.join(30)
