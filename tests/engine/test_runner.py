"""Training in a child process: messages stream back throttled, control works, deaths are reported."""
from __future__ import annotations

import collections
import os
import signal
import time

import numpy as np
from cnnviz.config import DataConfig, OptimizerConfig, Recipe, TrainConfig
from cnnviz.models import ModelSpec, conv, dense
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.messages import (FAILED, FINISHED, PAUSED, STOPPED, AckSnapshot, EpochMetrics, Evaluation, Step,
                                      FitResult, Pause, Resume, Saved, SaveCheckpoint, StateChanged, StepBatch, Stop,
                                      WeightsSnapshot)
from cnnviz.training.runner import TrainingJob, TrainingProcess

SPEC = ModelSpec((conv(4, 5, 2, "same"), dense(10)))


def job(tmp_path, **train) -> TrainingJob:
    recipe = Recipe(data=DataConfig(validation="none", train_subset=1000),
                    optimizer=OptimizerConfig(name="adam", lr=0.01),
                    train=TrainConfig(**{"epochs": 2, "batch_size": 20, **train}))
    return TrainingJob(spec=SPEC.to_dict(), recipe=recipe, run_dir=str(tmp_path / "auto"), threads=1)


def drain(proc: TrainingProcess, until, timeout=60.0, ack=True):
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in proc.poll(0.05):
            got.append(m)
            if ack and isinstance(m, WeightsSnapshot):
                proc.send(AckSnapshot())
        if until(got):
            return got
    raise AssertionError(f"timed out; got {collections.Counter(type(m).__name__ for m in got)}")


def test_a_run_streams_every_step_and_autosaves(tmp_path):
    proc = TrainingProcess(job(tmp_path))
    proc.start()
    got = drain(proc, lambda ms: any(isinstance(m, FitResult) for m in ms))
    proc.join(10)
    result = got[-1]
    assert isinstance(result, FitResult) and result.status == FINISHED and result.steps == 100
    batches = [m for m in got if isinstance(m, StepBatch)]
    steps = [b.first_step + i for b in batches for i in range(len(b.losses))]
    assert steps == list(range(1, 101))  # every step's loss arrives, in order, none twice
    assert len(batches) < 100  # ...but batched, not one message per step
    assert sum(isinstance(m, EpochMetrics) for m in got) == 2
    assert sum(isinstance(m, Evaluation) for m in got) == 2
    assert [m.epoch for m in got if isinstance(m, Saved)] == [1, 2]
    saved = load_checkpoint(tmp_path / "auto")
    assert saved.step == 100
    # the values are the run's own, step for step, and each batch's `latest` describes its last step
    np.testing.assert_allclose(np.concatenate([b.losses for b in batches]), saved.history.step_loss, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b.accuracies for b in batches]),
                                  np.float32(saved.history.step_accuracy))
    for b in batches:
        assert b.latest.step == b.first_step + len(b.losses) - 1
        assert b.latest.accuracy == b.accuracies[-1] and b.latest.batches_per_epoch == 50
        assert 1 <= b.latest.batch <= 50 and b.latest.epoch == (b.latest.step - 1) // 50 + 1


def test_the_child_trains_on_the_cheap_path_without_a_per_step_callback():
    """The streamer is paced by the control thread, so the Trainer in the child has no step callback and
    counts accuracies in batches (a per-step callback costs ~4% of a cntk-conv step)."""
    from cnnviz.training.callbacks import bound_hooks
    from cnnviz.training.child import Streamer

    streamer = Streamer(None, TrainingJob(spec=SPEC.to_dict(), recipe=Recipe()))
    try:
        assert bound_hooks([streamer], "on_step_end") == ()
    finally:
        streamer.shared.close()


def test_snapshots_wait_for_the_acknowledgement(tmp_path):
    proc = TrainingProcess(job(tmp_path, epochs=3))
    proc.start()
    got = drain(proc, lambda ms: any(isinstance(m, FitResult) for m in ms), ack=False)
    snapshots = [m for m in got if isinstance(m, WeightsSnapshot)]
    # Never acknowledged: the window never got flooded; just the first one and the final weights.
    assert len(snapshots) == 2 and snapshots[0].step < snapshots[-1].step == got[-1].steps


def test_the_last_snapshot_holds_the_final_weights_and_no_shared_memory_is_left(tmp_path):
    proc = TrainingProcess(job(tmp_path))
    blocks = set()  # the run's own blocks (other test runs on the machine may have blocks of their own)
    real_read = proc._weights.read
    proc._weights.read = lambda note: (blocks.add(note.block), real_read(note))[1]
    proc.start()
    got = drain(proc, lambda ms: any(isinstance(m, FitResult) for m in ms))
    proc.join(10)
    proc.close()
    last = [m for m in got if isinstance(m, WeightsSnapshot)][-1]
    saved = load_checkpoint(tmp_path / "auto")
    assert last.step == got[-1].steps == saved.step == 100
    assert set(last.state) == set(saved.model_state)
    for name, value in saved.model_state.items():
        np.testing.assert_array_equal(last.state[name], value.numpy())
    if os.path.isdir("/dev/shm"):
        assert blocks and not any(os.path.exists(f"/dev/shm/{name.lstrip('/')}") for name in blocks)  # unlinked


def test_pause_step_resume_and_stop(tmp_path):
    proc = TrainingProcess(job(tmp_path, epochs=50))
    proc.start()
    proc.send(Pause())
    got = drain(proc, lambda ms: any(isinstance(m, StateChanged) and m.state == PAUSED for m in ms))
    done = lambda ms: max([b.first_step + len(b.losses) - 1 for b in ms if isinstance(b, StepBatch)] or [0])  # noqa
    at_pause = done(got)
    time.sleep(0.5)
    more = drain(proc, lambda ms: True, timeout=0.5)
    assert done(more) <= at_pause  # nothing trains while paused
    proc.send(Step())
    more = drain(proc, lambda ms: done(ms) > 0)
    assert done(more) == at_pause + 1
    proc.send(SaveCheckpoint(str(tmp_path / "paused.safetensors")))
    drain(proc, lambda ms: any(isinstance(m, Saved) and not m.autosave for m in ms))
    assert load_checkpoint(tmp_path / "paused.safetensors").step == at_pause + 1
    proc.send(Resume())
    proc.send(Stop())
    got = drain(proc, lambda ms: any(isinstance(m, FitResult) for m in ms))
    assert got[-1].status == STOPPED
    assert proc.join(10)


def test_a_killed_child_is_reported_not_waited_for(tmp_path):
    proc = TrainingProcess(job(tmp_path, epochs=500))
    proc.start()
    drain(proc, lambda ms: any(isinstance(m, StepBatch) for m in ms))
    os.kill(proc._process.pid, signal.SIGKILL)
    got = drain(proc, lambda ms: any(isinstance(m, FitResult) for m in ms))
    assert got[-1].status == FAILED and "ended unexpectedly" in got[-1].error


def test_bad_job_fails_with_a_message(tmp_path):
    bad = job(tmp_path)
    bad = TrainingJob(spec=SPEC.to_dict(), recipe=bad.recipe.replace(data__data_dir=str(tmp_path / "nope")),
                      threads=1)
    proc = TrainingProcess(bad)
    proc.start()
    got = drain(proc, lambda ms: any(isinstance(m, FitResult) for m in ms))
    assert got[-1].status == FAILED and "nope" in got[-1].error and "Traceback" not in got[-1].error


def test_shutdown_ends_a_running_child_quickly(tmp_path):
    proc = TrainingProcess(job(tmp_path, epochs=500))
    proc.start()
    drain(proc, lambda ms: any(isinstance(m, StepBatch) for m in ms))
    started = time.monotonic()
    proc.shutdown(timeout=10)
    assert not proc.is_alive() and time.monotonic() - started < 10


def test_closing_right_after_the_result_lets_the_child_exit_cleanly(tmp_path):
    # The window frees the pipes as soon as the FitResult arrives, while the child is still exiting; a
    # control thread woken then by the closed pipe used to abort the child (SIGABRT, exit code -6).
    for _ in range(2):
        proc = TrainingProcess(job(tmp_path, epochs=1))
        proc.start()
        drain(proc, lambda ms: any(isinstance(m, FitResult) for m in ms))
        proc.close()
        assert proc.join(15)
        assert proc._process.exitcode == 0


def test_the_window_training_process_gives_way_to_the_window(tmp_path):
    """Every thread of the training child is niced, so the GUI thread wins a shared core (linux)."""
    import pytest

    if not os.path.isdir("/proc/self/task"):
        pytest.skip("per-thread niceness is read from /proc")
    proc = TrainingProcess(job(tmp_path, epochs=50))
    proc.start()
    try:
        drain(proc, lambda ms: any(isinstance(m, StepBatch) for m in ms))
        pid = proc._process.pid
        nices = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                nices.append(int(f.read().rsplit(")", 1)[1].split()[16]))  # field 19: nice
        assert nices and min(nices) >= min(19, os.nice(0) + 10), nices
    finally:
        proc.send(Stop())
        drain(proc, lambda ms: any(isinstance(m, FitResult) for m in ms))
        proc.join(10)
