"""Runs that cannot go on: out of memory, divergence, impossible batch sizes, zero epochs, a model with the
wrong number of outputs. Each ends as "failed" with a message that says why, keeps the last good weights,
and leaves the window usable.
"""
from __future__ import annotations

import resource
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnviz.config import DataConfig, OptimizerConfig, Recipe, TrainConfig
from cnnviz.data.prepare import load_data
from cnnviz.models import ModelSpec, conv, dense, maxpool
from cnnviz.training.callbacks import Callback
from cnnviz.training.messages import FAILED, WeightsSnapshot
from cnnviz.training.trainer import Trainer
from tests.reliability.conftest import short_run

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

TINY = ModelSpec((conv(4, 5, 2, "same"), maxpool(2), dense(10)))


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(validation="none", train_subset=600))


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- out of memory (engine) ------------------------------------------------------------------------------
OOM_ERRORS = {
    "torch.OutOfMemoryError": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "MemoryError": MemoryError,
    # what the CPU allocator really raises (see test_a_real_cpu_out_of_memory_in_the_cli below)
    "CPU allocator": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                                          "can't allocate memory: you tried to allocate 346112000 bytes."),
}


@pytest.mark.parametrize("kind", list(OOM_ERRORS))
def test_out_of_memory_mid_run_fails_clearly_and_keeps_the_last_good_weights(kind, data):
    recipe = Recipe(optimizer=OptimizerConfig(name="adam", lr=0.01),
                    train=TrainConfig(epochs=3, batch_size=50, evaluate_test=False))
    trainer = Trainer(TINY, recipe, data)
    at_epoch_end = {}

    class Grab(Callback):
        def on_epoch_end(self, t, metrics):
            at_epoch_end[metrics.epoch] = _state(t.model)

    trainer.set_callbacks([Grab()])
    real_forward = trainer.model.forward

    def forward(x):
        if trainer.model.training and trainer.epoch == 1 and trainer.batch_in_epoch == 4:
            raise OOM_ERRORS[kind]()
        return real_forward(x)

    trainer.model.forward = forward
    result = trainer.fit()
    assert result.status == FAILED and result.epochs_completed == 1
    assert result.error.startswith("out of memory with batch size 50")
    assert "last good weights were kept" in result.error and "smaller batch size" in result.error
    for key, value in trainer.model.state_dict().items():  # the end of epoch 1, not 4 batches later
        assert torch.equal(value, at_epoch_end[1][key]), key


def test_an_unrelated_runtime_error_is_not_mistaken_for_out_of_memory(data):
    trainer = Trainer(TINY, Recipe(train=TrainConfig(epochs=1, batch_size=50)), data)
    trainer.model.forward = lambda x: (_ for _ in ()).throw(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    with pytest.raises(RuntimeError, match="shapes"):
        trainer.fit()


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS caps memory on Linux")
def test_a_real_cpu_out_of_memory_in_the_cli(tmp_path):
    """A batch of 4,000 through basic-cnn needs ~1.5 GB more than a 1.3 GB address space allows."""
    limit = 1300 * 1024 * 1024
    proc = subprocess.run(
        [sys.executable, "-m", "cnnviz", "train", "--preset", "basic-cnn", "--batch-size", "4000", "--max-steps", "1",
         "--subset", "4000", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: out of memory with batch size 4000") and "smaller batch size" in last
    # it failed before its first good epoch: nothing worth keeping, so no checkpoint and no folder it made
    assert "Nothing was saved" in last and not (tmp_path / "run").exists()


# -- the window ------------------------------------------------------------------------------------------
def _wait_failed(qtbot, window) -> str:
    qtbot.waitUntil(lambda: window.trainer_state() == "failed", timeout=90000)
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
    assert window.banner.isVisible() and window.banner.level == "error"
    text = window.banner.text()
    assert "Traceback" not in text and "internal error" not in text
    return text


def _still_usable(qtbot, window) -> None:
    assert window.controls.train_button.isEnabled() and window.controls.reset_button.isEnabled()
    window.reset()
    assert window.trainer_state() == "idle" and window.session.history.step_loss == []


def test_a_diverging_run_shows_why_and_the_window_keeps_the_good_weights(make_window, qtbot):
    window = make_window()
    qtbot.wait(10)  # the window's first event-loop turn, as before any click
    initial = _state(window.session.model)
    short_run(window, train__epochs=3, optimizer__lr=100.0, optimizer__schedule="constant")
    window.train()
    text = _wait_failed(qtbot, window)
    assert "training diverged" in text and "smaller learning rate" in text and "learning rate 100" in text
    # the window shows (and predicts with) the weights the trainer kept, not the last, blown-up snapshot
    for key, value in window.session.model.state_dict().items():
        assert torch.equal(value, initial[key]), key
    window.resize(1400, 900)
    window.show()
    for dock in window.docks.values():  # every view draws the state without an exception
        dock.raise_()
        qtbot.wait(5)
        assert not dock.widget().grab().isNull()
    _still_usable(qtbot, window)


@pytest.mark.parametrize("case", ["batch larger than the data", "zero epochs", "10 outputs on the binary task"])
def test_a_run_that_cannot_start_fails_with_a_clear_message(case, make_window, qtbot):
    window = make_window()
    qtbot.wait(10)
    if case == "batch larger than the data":
        window.experiment.batch_spin.setValue(5000)  # the spin box allows up to 65,536
        qtbot.waitUntil(lambda: window.session.recipe.train.batch_size == 5000, timeout=5000)
        expected = ["batch size 5000 is larger than the 4000 training examples", "at most 4000"]
    elif case == "zero epochs":  # the spin box stops at 1 (see test_gui_data); a run file or old settings may not
        short_run(window, train__epochs=0)
        expected = ["epochs must be at least 1, got 0"]
    else:
        window.apply_recipe(window.session.recipe.replace(data__one_vs_rest=6))
        qtbot.waitUntil(lambda: not window.loader.busy and window.session.data.num_classes == 2, timeout=30000)
        assert window.session.spec.num_classes == 2  # the window sizes the model to the task by itself...
        window.session.set_spec(window.session.spec.with_num_classes(10))  # ...so force the mismatch
        expected = ["the model has 10 outputs but the task has 2 classes", "not 6"]
    window.train()
    text = _wait_failed(qtbot, window)
    for part in expected:
        assert part in text, text
    assert window.session.history.step_loss == []
    _still_usable(qtbot, window)


def test_the_model_editor_refuses_10_outputs_on_the_binary_task(make_window, qtbot, tmp_path):
    import json

    window = make_window()
    window.apply_recipe(window.session.recipe.replace(data__one_vs_rest=6))
    qtbot.waitUntil(lambda: not window.loader.busy and window.session.data.num_classes == 2, timeout=30000)
    before = window.session.spec
    model_file = tmp_path / "ten.json"
    model_file.write_text(json.dumps(ModelSpec((conv(4, 3), dense(10))).to_dict()))
    editor = window.model_editor
    assert editor.load_model(str(model_file))
    assert "the model has 10 outputs but the data has 2 classes" in editor.error_text()
    assert not editor.apply() and window.session.spec == before


def test_every_view_survives_non_finite_weights(make_window, qtbot):
    """A snapshot taken just before a divergence is noticed may hold inf or NaN: draw it, don't crash."""
    from tests.gui.test_draw_panel import SEVEN, _draw

    window = make_window()
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    window.docks["draw"].raise_()
    _draw(window.draw.canvas, SEVEN)
    for value in (np.nan, np.inf, 1e30):
        state = {k: np.full(tuple(v.shape), value, np.float32) if v.is_floating_point() else v.numpy()
                 for k, v in window.session.model.state_dict().items()}
        window.session.apply_snapshot(WeightsSnapshot(7, 1, state))
        for dock in window.docks.values():
            dock.raise_()
            qtbot.wait(5)
            assert not dock.widget().grab().isNull()
        assert len(window.draw.probabilities()) == 10
