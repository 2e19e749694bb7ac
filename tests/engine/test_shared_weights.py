"""Weight snapshots through shared memory: exact copies, torn reads dropped, blocks freed, a fallback."""
from __future__ import annotations

import numpy as np
import pytest

from cnnviz.training import shared_weights
from cnnviz.training.shared_weights import SharedWeightsReader, SharedWeightsWriter, plan_slots


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"conv.weight": rng.standard_normal((8, 1, 5, 5)).astype(np.float32),
            "conv.bias": rng.standard_normal(8).astype(np.float32),
            "bn.num_batches_tracked": np.array(7, dtype=np.int64),
            "dense.weight": rng.standard_normal((10, 33)).astype(np.float32)}


@pytest.fixture
def pair():
    writer, reader = SharedWeightsWriter(), SharedWeightsReader()
    yield writer, reader
    writer.close()
    reader.close()


def test_slots_are_aligned_and_do_not_overlap():
    slots, size = plan_slots(weights())
    ends = [s.offset + int(np.prod(s.shape, dtype=np.int64)) * np.dtype(s.dtype).itemsize for s in slots]
    assert all(s.offset % 64 == 0 for s in slots)
    assert all(end <= nxt.offset for end, nxt in zip(ends, slots[1:]))
    assert ends[-1] <= size


def test_a_snapshot_arrives_as_an_exact_copy(pair):
    writer, reader = pair
    w = weights()
    note = writer.write(w, step=12, epoch=1)
    snap = reader.read(note)
    assert (snap.step, snap.epoch) == (12, 1) and list(snap.state) == list(w)
    for name, value in w.items():
        np.testing.assert_array_equal(snap.state[name], value)
        assert snap.state[name].dtype == value.dtype
    w2 = weights(1)
    snap2 = reader.read(writer.write(w2, step=13, epoch=1))
    np.testing.assert_array_equal(snap2.state["dense.weight"], w2["dense.weight"])
    np.testing.assert_array_equal(snap.state["dense.weight"], w["dense.weight"])  # the old copy is its own


def test_a_note_whose_block_was_rewritten_is_dropped(pair):
    writer, reader = pair
    old = writer.write(weights(0), step=1, epoch=0)
    new = writer.write(weights(1), step=2, epoch=0)
    assert reader.read(old) is None  # the block holds step 2 now: never a mix of the two
    np.testing.assert_array_equal(reader.read(new).state["conv.weight"], weights(1)["conv.weight"])


def test_closing_the_reader_frees_the_block(pair):
    writer, reader = pair
    note = writer.write(weights(), step=1, epoch=0)
    assert reader.read(note) is not None
    reader.close()
    assert SharedWeightsReader().read(note) is None  # unlinked: nothing to attach to


def test_without_shared_memory_the_writer_says_so(monkeypatch, pair):
    writer, _ = pair
    monkeypatch.setattr(shared_weights, "_create_block", lambda size: None)
    assert writer.write(weights(), step=1, epoch=0) is None
    assert writer.failed


def test_the_runner_falls_back_to_pickled_snapshots(monkeypatch):
    from cnnviz.config import DataConfig, Recipe, TrainConfig
    from cnnviz.data.prepare import load_data
    from cnnviz.models import ModelSpec, conv, dense
    from cnnviz.training.messages import WeightsSnapshot
    from cnnviz.training.child import Streamer
    from cnnviz.training.runner import TrainingJob
    from cnnviz.training.trainer import Trainer

    recipe = Recipe(data=DataConfig(validation="none", train_subset=200), train=TrainConfig(epochs=1, batch_size=50))
    trainer = Trainer(ModelSpec((conv(2, 3), dense(10))), recipe, load_data(recipe.data))
    sent = []

    class Conn:
        def send(self, message):
            sent.append(message)

    streamer = Streamer(Conn(), TrainingJob(spec={}, recipe=recipe))
    monkeypatch.setattr(shared_weights, "_create_block", lambda size: None)
    streamer.send_snapshot(trainer)
    assert isinstance(sent[-1], WeightsSnapshot) and sent[-1].state.keys() == trainer.model.state_dict().keys()
