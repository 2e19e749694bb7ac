"""Filter surgery: zeroing changes exactly its output channel, a frozen filter holds, a re-initialisation is
reproducible, and the operations are recorded so that any step is still recomputed exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.data.prepare import load_data
from cnnviz.errors import CheckpointError, ConfigError
from cnnviz.presets import get_preset
from cnnviz.timeline.reader import RunTimeline
from cnnviz.timeline.recorder import RunRecorder
from cnnviz.timeline.replay import exact_weights
from cnnviz.training.checkpoint import from_trainer, load_checkpoint, save_checkpoint
from cnnviz.training.surgery import FilterOperation, SurgeryLog
from cnnviz.training.trainer import Trainer


def _trainer(steps: int = 10, callbacks=(), optimizer: str | None = None) -> Trainer:
    preset = get_preset("cntk-conv")
    recipe = preset.recipe.replace(data__train_subset=300, train__epochs=3, train__max_steps=steps,
                                   train__evaluate_test=False)
    if optimizer:
        recipe = recipe.replace(optimizer__name=optimizer)
    return Trainer(preset.spec, recipe, load_data(recipe.data, fallback=False), callbacks)


def _conv(trainer, name="conv1"):
    return dict(trainer.model.layers.named_children())[name]


def test_zeroing_a_filter_changes_exactly_its_output_channel():
    trainer = _trainer()
    trainer.fit()
    conv, x = _conv(trainer), torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        before = conv(x)
    trainer.apply_operation(FilterOperation("conv1", 3, "zero"))
    with torch.no_grad():
        after = conv(x)
    changed = [c for c in range(after.shape[1]) if not torch.equal(before[:, c], after[:, c])]
    assert changed == [3] and torch.count_nonzero(after[:, 3]) == 0


def test_a_frozen_filter_holds_through_momentum_and_unfreezing_lets_it_learn_again():
    trainer = _trainer(steps=5, optimizer="adam")
    trainer.fit()  # Adam has state: its momentum alone would keep moving the filter
    trainer.apply_operation(FilterOperation("conv1", 2, "freeze"))
    conv = _conv(trainer)
    held, other = conv.weight[2].detach().clone(), conv.weight[5].detach().clone()
    trainer.recipe = trainer.recipe.replace(train__max_steps=12)
    trainer.fit()
    assert torch.equal(conv.weight[2], held) and not torch.equal(conv.weight[5], other)
    assert trainer.surgery.frozen == (("conv1", 2),)
    trainer.apply_operation(FilterOperation("conv1", 2, "unfreeze"))
    trainer.recipe = trainer.recipe.replace(train__max_steps=15)
    trainer.fit()
    assert not torch.equal(conv.weight[2], held) and trainer.surgery.frozen == ()


def test_a_reinitialisation_is_reproducible_and_within_torchs_bound():
    a, b = _trainer(), _trainer()
    for t in (a, b):
        t.fit()
        t.apply_operation(FilterOperation("conv1", 1, "reinit"))
    wa = _conv(a).weight[1]
    assert torch.equal(wa, _conv(b).weight[1])
    assert wa.abs().max() <= 1 / np.sqrt(wa.numel()) and wa.abs().max() > 0


def test_a_wrong_layer_filter_or_action_is_one_clear_error():
    trainer = _trainer()
    with pytest.raises(ConfigError, match="no conv layer named 'dense1'.*conv1"):
        trainer.operate("dense1", 0, "zero")
    with pytest.raises(ConfigError, match="no filter 99"):
        trainer.operate("conv1", 99, "zero")
    with pytest.raises(ConfigError, match="unknown filter operation"):
        trainer.operate("conv1", 0, "explode")
    with pytest.raises(ConfigError):
        FilterOperation.from_dict({"layer": "conv1", "index": -1, "action": "zero"})


def test_the_checkpoint_carries_the_operations_and_a_damaged_list_is_refused(tmp_path):
    trainer = _trainer()
    trainer.fit()
    trainer.apply_operation(FilterOperation("conv1", 0, "freeze"))
    path = save_checkpoint(tmp_path / "run.safetensors", from_trainer(trainer))
    loaded = load_checkpoint(path)
    assert loaded.surgery == (FilterOperation("conv1", 0, "freeze", 10),)
    from safetensors.torch import load as st_load, save as st_save
    from safetensors import safe_open
    with safe_open(str(path), "pt") as fh:
        meta = dict(fh.metadata())
    meta["surgery"] = '[{"layer": "conv1", "index": "x", "action": "zero"}]'
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(st_save(st_load(path.read_bytes()), metadata=meta))
    with pytest.raises(CheckpointError, match="damaged header"):
        load_checkpoint(bad)


def test_operations_are_recorded_and_every_step_after_them_is_recomputed_exactly(tmp_path):
    recorder = RunRecorder(tmp_path / "run")
    trainer = _trainer(steps=14, callbacks=[recorder])
    trainer.call_at_step(3, lambda: trainer.apply_operation(FilterOperation("conv1", 4, "reinit")))
    trainer.call_at_step(6, lambda: trainer.apply_operation(FilterOperation("conv1", 1, "freeze")))
    trainer.call_at_step(7, lambda: trainer.apply_operation(FilterOperation("conv1", 2, "zero")))
    trainer.fit()
    final = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    timeline = RunTimeline.open(tmp_path / "run")
    assert [op.describe() for op in timeline.surgeries] == [
        "re-initialised conv1 #4 at step 3", "froze conv1 #1 at step 6", "zeroed conv1 #2 at step 7"]
    assert 5 in timeline.anchors and 14 in timeline.anchors  # epoch ends (5 batches an epoch) and the end
    assert timeline.info()["filter_operations"][1] == {"layer": "conv1", "index": 1, "action": "freeze", "step": 6}
    # 13: from the anchor at step 10, whose state holds the freeze; 9: from the anchor at step 5, with the three
    # operations replayed at their steps; 3: before any of them took effect
    for step in (13, 9, 3):
        weights = exact_weights(timeline, step)
        again = _trainer(steps=step)  # the same run, straight (an operation after step N is not in step N)
        for op in timeline.surgeries:
            if op.step < step:
                again.call_at_step(op.step, lambda op=op: again.apply_operation(op))
        again.fit()
        for name, value in again.model.state_dict().items():
            assert torch.equal(torch.from_numpy(weights[name]), value), (step, name)
        frozen = np.array_equal(weights["layers.conv1.weight"][1], final["layers.conv1.weight"][1].numpy())
        assert frozen == (step > 6)
        zeroed = not weights["layers.conv1.weight"][2].any()  # zeroed under ReLU: no gradient brings it back
        assert zeroed == (step > 7)


def test_a_surgery_log_from_json_round_trips():
    log = SurgeryLog([FilterOperation("conv1", 1, "freeze", 4), FilterOperation("conv2", 0, "zero", 9)])
    assert SurgeryLog.from_json(log.to_json()).operations == log.operations
    assert SurgeryLog.from_json(log.to_json()).frozen == (("conv1", 1),)


def test_a_follower_hears_of_the_operations_and_of_a_rewind_that_drops_them(tmp_path):
    from cnnviz.timeline.follow import RunFollower
    from cnnviz.training.messages import Surgery

    recorder = RunRecorder(tmp_path / "run")
    trainer = _trainer(steps=4, callbacks=[recorder])
    trainer.call_at_step(2, lambda: trainer.apply_operation(FilterOperation("conv1", 0, "freeze")))
    trainer.fit()
    caught_up = [m for m in RunFollower(tmp_path / "run").poll() if isinstance(m, Surgery)]
    assert [op.describe() for op in caught_up[-1].operations] == ["froze conv1 #0 at step 2"]
    follower = RunFollower(tmp_path / "run", from_start=False)
    from cnnviz.timeline.store import EventWriter
    writer = EventWriter(tmp_path / "run")  # as a failed continuation does: back to step 1, before the operation
    writer.write({"t": "rewind", "step": 1, "surgeries": 0})
    writer.close()
    follower._last_read = 0.0
    heard = [m for m in follower.poll() if isinstance(m, Surgery)]
    assert heard and heard[-1].operations == () and RunTimeline.open(tmp_path / "run").surgeries == []
