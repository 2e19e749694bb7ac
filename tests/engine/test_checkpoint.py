"""Checkpoints: round trip, resume, atomic writes, and every kind of bad file."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from cnnviz.config import DataConfig, OptimizerConfig, Recipe, TrainConfig
from cnnviz.data.prepare import load_data
from cnnviz.errors import CheckpointError
from cnnviz.models import ModelSpec, batchnorm, conv, dense, maxpool
from cnnviz.training.checkpoint import from_trainer, load_checkpoint, resume_trainer, save_checkpoint
from cnnviz.training.trainer import Trainer

SPEC = ModelSpec((conv(4, 5, 2, "same"), batchnorm(), maxpool(2), dense(10)))


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(validation="none", train_subset=600))


def recipe(epochs=2, optimizer="adam") -> Recipe:
    return Recipe(optimizer=OptimizerConfig(name=optimizer, lr=0.01, momentum=0.9 if optimizer == "sgd" else 0.0),
                  train=TrainConfig(epochs=epochs, batch_size=50, evaluate_test=False))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data):
    trainer = Trainer(SPEC, recipe(), data)
    trainer.fit()
    path = tmp_path_factory.mktemp("ck") / "run.safetensors"
    save_checkpoint(path, from_trainer(trainer))
    return trainer, path


def test_round_trip_keeps_everything(saved):
    trainer, path = saved
    ckpt = load_checkpoint(path)
    assert ckpt.spec == trainer.spec and ckpt.recipe == trainer.recipe
    assert ckpt.epoch == 2 and ckpt.step == trainer.step_count
    assert ckpt.history.step_loss == pytest.approx(trainer.history.step_loss)
    assert [e.epoch for e in ckpt.history.epochs] == [1, 2]
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(ckpt.model_state[key], value.cpu())
    assert "running_mean" in " ".join(ckpt.model_state)  # batch-norm buffers are kept
    model = ckpt.build_model()
    assert not model.training


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_continues_exactly_where_it_stopped(tmp_path, data, optimizer):
    straight = Trainer(SPEC, recipe(epochs=2, optimizer=optimizer), data)
    straight.fit()

    first = Trainer(SPEC, recipe(epochs=1, optimizer=optimizer), data)
    first.fit()
    path = save_checkpoint(tmp_path / "half.safetensors", from_trainer(first))
    resumed = resume_trainer(load_checkpoint(path), data, recipe=recipe(epochs=2, optimizer=optimizer))
    resumed.fit()
    assert resumed.step_count == straight.step_count
    assert resumed.history.step_loss == pytest.approx(straight.history.step_loss, rel=1e-4, abs=1e-5)


def test_resume_mid_epoch(tmp_path, data):
    straight = Trainer(SPEC, recipe(epochs=1), data)
    straight.fit()
    part = Trainer(SPEC, recipe(epochs=1), data)
    part.recipe = part.recipe.replace(train__max_steps=5)
    part.fit()
    assert part.batch_in_epoch == 5
    path = save_checkpoint(tmp_path / "mid.safetensors", from_trainer(part))
    resumed = resume_trainer(load_checkpoint(path), data, recipe=recipe(epochs=1))
    resumed.fit()
    assert resumed.step_count == straight.step_count
    assert resumed.history.step_loss == pytest.approx(straight.history.step_loss, rel=1e-4, abs=1e-5)


def test_garbage_files_give_clear_messages(tmp_path, saved):
    _, good = saved
    raw = good.read_bytes()
    cases = {
        "missing.safetensors": None,
        "truncated.safetensors": raw[: len(raw) // 2],
        "random.safetensors": os.urandom(5000),
        "empty.safetensors": b"",
        "tiny.safetensors": b"abc",
        "pickle.safetensors": pickle.dumps({"weights": [1, 2, 3]}),
    }
    torch.save({"a": torch.zeros(2)}, tmp_path / "torchsave.pt")
    messages = {}
    for name, payload in cases.items():
        if payload is not None:
            (tmp_path / name).write_bytes(payload)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        messages[name] = str(info.value)
        assert name in messages[name]
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(tmp_path / "torchsave.pt")
    assert "not found" in messages["missing.safetensors"]
    assert "never unpickles" in messages["pickle.safetensors"]


def test_a_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.safetensors")
    assert not marker.exists()


def _rewrite_header(raw: bytes, change) -> bytes:
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    change(header)
    blob = json.dumps(header).encode()
    blob += b" " * ((8 - len(blob) % 8) % 8)
    return len(blob).to_bytes(8, "little") + blob + raw[8 + n:]


def test_newer_format_and_foreign_safetensors(tmp_path, saved):
    _, good = saved
    raw = good.read_bytes()
    newer = _rewrite_header(raw, lambda h: h["__metadata__"].update(version="99"))
    (tmp_path / "newer.safetensors").write_bytes(newer)
    with pytest.raises(CheckpointError, match="newer cnnviz .*version 99"):
        load_checkpoint(tmp_path / "newer.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="without cnnviz's header"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def test_weights_for_a_different_architecture(tmp_path, saved):
    _, good = saved
    other = ModelSpec((conv(8, 5, 2, "same"), batchnorm(), maxpool(2), dense(10)))
    raw = _rewrite_header(good.read_bytes(), lambda h: h["__metadata__"].update(spec=json.dumps(other.to_dict())))
    (tmp_path / "other.safetensors").write_bytes(raw)
    with pytest.raises(CheckpointError, match="do not match the model: layers.conv1.weight has shape"):
        load_checkpoint(tmp_path / "other.safetensors")
    broken = _rewrite_header(good.read_bytes(), lambda h: h["__metadata__"].update(spec="{not json"))
    (tmp_path / "broken.safetensors").write_bytes(broken)
    with pytest.raises(CheckpointError, match="broken.safetensors: damaged header"):
        load_checkpoint(tmp_path / "broken.safetensors")


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    from cnnviz.training import checkpoint as ck
    real_write = ck.os.fdopen
    path = sys.argv[1]
    ckpt = ck.load_checkpoint(path)
    ckpt.model_state = {k: v + 1 for k, v in ckpt.model_state.items()}
    # make the write slow and observable: stall after the first bytes until killed
    class Slow:
        def __init__(self, fh): self.fh = fh
        def __enter__(self): return self
        def __exit__(self, *a): return self.fh.__exit__(*a)
        def write(self, data):
            self.fh.write(data[:100]); self.fh.flush()
            print("WRITING", flush=True)
            import time; time.sleep(60)
        def flush(self): self.fh.flush()
        def fileno(self): return self.fh.fileno()
    ck.os.fdopen = lambda fd, mode: Slow(real_write(fd, mode))
    ck.save_checkpoint(path, ckpt)
""")


def test_sigkill_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, saved):
    trainer, good = saved
    path = tmp_path / "run.safetensors"
    path.write_bytes(good.read_bytes())
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(path)  # the old file, whole
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(ckpt.model_state[key], value.cpu())
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run.safetensors"]
    assert all(name.endswith(".tmp") for name in leftovers)  # only the dead temp file, never a half checkpoint
