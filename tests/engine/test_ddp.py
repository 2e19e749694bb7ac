"""Training on several processes (DDP with gloo on 127.0.0.1) and the deferred divergence check of the GPU path."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.config import DataConfig, OptimizerConfig, Recipe, TrainConfig
from cnnviz.data.prepare import load_data
from cnnviz.errors import ConfigError
from cnnviz.models import ModelSpec, conv, dense, maxpool
from cnnviz.training.distributed import local_batch_size, shard, shard_length, without_option
from cnnviz.training.messages import FAILED, FINISHED, STOPPED
from cnnviz.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelSpec((conv(4, 5, 2, "same"), maxpool(2), dense(10)))  # no dropout, no batch norm: DDP is exact


def _recipe(**train) -> Recipe:
    return Recipe(data=DataConfig(validation="none", train_subset=203),
                  optimizer=OptimizerConfig(name="sgd", lr=0.1, momentum=0.9),
                  train=TrainConfig(**{"epochs": 1, "batch_size": 20, "evaluate_test": False, "threads": 1, **train}))


@pytest.fixture(scope="module")
def data():
    return load_data(_recipe().data)


# -- the shards (pure) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (10, 3), (7, 4), (2, 5), (60_000, 8)])
def test_shards_are_disjoint_complete_and_make_up_the_global_batches(n, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [shard(order, rank, world) for rank in range(world)]
    length = shard_length(n, world)
    assert all(len(s) == length for s in shards)  # every process takes as many steps
    positions = sorted(p for s in shards for p in s.tolist())
    assert set(positions) == set(range(n))  # complete
    padding = length * world - n  # DistributedSampler's: the order's own start, seen twice
    assert len(positions) == n + padding and padding < world
    if padding == 0:
        assert positions == list(range(n))  # disjoint
    padded = torch.cat([order, order.repeat(world)[:padding]])
    local = 3
    for j in range(-(-length // local)):  # batch j of every shard together is batch j at the global size
        together = sorted(i for s in shards for i in s[j * local:(j + 1) * local].tolist())
        assert together == sorted(padded[j * local * world:(j + 1) * local * world].tolist())


def test_the_global_batch_must_split_evenly():
    assert local_batch_size(64, 2) == 32 and local_batch_size(64, 1) == 64
    with pytest.raises(ConfigError, match="batch size 100 does not split evenly over 3 processes"):
        local_batch_size(100, 3)


def test_nproc_is_not_handed_on_to_the_workers():
    assert without_option(["--debug", "train", "--nproc", "2", "--json", "--nproc=3"], "--nproc") == \
        ["--debug", "train", "--json"]


# -- the deferred check (the GPU path's, exercised on the CPU) ----------------------------------------------------
def test_a_deferred_check_trains_exactly_as_the_check_after_every_step(data):
    every_step = Trainer(TINY, _recipe(epochs=2), data)
    deferred = Trainer(TINY, _recipe(epochs=2, check_every=4), data)
    assert every_step.check_every is None and deferred.check_every == 4
    assert every_step.fit().status == deferred.fit().status == FINISHED
    for key, value in every_step.model.state_dict().items():
        assert torch.equal(value, deferred.model.state_dict()[key])
    a, b = every_step.history, deferred.history
    assert len(b.step_loss) == len(b.step_accuracy) == len(b.step_lr) == deferred.step_count == 22
    assert np.allclose(a.step_loss, b.step_loss, rtol=1e-6) and a.step_accuracy == b.step_accuracy
    assert np.allclose([(e.train_loss, e.train_accuracy) for e in a.epochs],
                       [(e.train_loss, e.train_accuracy) for e in b.epochs], rtol=1e-6)


def test_a_deferred_check_goes_back_to_the_last_good_state_and_names_the_step(data):
    import dataclasses

    images = data.train.images.clone()
    trainer = Trainer(TINY, _recipe(epochs=3, check_every=5), dataclasses.replace(
        data, train=dataclasses.replace(data.train, images=images)))
    trainer.recipe = trainer.recipe.replace(train__epochs=1)
    assert trainer.fit().status == FINISHED  # epoch 1 is good: its end is the last good state
    good = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    images[:] = float("nan")  # every step of epoch 2 diverges from step 12 on; the check comes at step 15
    trainer.recipe = trainer.recipe.replace(train__epochs=3)
    result = trainer.fit()
    assert result.status == FAILED
    assert "the loss became nan at step 12 (epoch 2)" in result.error and "end of epoch 1 (step 11)" in result.error
    assert trainer.step_count == 11 and trainer.epoch == 1 and trainer.batch_in_epoch == 0
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, good[key])  # the steps that updated with NaN before the check are undone
    h = trainer.history
    assert len(h.step_loss) == len(h.step_accuracy) == len(h.step_lr) == 11 and np.isfinite(h.step_loss).all()


def test_a_stop_in_the_deferred_mode_reads_every_step_back(data):
    from cnnviz.training.callbacks import Callback

    class StopAt5(Callback):
        def on_fit_start(self, trainer):
            trainer.call_at_step(5, trainer.request_stop)

    trainer = Trainer(TINY, _recipe(check_every=8), data, callbacks=[StopAt5()])
    assert trainer.fit().status == STOPPED and trainer.step_count == 5
    assert len(trainer.history.step_loss) == len(trainer.history.step_accuracy) == 5


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_precision_option_trains_on_the_cpu(data, precision):
    trainer = Trainer(TINY, _recipe(precision=precision, check_every=4), data)
    assert trainer.fit().status == FINISHED and np.isfinite(trainer.history.step_loss).all()


@pytest.mark.slow  # importing torch.compile's machinery alone takes 10-25 s here
def test_the_compile_option_wraps_the_model_for_the_loop_only(data):
    trainer = Trainer(TINY, _recipe(compile=True), data)
    compiled = trainer._training_module()  # (torch.compile is lazy: nothing compiles until the first step)
    assert compiled is not trainer.model and getattr(compiled, "_orig_mod", None) is trainer.model
    assert Trainer(TINY, _recipe(), data)._training_module() is not None


# -- two gloo processes ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    """One of two processes: three steps of TINY on its shard, its weights and its epoch's order saved."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    from cnnviz.training import distributed

    group = distributed.start("cpu")
    try:
        data = load_data(_recipe().data)
        trainer = Trainer(TINY, _recipe(max_steps=3, check_every=2), data, distributed=group)
        result = trainer.fit()
        state = {k: v.numpy() for k, v in trainer.model.state_dict().items()}
        np.savez(Path(out) / f"rank{rank}.npz", order=trainer._epoch_order[1].numpy(),
                 losses=np.array(trainer.history.step_loss), steps=trainer.step_count,
                 status=str(result.status), batches=trainer.batches_per_epoch(), **state)
    finally:
        group.close()


@pytest.mark.slow  # 16-25 s on 2 busy cores, mostly two processes importing torch (the CLI test below is quicker)
def test_two_gloo_processes_train_on_their_shards_to_the_same_weights(tmp_path, data):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    for r in ranks:
        assert str(r["status"]) == FINISHED and int(r["steps"]) == 3 and int(r["batches"]) == 11
    a, b = ranks
    assert len(set(a["order"].tolist()) & set(b["order"].tolist())) == 2 * 102 - 203  # the padding, seen twice
    assert set(a["order"].tolist()) | set(b["order"].tolist()) == set(range(len(data.train)))
    single = Trainer(TINY, _recipe(max_steps=3), data)  # one process, the same global batch of 20
    single.fit()
    for key, value in single.model.state_dict().items():
        assert np.array_equal(a[key], b[key])  # identical weights in every process
        assert np.allclose(a[key], value.numpy(), atol=1e-5)  # and the single process's, but for summation order
    assert np.array_equal(a["losses"], b["losses"])  # the losses are summed over the processes
    assert np.allclose(a["losses"], single.history.step_loss, rtol=1e-5)


def test_cnnviz_train_nproc_2_writes_the_run_once(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "cnnviz", "train", "--preset", "cntk-conv", "--subset", "256",
                           "--epochs", "2", "--batch-size", "32", "--out", str(out), "--json", "--nproc", "2"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout  # rank 0 alone prints
    summary = json.loads(lines[0])
    assert summary["world_size"] == 2 and summary["status"] == "finished" and summary["steps"] == 16
    saved = json.loads((out / "run.json").read_text())
    assert saved["world_size"] == 2 and saved["exact"] is False and saved["batches_per_epoch"] == 8
    assert sorted(p.name for p in out.iterdir() if p.name.startswith((".", "RUNNING"))) == []  # no marker, staging
    assert len((out / "steps.csv").read_text().splitlines()) == 1 + 16
    assert list(tmp_path.iterdir()) == [out]  # the other rank wrote nothing anywhere


def test_nproc_refuses_a_batch_that_does_not_split_before_starting_anything(tmp_path, capsys):
    from cnnviz.cli import main

    code = main(["train", "--preset", "cntk-conv", "--batch-size", "33", "--nproc", "2", "--out", str(tmp_path / "run")])
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [
        "error: batch size 33 does not split evenly over 2 processes (each trains on batch size / processes); "
        "choose a multiple of 2"]
    assert not (tmp_path / "run").exists()
    assert main(["train", "--nproc", "0"]) == 2 and "--nproc must be between 1 and 1024, got 0" in capsys.readouterr().err


def test_nproc_1_just_trains_in_this_process(capsys):
    from cnnviz.cli import main

    assert main(["train", "--preset", "cntk-conv", "--subset", "128", "--epochs", "1", "--nproc", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["world_size"] == 1 and summary["steps"] == 2 and summary["status"] == "finished"


def _cnnviz(*argv, cwd, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cnnviz", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.mark.slow  # ~10 s: three processes start
def test_two_processes_fail_together_on_a_divergence_and_rank_0_alone_says_it(tmp_path):
    out = tmp_path / "run"
    done = _cnnviz("train", "--preset", "gorner", "--subset", "1000", "--epochs", "1", "--lr", "100",
                   "--batch-size", "50", "--out", str(out), "--nproc", "2", cwd=tmp_path)  # (test_training's)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: the loss became") and "training diverged" in lines[0]
    assert "Nothing was saved." in lines[0] and not out.exists()  # it failed before any good progress


@pytest.mark.slow  # ~20 s: two runs of three processes
def test_a_run_of_two_processes_resumes_with_two_processes(tmp_path):
    out = tmp_path / "run"
    first = _cnnviz("train", "--preset", "cntk-conv", "--subset", "256", "--epochs", "1", "--batch-size", "32",
                    "--out", str(out), "--json", "--nproc", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = _cnnviz("train", "--out", str(out), "--resume", "--epochs", "2", "--json", "--nproc", "2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 2 and summary["steps"] == 16 and summary["world_size"] == 2
    assert len((out / "steps.csv").read_text().splitlines()) == 1 + 16
    refused = _cnnviz("train", "--out", str(out), "--json", "--nproc", "2", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        f"error: {out} already holds a run; pass --overwrite to replace it, --resume to continue it, or choose "
        "another --out folder"]
