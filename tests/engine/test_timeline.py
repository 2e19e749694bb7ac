"""The run timeline: its files survive torn writes and concurrent readers, keyframes follow the schedule within
the budget, any step's weights are recomputed exactly, and the statistics say what they claim."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.cli import main
from cnnviz.config import DataConfig
from cnnviz.data.prepare import load_data
from cnnviz.errors import CheckpointError, CnnvizError
from cnnviz.presets import get_preset
from cnnviz.timeline.reader import RunTimeline
from cnnviz.timeline.replay import ReplayCancelled, exact_weights
from cnnviz.timeline import store
from cnnviz.timeline.schedule import log_spaced, plan_keyframes, reserve_bytes, thin
from cnnviz.timeline.stats import LayerStats, histogram_matrix
from cnnviz.timeline.store import EventReader, EventWriter, decode_keyframe, encode_keyframe
from cnnviz.training.trainer import Trainer

QUICK = ["--preset", "cntk-conv", "--subset", "300", "--json"]  # 5 batches an epoch


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 3-epoch cntk-conv run on 300 examples, recorded with its timeline (15 steps)."""
    out = tmp_path_factory.mktemp("timeline") / "run"
    assert main(["train", *QUICK, "--epochs", "3", "--out", str(out)]) == 0
    return out


# -- the event log ----------------------------------------------------------------------------------------
def test_a_torn_or_damaged_record_is_skipped_never_fatal(tmp_path):
    writer = EventWriter(tmp_path)
    writer.write({"t": "steps", "first": 1, "loss": [1.0], "accuracy": [0.5], "lr": [0.1]})
    writer.close()
    with open(tmp_path / "events.jsonl", "ab") as fh:
        fh.write(b'{"t": "steps", "first": 2, "loss": [0.9], "acc')  # a crash in the middle of a record
    reader = EventReader(tmp_path)
    assert [e["first"] for e in reader.read_new()] == [1]
    writer = EventWriter(tmp_path)  # the next writer ends the torn line before its first record
    writer.write({"t": "steps", "first": 2, "loss": [0.8], "accuracy": [0.6], "lr": [0.1]})
    writer.write({"t": "no such kind", "x": 1})
    writer.close()
    with open(tmp_path / "events.jsonl", "ab") as fh:
        fh.write(b"[1, 2, 3]\n\xff\xfe not json\n")
    events = reader.read_new()
    assert [e.get("first") for e in events] == [2, None] and reader.skipped == 3  # torn line, list, bytes


def test_a_reader_follows_a_writer_record_by_record(tmp_path):
    writer = EventWriter(tmp_path)
    total = 400

    def write():
        for i in range(total):
            writer.write({"t": "steps", "first": i + 1, "loss": [float(i)], "accuracy": [0.0], "lr": [0.1]})
            if i % 50 == 0:
                time.sleep(0.005)
        writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    reader, seen = EventReader(tmp_path), []
    deadline = time.monotonic() + 30
    while len(seen) < total and time.monotonic() < deadline:
        seen += [e["first"] for e in reader.read_new()]
    thread.join()
    assert seen == list(range(1, total + 1)) and reader.skipped == 0


def test_a_run_written_by_a_newer_version_is_refused(recorded, tmp_path):
    newer = tmp_path / "newer"
    newer.mkdir()
    header = json.loads((recorded / "run.json").read_text())
    (newer / "run.json").write_text(json.dumps({**header, "format_version": 99}))
    (newer / "events.jsonl").write_text("")
    with pytest.raises(CheckpointError, match="newer cnnviz"):
        RunTimeline.open(newer)


def test_an_event_cannot_point_outside_its_run(recorded, tmp_path):
    timeline = RunTimeline.open(recorded)
    step = 7  # a keyframe, not an anchor
    timeline.keyframes[step] = ("../../etc/passwd", "float32")
    with pytest.raises(CheckpointError, match="not a file of this run"):
        timeline.weights(step)


# -- what a run records -----------------------------------------------------------------------------------
def test_the_recorded_run_holds_every_step_epoch_anchor_and_statistic(recorded):
    timeline = RunTimeline.open(recorded)
    assert timeline.history.steps == 15 and len(timeline.history.epochs) == 3
    assert sorted(timeline.anchors) == [0, 5, 10, 15]  # the start and every epoch end
    assert timeline.keyframe_steps() == list(range(16))  # a short run: every step, within the budget
    assert timeline.state == "finished" and timeline.ended["status"] == "finished"
    assert sorted(timeline.evaluations) == [5, 10, 15]
    assert timeline.history.test_accuracy == [timeline.evaluations[s]["accuracy"] for s in (5, 10, 15)]
    saved = json.loads((recorded / "run.json").read_text())
    assert saved["format_version"] == 2 and saved["spec"]["layers"] and saved["versions"]["torch"]
    evaluation = timeline.evaluation_at(12)
    assert evaluation.step == 10 and evaluation.probabilities.shape == (1000, 10)


def test_keyframes_are_dense_early_sparse_later_and_fit_the_budget():
    steps = log_spaced(0, 9000, 220)
    assert len(steps) == 220 and steps[:20] == tuple(range(1, 21)) and steps[-1] == 9000
    gaps = np.diff(steps)
    assert gaps[-1] > 100 * gaps[0] and (np.diff(gaps) >= -1).all()  # the gaps widen
    # gorner-dropout, 15 epochs of full MNIST: 244,076 weights, an Adam anchor of ~2.95 MB
    # (10,000 test images of 10 classes: an evaluation of 220 KB; 7 layers with statistics)
    plan = plan_keyframes(0, 9000, 15, 244_076, 2_950_000, eval_bytes=220_000, layers=7)
    assert plan.precision == "uint8" and plan.compress and len(plan.steps) + 16 >= 200
    assert plan.planned_bytes + reserve_bytes(15, 9000, 2_950_000, 220_000, 7) <= 100_000_000
    small = plan_keyframes(0, 9370, 10, 11_274, 140_000)  # cntk-conv: plenty of room for float32
    assert small.precision == "float32" and len(small.steps) >= 200


def test_a_thinned_plan_keeps_its_spacing_and_its_last_step():
    plan = log_spaced(0, 5000, 300)
    kept = thin(plan, 40)
    assert len(kept) == 40 and kept[-1] == 5000 and set(kept) <= set(plan) and list(kept) == sorted(kept)
    assert thin(plan, 500) == plan and thin(plan, 0) == ()


def test_the_whole_run_folder_keeps_to_its_budget(tmp_path):
    out = tmp_path / "run"
    budget_mb = 0.6  # cntk-conv: anchors of ~63 KB, evaluations of ~18 KB: room for some keyframes, not all
    assert main(["train", *QUICK, "--epochs", "3", "--out", str(out), "--timeline-mb", str(budget_mb)]) == 0
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.name != "RUNNING")
    timeline = RunTimeline.open(out)
    assert size <= budget_mb * 1e6 and sorted(timeline.anchors) == [0, 5, 10, 15]
    assert 0 < len(timeline.keyframes) < 12  # some, not one at every step but the epoch ends


@pytest.mark.parametrize("precision, compress, tolerance", [("float32", False, 0.0), ("float16", False, 1e-3),
                                                            ("uint8", False, 1 / 255 + 1e-6),
                                                            ("uint8", True, 1 / 255 + 1e-6)])
def test_keyframe_precisions_round_trip_within_their_resolution(precision, compress, tolerance):
    rng = np.random.default_rng(0)
    state = {"w": rng.normal(size=(8, 3, 5, 5)).astype(np.float32), "b": np.linspace(-1, 1, 8, dtype=np.float32),
             "n": np.array(7, np.int64)}
    back = decode_keyframe(encode_keyframe(state, precision, compress), compressed=compress)
    for name in ("w", "b"):
        span = float(state[name].max() - state[name].min())
        assert np.abs(back[name] - state[name]).max() <= tolerance * max(span, 1.0)
    assert int(back["n"]) == 7


def test_a_compressed_keyframe_that_inflates_too_far_or_is_damaged_is_refused(monkeypatch):
    payload = encode_keyframe({"w": np.zeros((64, 64), np.float32)}, "uint8", compress=True)
    monkeypatch.setattr(store, "MAX_FILE_BYTES", 1000)  # the keyframe inflates to ~4 KB
    with pytest.raises(CheckpointError, match="damaged or too large"):
        decode_keyframe(payload, compressed=True)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="not a readable compressed keyframe"):
        decode_keyframe(b"\x78\x01garbage", compressed=True)


# -- any step exactly ---------------------------------------------------------------------------------------
def straight_weights(step: int) -> dict[str, torch.Tensor]:
    """The weights after `step` of an uninterrupted run of the same recipe."""
    preset = get_preset("cntk-conv")
    recipe = preset.recipe.replace(data__train_subset=300, train__epochs=3, train__max_steps=max(step, 1))
    trainer = Trainer(preset.spec, recipe, load_data(recipe.data, fallback=False))
    if step:
        trainer.fit()
    return trainer.model.state_dict()


@pytest.mark.parametrize("step", [0, 7, 13])
def test_any_step_is_recomputed_exactly_from_its_anchor(recorded, step):
    timeline = RunTimeline.open(recorded)
    seen = []
    weights = exact_weights(timeline, step, progress=lambda done, total: seen.append((done, total)))
    for name, value in straight_weights(step).items():
        assert torch.equal(torch.from_numpy(weights[name]), value), name
    if step % 5:
        assert seen[-1] == (step % 5, step % 5)  # from the anchor at the epoch end before it
    if step in timeline.keyframes and timeline.precision(step) == "float32":
        stored = timeline.weights(step)
        assert all(np.array_equal(stored[k], weights[k]) for k in weights)


def test_a_recomputation_can_be_cancelled_and_out_of_range_is_an_error(recorded):
    timeline = RunTimeline.open(recorded)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ReplayCancelled):
        exact_weights(timeline, 14, cancel=cancel)
    with pytest.raises(CnnvizError, match="not in this run"):
        exact_weights(timeline, 99)


def test_info_and_evaluate_at_a_step(recorded, capsys):
    assert main(["info", str(recorded), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] == 2 and info["steps"] == 15 and info["epochs"] == 3
    assert info["keyframe_steps"] == list(range(16)) and info["bytes"] > 0
    assert isinstance(info["test_accuracy"], float) and "conv1" in info["stats"]
    assert {"weight_hist", "grad_norm", "update_ratio"} <= set(info["stats"]["conv1"])
    assert main(["evaluate", str(recorded), "--step", "7", "--json"]) == 0
    at_7 = json.loads(capsys.readouterr().out)
    from cnnviz.training.trainer import evaluate

    model = get_preset("cntk-conv").spec
    from cnnviz.models import build_model

    net = build_model(model)
    net.load_state_dict(straight_weights(7))
    data = load_data(DataConfig(train_subset=300, validation="none"))
    assert at_7["step"] == 7 and at_7["test_accuracy"] == evaluate(net, data.test).accuracy
    assert main(["info", str(recorded)]) == 0 and "recomputes exactly" in capsys.readouterr().out


def test_no_timeline_records_only_the_final_checkpoint_and_metrics(tmp_path):
    out = tmp_path / "plain"
    assert main(["train", *QUICK, "--epochs", "1", "--out", str(out), "--no-timeline"]) == 0
    assert not (out / "events.jsonl").exists() and not (out / "keyframes").exists()
    assert (out / "checkpoint.safetensors").is_file() and (out / "metrics.csv").is_file()
    timeline = RunTimeline.open(out)  # still opens: one stored step, the last
    assert not timeline.has_timeline and timeline.keyframe_steps() == [5]


def test_a_failed_continuation_rewinds_the_timeline(recorded, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(recorded, copy)
    code = main(["train", "--resume", "--epochs", "5", "--lr", "100", "--out", str(copy), "--json"])
    assert code == 2 and "unchanged" in capsys.readouterr().err
    timeline = RunTimeline.open(copy)
    assert timeline.history.steps == 15 and max(timeline.keyframe_steps()) == 15


# -- statistics -----------------------------------------------------------------------------------------
def test_statistics_find_dead_relus_saturated_sigmoids_and_the_update():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential()
            self.layers.add_module("dense1", nn.Linear(4, 6))
            self.layers.add_module("dense1_relu", nn.ReLU())
            self.layers.add_module("dense2", nn.Linear(6, 5))
            self.layers.add_module("dense2_sigmoid", nn.Sigmoid())

        def forward(self, x):
            return self.layers(x)

    net = Net()
    with torch.no_grad():
        net.layers.dense1.bias[:3] = -100.0  # three of six units can never fire
        net.layers.dense2.weight.zero_()
        net.layers.dense2.bias[:] = torch.tensor([50.0, -50.0, 0.0, 0.0, 0.0])  # two saturated units
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    stats = LayerStats(net)
    stats.arm()
    x = torch.rand(32, 4)
    loss = net(x).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    record = stats.collect()
    assert record["dense1_relu"]["dead_fraction"] == pytest.approx(0.5)
    assert record["dense2_sigmoid"]["saturated_fraction"] == pytest.approx(0.4)
    assert record["dense2"]["update_ratio"] > 0 and record["dense2"]["grad_norm"] > 0  # (dense1 gets none: dense2 is 0)
    assert sum(record["dense1"]["weight_hist"]["counts"]) == 24
    matrix, low, high, steps = histogram_matrix([{"step": 3, "layers": record}], "dense1")
    assert matrix.shape == (1, 64) and matrix.sum() == pytest.approx(1.0) and low < high
    assert not stats.armed and not net.layers.dense1_relu._forward_hooks
