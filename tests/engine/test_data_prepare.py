"""Tensors, splits, subsets, normalization and the one-vs-rest task; load_data's fallback."""
from __future__ import annotations

import dataclasses
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.config import DataConfig
from cnnviz.data.catalog import DATASETS, FASHION_CLASSES
from cnnviz.data.download import DownloadCancelled
from cnnviz.data.prepare import Normalization, load_data, prepare
from cnnviz.data.sources import SAMPLE_NAME, RawDataset, embedded_sample
from cnnviz.errors import ConfigError, DownloadError


@pytest.fixture(scope="module")
def sample() -> RawDataset:
    return embedded_sample()


def _per_class(split, num_classes: int = 10) -> list[int]:
    return np.bincount(split.labels.numpy(), minlength=num_classes).tolist()


def _toy(counts: tuple[int, ...], n_test: int = 20, class_names: tuple[str, ...] | None = None) -> RawDataset:
    """A dataset with ``counts[c]`` training examples of class c, each image filled with its index."""
    labels = np.concatenate([np.full(n, c, dtype=np.uint8) for c, n in enumerate(counts)])
    labels = np.random.default_rng(5).permutation(labels)
    images = (np.arange(len(labels)) % 256).astype(np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    names = class_names or tuple(str(c) for c in range(len(counts)))
    return RawDataset(
        name="toy", train_images=images, train_labels=labels,
        test_images=np.zeros((n_test, 28, 28), np.uint8),
        test_labels=(np.arange(n_test) % len(counts)).astype(np.uint8), class_names=names,
    )


# --- splits --------------------------------------------------------------------------------


def test_default_split_and_tensor_types(sample: RawDataset) -> None:
    data = prepare(sample, DataConfig())
    assert (len(data.train), len(data.val), len(data.test)) == (3600, 400, 1000)
    assert _per_class(data.train) == [360] * 10 and _per_class(data.val) == [40] * 10
    for split in (data.train, data.val, data.test):
        assert split.images.dtype == torch.float32 and split.images.shape[1:] == (1, 28, 28)
        assert split.labels.dtype == torch.int64
        assert split.raw.dtype == np.uint8 and split.raw.shape == (len(split), 28, 28)
        assert len(split.indices) == len(split)
    # val and train partition the source train set; raw and labels come from the source positions.
    assert not set(data.train.indices) & set(data.val.indices)
    assert sorted(np.concatenate([data.train.indices, data.val.indices])) == list(range(4000))
    np.testing.assert_array_equal(data.train.raw, sample.train_images[data.train.indices])
    np.testing.assert_array_equal(data.val.labels.numpy(), sample.train_labels[data.val.indices])
    np.testing.assert_array_equal(data.test.indices, np.arange(1000))
    assert data.name == SAMPLE_NAME and data.num_classes == 10 and data.class_weights is None
    assert data.summary() == f"{SAMPLE_NAME}: 3,600 train / 400 validation / 1,000 test"


def test_validation_from_test_set(sample: RawDataset) -> None:
    data = prepare(sample, DataConfig(validation="test"))
    assert (len(data.train), len(data.val), len(data.test)) == (4000, 200, 800)
    assert _per_class(data.val) == [20] * 10 and _per_class(data.test) == [80] * 10
    assert not set(data.val.indices) & set(data.test.indices)
    np.testing.assert_array_equal(data.val.raw, sample.test_images[data.val.indices])
    np.testing.assert_array_equal(data.val.labels.numpy(), sample.test_labels[data.val.indices])


def test_no_validation(sample: RawDataset) -> None:
    data = prepare(sample, DataConfig(validation="none"))
    assert data.val is None and len(data.train) == 4000 and len(data.test) == 1000
    assert "validation" not in data.summary()


def test_validation_fraction_is_stratified_on_unbalanced_data() -> None:
    raw = _toy((500, 300, 200))
    data = prepare(raw, DataConfig(validation_fraction=0.25))
    assert _per_class(data.val, 3) == [125, 75, 50]
    assert _per_class(data.train, 3) == [375, 225, 150]


def test_train_subset_is_stratified_and_seeded(sample: RawDataset) -> None:
    data = prepare(sample, DataConfig(train_subset=1000, validation="none"))
    assert _per_class(data.train) == [100] * 10
    odd = prepare(sample, DataConfig(train_subset=37, validation="none"))
    counts = _per_class(odd.train)
    assert sum(counts) == 37 and max(counts) - min(counts) <= 1
    again = prepare(sample, DataConfig(train_subset=37, validation="none"))
    np.testing.assert_array_equal(odd.train.indices, again.train.indices)
    other = prepare(sample, DataConfig(train_subset=37, validation="none", seed=1))
    assert not np.array_equal(odd.train.indices, other.train.indices)


def test_subset_proportional_on_unbalanced_data() -> None:
    raw = _toy((600, 300, 100))
    data = prepare(raw, DataConfig(train_subset=101, validation="none"))
    assert _per_class(data.train, 3) == [61, 30, 10]  # 60.6, 30.3, 10.1 -> largest remainder


def test_subset_does_not_move_the_validation_set(sample: RawDataset) -> None:
    full = prepare(sample, DataConfig())
    small = prepare(sample, DataConfig(train_subset=500))
    np.testing.assert_array_equal(full.val.indices, small.val.indices)
    assert len(small.train) == 500 and set(small.train.indices) <= set(full.train.indices)


def test_subset_too_large_uses_everything_and_says_so(sample: RawDataset) -> None:
    data = prepare(sample, DataConfig(train_subset=4000))
    assert len(data.train) == 3600
    assert "train subset of 4,000 examples is larger than the 3,600" in data.notice
    assert "holding out 400 for validation" in data.notice
    data = prepare(sample, DataConfig(train_subset=5000, validation="none"))
    assert len(data.train) == 4000 and "4,000 training examples available" in data.notice
    exact = prepare(sample, DataConfig(train_subset=4000, validation="none"))
    assert len(exact.train) == 4000 and exact.notice == ""


def test_deterministic(sample: RawDataset) -> None:
    cfg = DataConfig(train_subset=700, validation="test", normalization="standardize", seed=3)
    a, b = prepare(sample, cfg), prepare(sample, cfg)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(a, name).images, getattr(b, name).images)
        assert torch.equal(getattr(a, name).labels, getattr(b, name).labels)
    assert a.normalization == b.normalization


def test_bad_config_is_rejected(sample: RawDataset) -> None:
    with pytest.raises(ConfigError, match="validation must be one of"):
        prepare(sample, DataConfig(validation="sometimes"))


# --- normalization -------------------------------------------------------------------------


def test_scale(sample: RawDataset) -> None:
    data = prepare(sample, DataConfig())
    assert data.normalization == Normalization(0.0, 1.0)
    assert data.train.images.min() == 0.0 and data.train.images.max() == 1.0
    torch.testing.assert_close(data.train.images[:, 0], torch.from_numpy(data.train.raw).float() / 255)


def test_standardize(sample: RawDataset) -> None:
    data = prepare(sample, DataConfig(normalization="standardize"))
    train = data.train.images.double()
    assert abs(train.mean().item()) < 1e-5
    assert abs(train.std(unbiased=False).item() - 1.0) < 1e-5
    pixels = data.train.raw / 255.0
    assert data.normalization.mean == pytest.approx(pixels.mean(), abs=1e-12)
    assert data.normalization.std == pytest.approx(pixels.std(), abs=1e-12)
    assert 0.10 < data.normalization.mean < 0.16 and 0.28 < data.normalization.std < 0.34  # MNIST-like
    # Validation and test use the training statistics.
    norm = data.normalization
    expected = (torch.from_numpy(data.test.raw).float() / 255 - norm.mean) / norm.std
    torch.testing.assert_close(data.test.images[:, 0], expected)


def test_standardize_constant_images_does_not_divide_by_zero() -> None:
    raw = _toy((5, 5))
    raw = dataclasses.replace(raw, train_images=np.full_like(raw.train_images, 7))
    norm = prepare(raw, DataConfig(normalization="standardize", validation="none")).normalization
    assert norm.std == 1.0 and norm.mean == pytest.approx(7 / 255)


def test_normalization_apply_shapes_and_values() -> None:
    norm = Normalization(mean=0.5, std=0.25)
    batch = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = norm.apply(batch)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0], torch.tensor([[-2.0, 2.0], [-1.2, -0.4]]))
    single = torch.tensor([[0.5, 1.0]], dtype=torch.float64)
    out = norm.apply(single)
    assert out.shape == (1, 1, 1, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 2.0]]))
    floats = np.full((3, 4, 4), 0.75, dtype=np.float32)
    assert norm.apply(floats).shape == (3, 1, 4, 4)
    assert (floats == 0.75).all()  # the input is not modified
    as_tensor = torch.full((2, 1, 4, 4), 0.75)
    norm.apply(as_tensor)
    assert (as_tensor == 0.75).all()
    with pytest.raises(ValueError):
        norm.apply(np.zeros((2, 2, 4, 4), np.uint8))
    # colour: channels last as RawDataset keeps it, or already (N, 3, H, W)
    hwc = np.zeros((2, 4, 5, 3), np.uint8)
    hwc[..., 1] = 255
    chw = Normalization().apply(hwc)
    assert chw.shape == (2, 3, 4, 5) and chw[:, 1].min() == 1.0 and chw[:, 0].max() == 0.0
    assert norm.apply(np.zeros((2, 3, 4, 4), np.uint8)).shape == (2, 3, 4, 4)


def test_normalization_dict_round_trip() -> None:
    norm = Normalization(mean=0.1307, std=0.3081)
    assert Normalization.from_dict(norm.to_dict()) == norm
    assert Normalization.from_dict({}) == Normalization()
    with pytest.raises(ConfigError):
        Normalization.from_dict({"mean": "a lot", "std": 1})
    with pytest.raises(ConfigError):
        Normalization.from_dict({"mean": 0, "sigma": 1})
    with pytest.raises(ConfigError):
        Normalization(std=0.0)


# --- one vs rest ---------------------------------------------------------------------------


def test_one_vs_rest_labels_and_weights(sample: RawDataset) -> None:
    data = prepare(sample, DataConfig(one_vs_rest=6))
    assert data.class_names == ("not 6", "6") and data.num_classes == 2
    source = sample.train_labels[data.train.indices]
    np.testing.assert_array_equal(data.train.labels.numpy(), (source == 6).astype(np.int64))
    np.testing.assert_array_equal(data.test.labels.numpy(), (sample.test_labels == 6).astype(np.int64))
    counts = np.bincount(data.train.labels.numpy())
    assert counts.tolist() == [3240, 360]
    weights = data.class_weights
    assert weights is not None and weights.dtype == torch.float32
    torch.testing.assert_close(weights, torch.tensor([3600 / (2 * 3240), 3600 / (2 * 360)]))
    # Each class carries half of the total weight.
    assert (weights.numpy() * counts).tolist() == pytest.approx([1800, 1800])


def test_one_vs_rest_without_balancing(sample: RawDataset) -> None:
    data = prepare(sample, DataConfig(one_vs_rest=0, balance_classes=False))
    assert data.class_weights is None and data.class_names == ("not 0", "0")


def test_one_vs_rest_uses_class_names() -> None:
    raw = _toy((20,) * 10, class_names=FASHION_CLASSES)
    data = prepare(raw, DataConfig(one_vs_rest=9))
    assert data.class_names == ("not Ankle boot", "Ankle boot")


def test_one_vs_rest_class_missing() -> None:
    with pytest.raises(ConfigError, match="one-vs-rest class 5 does not exist: toy has 3 classes"):
        prepare(_toy((10, 10, 10)), DataConfig(one_vs_rest=5))
    with pytest.raises(ConfigError, match="hold no example of class '2'"):
        prepare(_toy((10, 10, 0)), DataConfig(one_vs_rest=2, validation="none"))


# --- load_data -----------------------------------------------------------------------------


def _offline_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the MNIST mirrors at a local port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    offline = dataclasses.replace(DATASETS["mnist"], mirrors=(f"http://127.0.0.1:{port}/",))
    monkeypatch.setitem(DATASETS, "mnist", offline)


def test_load_data_sample() -> None:
    data = load_data(DataConfig())
    assert data.name == SAMPLE_NAME and data.notice == "" and len(data.train) == 3600


def test_load_data_falls_back_to_sample(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline_mnist(monkeypatch)
    data = load_data(DataConfig(dataset="mnist", normalization="standardize"), cache_dir=tmp_path)
    assert data.name == SAMPLE_NAME and len(data.train) == 3600
    assert "Could not download MNIST" in data.notice and "offline" in data.notice
    assert "Using the embedded MNIST sample." in data.notice
    assert data.normalization.std != 1.0  # the options still apply


def test_load_data_fallback_drops_a_subset_too_big_for_the_sample(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _offline_mnist(monkeypatch)
    data = load_data(DataConfig(dataset="mnist", train_subset=20000), cache_dir=tmp_path)
    assert len(data.train) == 3600 and "train subset of 20,000" in data.notice
    assert len(load_data(DataConfig(dataset="mnist", train_subset=1000), cache_dir=tmp_path).train) == 1000


def test_load_data_without_fallback_or_when_cancelled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline_mnist(monkeypatch)
    with pytest.raises(DownloadError, match="offline"):
        load_data(DataConfig(dataset="mnist"), cache_dir=tmp_path, fallback=False)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled, match="download cancelled"):
        load_data(DataConfig(dataset="mnist"), cache_dir=tmp_path, cancel=cancel)
