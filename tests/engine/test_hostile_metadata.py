"""Run-file metadata that is not what cnnviz writes: every value is checked against its schema.

JSON nested 200,000 deep, 1e400, a list where an object belongs, text for numbers, seed -1, class
names that do not fit the model, a normalisation std of 1e-320, damaged history and optimizer state:
each is one CheckpointError line naming the file, never a RecursionError, OverflowError, TypeError...
"""
from __future__ import annotations

import json

import pytest
import torch

from cnnviz.config import DataConfig, OptimizerConfig, Recipe, TrainConfig
from cnnviz.data.prepare import Normalization
from cnnviz.errors import CheckpointError, ConfigError, SpecError
from cnnviz.models import ModelSpec, build_model, conv, dense, maxpool
from cnnviz.training.checkpoint import Checkpoint, load_checkpoint, resume_trainer, save_checkpoint
from cnnviz.training.history import History
from cnnviz.training.messages import EpochMetrics
from cnnviz.validation import Range, check_fields, parse_json

SPEC = ModelSpec((conv(2, 5, 2, "same"), maxpool(2), dense(10))).named()
RECIPE = Recipe(data=DataConfig(validation="none", train_subset=200),
                optimizer=OptimizerConfig(name="adam", lr=0.01),
                train=TrainConfig(epochs=1, batch_size=50, evaluate_test=False))
EPOCH = EpochMetrics(1, 0.5, 0.8, None, None, 0.01, 1.0, 100.0, step=2)


def _checkpoint(**changes) -> Checkpoint:
    torch.manual_seed(0)
    model = build_model(SPEC)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.zeros(2, 1, 28, 28)).sum().backward()
    optimizer.step()  # so the optimizer has per-parameter state
    fields = dict(spec=SPEC, recipe=RECIPE, normalization=Normalization(0.13, 0.31),
                  class_names=tuple(str(i) for i in range(10)), dataset="MNIST sample",
                  model_state=model.state_dict(), optimizer_state=optimizer.state_dict(), epoch=1, step=4,
                  history=History(step_loss=[1.0, 0.5], step_accuracy=[0.1, 0.2], step_lr=[0.01, 0.01],
                                  epochs=[EPOCH], test_accuracy=[0.5]),
                  rng={"torch": torch.get_rng_state()})
    fields.update(changes)
    return Checkpoint(**fields)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "run.safetensors"
    save_checkpoint(path, _checkpoint())
    return path


def _with_meta(good, tmp_path, **entries) -> "Path":  # noqa: F821
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    for key, value in entries.items():
        if value is None:
            del header["__metadata__"][key]
        else:
            header["__metadata__"][key] = value if isinstance(value, str) else json.dumps(value)
    blob = json.dumps(header).encode()
    blob += b" " * ((8 - len(blob) % 8) % 8)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + raw[8 + n:])
    return path


def _recipe(**section_changes) -> dict:
    d = RECIPE.to_dict()
    for key, value in section_changes.items():
        section, name = key.split("__")
        d[section][name] = value
    return d


PROGRESS = {"epoch": 1, "step": 4, "batch_in_epoch": 0}
DEEP = "[" * 200_000 + "]" * 200_000

CASES = {
    # JSON itself
    "spec nested 200,000 deep": ({"spec": DEEP}, "its 'spec' entry is nested more than 32 levels deep"),
    "progress nested 40 deep": ({"progress": "[" * 40 + "]" * 40}, "nested more than 32 levels deep"),
    "recipe not JSON": ({"recipe": "{not json"}, "its 'recipe' entry is not valid JSON"),
    "an integer of 5,000 digits": ({"progress": '{"epoch": ' + "9" * 5000 + "}"}, "is not valid JSON"),
    "spec missing": ({"spec": None}, "damaged header: it has no 'spec' entry"),
    # progress
    "epoch 1e400": ({"progress": '{"epoch": 1e400, "step": 4, "batch_in_epoch": 0}'},
                    "progress: epoch must be an integer, got inf"),
    "progress a list": ({"progress": [1, 4, 0]}, "progress must be a JSON object, got [1, 4, 0]"),
    "epoch as text": ({"progress": {**PROGRESS, "epoch": "1"}}, "progress: epoch must be an integer, got '1'"),
    "epoch true": ({"progress": {**PROGRESS, "epoch": True}}, "progress: epoch must be an integer, got True"),
    "step -1": ({"progress": {**PROGRESS, "step": -1}}, "progress step must be at least 0, got -1"),
    "progress extra key": ({"progress": {**PROGRESS, "x": 1}}, "progress: unknown setting(s): x"),
    # recipe: types, then ranges
    "seed -1": ({"recipe": _recipe(train__seed=-1)}, "seed must be at least 0, got -1"),
    "lr 1e400": ({"recipe": '{"optimizer": {"lr": 1e400}}'}, "optimizer: lr must be a finite number, got inf"),
    "lr NaN": ({"recipe": '{"optimizer": {"lr": NaN}}'}, "optimizer: lr must be a finite number, got nan"),
    "epochs as text": ({"recipe": _recipe(train__epochs="5")}, "train: epochs must be an integer, got '5'"),
    "batch size 2.5": ({"recipe": _recipe(train__batch_size=2.5)}, "train: batch_size must be an integer, got 2.5"),
    "recipe a list": ({"recipe": []}, "recipe must be a JSON object"),
    "train a list": ({"recipe": {"train": [1]}}, "train must be a JSON object, got [1]"),
    "data_dir a dict": ({"recipe": _recipe(data__data_dir={"a": 1})},
                        "data: data_dir must be text or null, got {'a': 1}"),
    "dataset None": ({"recipe": _recipe(data__dataset=None)}, "data: dataset must be text, got None"),
    "unknown section": ({"recipe": {"model": {}}}, "recipe: unknown section(s): model"),
    "batch size 2**40": ({"recipe": _recipe(train__batch_size=2**40)},
                         "batch size must be at most 65,536, got 1,099,511,627,776"),
    # class names
    "3 class names for 10 classes": ({"class_names": ["a", "b", "c"]},
                                     "class names: 3 given, but the model has 10 classes"),
    "no class names": ({"class_names": []}, "class names: 0 given, but the model has 10 classes"),
    "class names numbers": ({"class_names": list(range(10))}, "class names must be a list of text"),
    "class names an object": ({"class_names": {"0": "zero"}}, "class names must be a list of text"),
    "a class name of 10,000 characters": ({"class_names": ["x" * 10_000] + [str(i) for i in range(9)]},
                                          "is longer than 100 characters"),
    # normalisation
    "std 1e-320": ({"normalization": '{"mean": 0.1, "std": 1e-320}'},
                   "normalization std must be at least 1e-06, got 1e-320"),
    "std 0": ({"normalization": {"mean": 0.1, "std": 0}}, "normalization std must be at least 1e-06, got 0"),
    "mean 1e30": ({"normalization": {"mean": 1e30, "std": 0.3}}, "normalization mean must be at most 1, got 1e+30"),
    "std as text": ({"normalization": {"mean": 0.1, "std": "0.3"}}, "normalization: std must be a finite number"),
    "normalization a list": ({"normalization": [0.1, 0.3]}, "normalization must be a JSON object"),
    # model spec
    "2**31 classes": ({"spec": {**SPEC.to_dict(), "num_classes": 2**31}},
                      "num_classes must be at most 1,000, got 2,147,483,648"),
    "input shape of text": ({"spec": {**SPEC.to_dict(), "input_shape": "1x28x28"}}, "input_shape must be a list"),
    "layers an object": ({"spec": {**SPEC.to_dict(), "layers": {"conv": 1}}}, "a model spec needs a 'layers' list"),
    "10,000 layers": ({"spec": {**SPEC.to_dict(), "layers": [{"kind": "flatten"}] * 10_000}},
                      "the model has 10,000 layers; at most 1,000 are allowed"),
    "a spec far larger than its weights": (
        {"spec": ModelSpec((conv(2, 5, 2, "same"), dense(4000), dense(10))).to_dict()},
        "the weights do not match the model: the model has"),
    # history
    "history epoch with text": ({"history_epochs": [{**EPOCH.__dict__, "epoch": "1"}]},
                                "history epoch 1: epoch must be an integer, got '1'"),
    "history epoch missing a field": ({"history_epochs": [{"epoch": 1}]}, "history epoch 1: missing train_loss"),
    "history epochs an object": ({"history_epochs": {"1": {}}}, "history: epochs must be a list"),
    "test accuracy of text": ({"test_accuracy": ["high"]}, "history: test accuracy 1 must be a number, got 'high'"),
    # optimizer
    "optimizer groups of text": ({"optimizer": {"param_groups": "x", "state": {}}},
                                 "optimizer: param_groups must be a list of objects"),
    "optimizer state index of text": ({"optimizer": {"param_groups": [], "state": {"first": {}}}},
                                      "optimizer: damaged state entry 'first'"),
    "optimizer nested value": ({"optimizer": {"param_groups": [{"lr": {"a": [1]}}], "state": {}}},
                               "optimizer group 1: lr must be a number, text or a short list of numbers"),
    "optimizer a list": ({"optimizer": [1]}, "optimizer: must be an object with param_groups and state"),
    # format
    "version 1e9": ({"version": "1e9"}, "unreadable format version '1e9'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_metadata_is_one_clear_checkpoint_error(good, tmp_path, case):
    entries, needle = CASES[case]
    path = _with_meta(good, tmp_path, **entries)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith("bad.safetensors: ") and needle in message, message
    assert "\n" not in message and len(message) < 400


def test_the_good_file_loads(good):
    ckpt = load_checkpoint(good)
    assert ckpt.class_names == tuple(str(i) for i in range(10)) and ckpt.history.epochs == [EPOCH]
    assert ckpt.normalization == Normalization(0.13, 0.31) and ckpt.step == 4


def test_a_header_nested_200000_deep_outside_the_metadata(good, tmp_path):
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    blob = raw[8:8 + n].rstrip()[:-1] + b', "x": ' + DEEP.encode() + b"}"
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + raw[8 + n:])
    with pytest.raises(CheckpointError, match=r"^deep.safetensors: not a readable cnnviz run file \(its header is "
                                              r"nested more than 32 levels deep\)$"):
        load_checkpoint(path)


def test_a_header_length_beyond_the_file_or_the_cap(tmp_path):
    path = tmp_path / "long.safetensors"
    path.write_bytes((2**63).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="its header claims 9,223,372,036,854,775,808 bytes"):
        load_checkpoint(path)


@pytest.mark.parametrize("history, needle", [
    (History(step_loss=[1.0, 0.5], step_accuracy=[0.1], step_lr=[0.01, 0.01]), "have different lengths (2, 1, 2)"),
])
def test_damaged_history_arrays(tmp_path, history, needle):
    path = save_checkpoint(tmp_path / "h.safetensors", _checkpoint(history=history))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert needle in str(info.value)


def test_damaged_random_generator_state(tmp_path):
    path = save_checkpoint(tmp_path / "r.safetensors", _checkpoint(rng={"torch": torch.zeros(3, dtype=torch.uint8)}))
    with pytest.raises(CheckpointError, match="the random-generator state 'torch' is damaged"):
        load_checkpoint(path)


def test_non_finite_metrics_in_the_history_are_kept(tmp_path):
    # A diverging run measures NaN and infinite losses; they are data, not damage.
    epoch = EpochMetrics(1, float("nan"), 0.1, float("inf"), 0.1, 0.01, 1.0, 10.0)
    path = save_checkpoint(tmp_path / "n.safetensors", _checkpoint(history=History(epochs=[epoch])))
    restored = load_checkpoint(path).history.epochs[0]
    assert restored.train_loss != restored.train_loss and restored.val_loss == float("inf")


def test_an_optimizer_setting_of_the_wrong_kind_is_refused_when_continuing(good, tmp_path):
    from cnnviz.data.prepare import load_data

    ckpt = load_checkpoint(good)
    state = ckpt.optimizer_state
    state["param_groups"][0]["betas"] = "fast"
    data = load_data(RECIPE.data)
    with pytest.raises(CheckpointError, match=r"group 1: betas is 'fast', expected a value like \(0\.9, 0\.999\)"):
        resume_trainer(ckpt, data)
    ckpt = load_checkpoint(good)
    first = next(iter(ckpt.optimizer_state["state"].values()))
    first["exp_avg"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"exp_avg of parameter 0 has shape \(3,\)"):
        resume_trainer(ckpt, data)
    assert resume_trainer(load_checkpoint(good), data).step_count == 4  # the good file continues


# -- the schema layer itself --------------------------------------------------------------------------------
def test_parse_json_guards():
    assert parse_json('{"a": [1, 2]}', "x", ConfigError) == {"a": [1, 2]}
    with pytest.raises(ConfigError, match="x is nested more than 32 levels deep"):
        parse_json("[" * 33 + "]" * 33, "x", ConfigError)
    assert parse_json("[" * 32 + "]" * 32, "x", ConfigError)  # 32 is fine
    with pytest.raises(ConfigError, match="x is 12 characters long; at most 10 are read"):
        parse_json('"0123456789"', "x", ConfigError, max_bytes=10)
    with pytest.raises(ConfigError, match="x must be JSON text, got 5"):
        parse_json(5, "x", ConfigError)


def test_check_fields_follows_the_annotations():
    kw = check_fields(EpochMetrics, {**EPOCH.__dict__, "train_loss": 1}, ConfigError, "e")
    assert kw["train_loss"] == 1.0 and isinstance(kw["train_loss"], float)  # an integer for a float
    for value, needle in [(True, "must be a finite number, got True"), ("1", "got '1'"),
                          (float("inf"), "got inf"), (10**400, "got an integer of about 401 digits")]:
        with pytest.raises(ConfigError, match=needle):
            check_fields(EpochMetrics, {**EPOCH.__dict__, "lr": value}, ConfigError, "e")
    with pytest.raises(ConfigError, match="e: val_loss must be a finite number or null, got 'x'"):
        check_fields(EpochMetrics, {**EPOCH.__dict__, "val_loss": "x"}, ConfigError, "e")


def test_range_messages():
    r = Range(0, 1, high_open=True)
    assert r.problem("m", 0) is None and r.problem("m", 0.5) is None
    assert r.problem("m", 1) == "m must be less than 1, got 1"
    assert r.problem("m", -0.5) == "m must be at least 0, got -0.5"
    assert r.problem("m", float("nan")) == "m must be a number in [0, 1), got nan"
    assert Range(0, 100, low_open=True).problem("lr", 0) == "lr must be positive, got 0"

