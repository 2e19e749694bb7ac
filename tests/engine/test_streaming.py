"""A folder of images larger than the memory budget streams from disk: the same batches, losses and run folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz import limits
from cnnviz.config import DataConfig
from cnnviz.data.prepare import load_data
from cnnviz.data.streaming import LazyImages, StreamedImages


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """3 classes x 12 RGB images of 10 x 8 (one tree: 30 train, 6 test), each its own colour."""
    rng = np.random.default_rng(3)
    for c, name in enumerate(("a", "b", "c")):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 60, (10, 8, 3), dtype=np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(tmp_path / "imgs" / name / f"{i:02d}.png")
    return tmp_path / "imgs"


def _load(folder: Path, tmp_path: Path, **options) -> object:
    options.setdefault("validation", "none")
    return load_data(DataConfig(data_dir=str(folder), **options), cache_dir=tmp_path / "cache")


def test_a_tiny_budget_streams_the_training_images_with_the_same_pixels(folder, tmp_path, monkeypatch):
    memory = _load(folder, tmp_path)
    monkeypatch.setattr(limits, "STREAM_ABOVE_BYTES", 1000)  # 30 images x 240 bytes: over the budget
    streamed = _load(folder, tmp_path)
    assert isinstance(streamed.train.images, StreamedImages) and isinstance(streamed.train.raw, LazyImages)
    assert isinstance(streamed.test.raw, np.ndarray)  # the test images are decoded for the views
    assert tuple(streamed.train.images.shape) == tuple(memory.train.images.shape) == (30, 3, 10, 8)
    index = torch.tensor([5, 0, 29])
    assert torch.equal(streamed.train.images[index], memory.train.images[index])
    assert torch.equal(streamed.train.images[2:4], memory.train.images[2:4])
    order = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    batches = streamed.train.images.batches(order, range(0, 30, 8), 8, "cpu")
    for start in range(0, 30, 8):
        assert torch.equal(batches[order[start:start + 8]], memory.train.images[order[start:start + 8]])
    threads = StreamedImages(streamed.train.raw, streamed.normalization, workers=0)  # a daemon process's way
    batches = threads.batches(order, range(0, 30, 8), 8, "cpu")
    for start in range(0, 30, 8):
        assert torch.equal(batches[order[start:start + 8]], memory.train.images[order[start:start + 8]])
    with pytest.raises(RuntimeError, match="planned order"):
        streamed.train.images.batches(order, range(0, 30, 8), 8, "cpu")[order[8:16]]
    # validation held out of the streamed training images is decoded, and the same as in memory
    held = _load(folder, tmp_path, validation="train", validation_fraction=0.2, train_subset=12)
    with monkeypatch.context() as m:
        m.setattr(limits, "STREAM_ABOVE_BYTES", 1 << 40)
        held_in_memory = _load(folder, tmp_path, validation="train", validation_fraction=0.2, train_subset=12)
    assert isinstance(held.val.raw, np.ndarray) and np.array_equal(held.val.raw, held_in_memory.val.raw)
    assert isinstance(held.train.images, StreamedImages) and len(held.train) == 12
    assert np.array_equal(held.train.indices, held_in_memory.train.indices)
    standardized = _load(folder, tmp_path, normalization="standardize")  # statistics from a sample: all 30 here
    assert standardized.normalization == _load_unstreamed(folder, tmp_path, monkeypatch).normalization


def _load_unstreamed(folder, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(limits, "STREAM_ABOVE_BYTES", 1 << 40)
        return _load(folder, tmp_path, normalization="standardize")


def test_a_streamed_run_trains_like_one_in_memory_into_the_same_run_folder(folder, tmp_path, monkeypatch, capsys):
    from cnnviz.cli import main

    options = ["--preset", "cntk-conv", "--epochs", "1", "--batch-size", "8", "--no-timeline", "--json",
               "--data-dir", str(folder)]
    assert main(["train", *options, "--out", str(tmp_path / "memory")]) == 0
    monkeypatch.setattr(limits, "STREAM_ABOVE_BYTES", 1000)
    assert main(["train", *options, "--out", str(tmp_path / "streamed")]) == 0
    capsys.readouterr()
    runs = [json.loads((tmp_path / name / "run.json").read_text()) for name in ("memory", "streamed")]
    assert runs[0]["input_shape"] == runs[1]["input_shape"] == [3, 10, 8]
    steps = [(tmp_path / name / "steps.csv").read_text() for name in ("memory", "streamed")]
    assert steps[0] == steps[1] and len(steps[0].splitlines()) == 1 + 4  # the same losses, step by step
    assert sorted(p.name for p in (tmp_path / "memory").iterdir()) == sorted(p.name for p in (tmp_path / "streamed").iterdir())
    # `cnnviz predict` reads a picture for a colour model as the folder's images were read (colour, fitted)
    from cnnviz.inspect.inference import InferenceModel
    from cnnviz.training.checkpoint import load_checkpoint

    assert main(["predict", str(tmp_path / "memory"), str(folder / "b" / "04.png"), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    data = _load(folder, tmp_path)
    assert data.test.labels[2].item() == 1  # b/04.png: the 5th file of class b is its first test image
    expected = InferenceModel.from_checkpoint(load_checkpoint(tmp_path / "memory")).predict(data.test.raw[2] / 255.0)
    assert answer["probabilities"] == pytest.approx(expected.tolist(), abs=1e-6)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_file_damaged_after_the_check_fails_the_run_in_one_line(folder, tmp_path, monkeypatch, workers):
    from cnnviz.models import spec_for_data
    from cnnviz.presets import get_preset
    from cnnviz.training.trainer import Trainer

    monkeypatch.setattr(limits, "STREAM_ABOVE_BYTES", 1000)
    data = _load(folder, tmp_path)
    images = data.train.images
    object.__setattr__(data.train, "images", StreamedImages(images.images, images.normalization, workers=workers))
    bad = folder / "c" / "07.png"
    bad.write_bytes(bad.read_bytes()[:60])  # the header still reads; the pixels are cut off
    preset = get_preset("cntk-conv")
    recipe = preset.recipe.replace(train__epochs=1, train__batch_size=30, train__evaluate_test=False)
    result = Trainer(spec_for_data(preset.spec, data), recipe, data).fit()
    assert result.status == "failed" and result.error.startswith(f"{bad}: not a readable PNG image (")
    assert "\n" not in result.error
