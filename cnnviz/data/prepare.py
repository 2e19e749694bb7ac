"""Turn a raw dataset into normalized tensors and the splits and options of the tutorials.

Order of work in :func:`prepare`: the validation set is taken first (from train, or 20% of test),
then the training subset is drawn from what is left, so changing the subset size never changes the
validation set and validation curves stay comparable. All draws are stratified by class and seeded
by ``cfg.seed``, each from its own random stream.
"""
from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cnnviz.config import DataConfig
from cnnviz.data.download import DownloadCancelled, Progress
from cnnviz.data.sources import RawDataset, embedded_sample, load_raw
from cnnviz.errors import ConfigError, DownloadError
from cnnviz.validation import check_fields, check_instance, check_ranges, ranged

MIN_STD = 1e-6  # the smallest normalization std (a constant image set gets 1: see _standardization)
TEST_VALIDATION_FRACTION = 0.2  # validation="test": the Keras/PyTorch post's 20% of the test set

# Independent random streams, so that e.g. the subset size does not move the validation split.
_STREAM_VAL_TRAIN, _STREAM_VAL_TEST, _STREAM_SUBSET = 1, 2, 3


@dataclass(frozen=True)
class Normalization:
    """Pixel normalization ``(x / 255 - mean) / std``; mean 0, std 1 is plain scaling to [0, 1].

    Both are statistics of pixels in [0, 1], so the mean lies in [0, 1] and the std in (0, 0.5]; std is
    allowed up to 1 (plain scaling) and down to 1e-6 (below that, dividing by it turns every image into
    huge or infinite values; :func:`prepare` uses 1 for a constant image set).
    """

    mean: float = ranged(0.0, 0.0, 1.0, label="normalization mean")
    std: float = ranged(1.0, MIN_STD, 1.0, label="normalization std")

    def __post_init__(self) -> None:
        for name in ("mean", "std"):  # numpy scalars from the statistics are plain floats here
            value = getattr(self, name)
            if isinstance(value, np.generic):
                object.__setattr__(self, name, value.item())
        check_instance(self, ConfigError, "normalization")
        check_ranges(self, ConfigError)

    def apply(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Normalize images to a float32 tensor of shape (N, C, H, W).

        Parameters
        ----------
        images
            uint8 in 0-255, or float in [0, 1]; shape (N, H, W), (H, W) or already (N, 1, H, W) for
            grayscale; (N, H, W, 3) (channels last, as :class:`RawDataset` keeps colour) or
            (N, 3, H, W) for colour. One mean and std serve every channel.
        """
        x = torch.as_tensor(images)
        if x.dtype == torch.uint8:
            x = x.to(torch.float32).div_(255.0)
        else:
            x = x.to(torch.float32, copy=True)  # a copy: the in-place ops below must not touch the input
        if x.ndim == 2:
            x = x[None, None]
        elif x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] == 3:
            x = x.permute(0, 3, 1, 2)  # colour, channels last -> (N, 3, H, W)
        elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
            raise ValueError(f"expected images (N, H, W), (H, W), (N, H, W, 3) or (N, C, H, W), got {tuple(x.shape)}")
        if self.mean != 0.0 or self.std != 1.0:
            x.sub_(self.mean).div_(self.std)
        return x.contiguous()

    def to_dict(self) -> dict[str, float]:
        return {"mean": float(self.mean), "std": float(self.std)}

    @classmethod
    def from_dict(cls, data: Any) -> "Normalization":
        """Read ``{"mean": m, "std": s}`` (both optional); types and ranges are checked."""
        return cls(**check_fields(cls, data, ConfigError, "normalization"))


@dataclass(frozen=True, eq=False)
class Split:
    """One split: normalized images (N, C, H, W) float32, labels (N,) int64, the raw uint8 images
    ((N, H, W), or (N, H, W, 3) in colour; for galleries) and the positions of the examples in the
    source arrays."""

    images: torch.Tensor
    labels: torch.Tensor
    raw: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True, eq=False)
class PreparedData:
    """Everything a training run needs from the data side."""

    name: str
    train: Split
    val: Split | None
    test: Split
    class_names: tuple[str, ...]
    normalization: Normalization
    class_weights: torch.Tensor | None
    notice: str = ""  # shown to the user, e.g. why the embedded sample replaced a failed download

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> str:
        """One line, e.g. ``MNIST: 54,000 train / 6,000 validation / 10,000 test``."""
        parts = [f"{len(self.train):,} train"]
        if self.val is not None:
            parts.append(f"{len(self.val):,} validation")
        parts.append(f"{len(self.test):,} test")
        return f"{self.name}: {' / '.join(parts)}"


def prepare(raw: RawDataset, cfg: DataConfig) -> PreparedData:
    """Split, subset and normalize ``raw`` as ``cfg`` says; deterministic for a given seed.

    Raises
    ------
    ConfigError
        The subset is larger than the training set, the one-vs-rest class does not exist, or a split
        would be empty.
    """
    cfg.validate()
    train_pool = np.arange(len(raw.train_labels))
    test_idx = np.arange(len(raw.test_labels))
    val_idx: np.ndarray | None = None
    val_from_test = False

    if cfg.validation == "train":
        n_val = int(round(cfg.validation_fraction * len(train_pool)))
        if not 1 <= n_val < len(train_pool):
            raise ConfigError(
                f"cannot hold out {cfg.validation_fraction:.0%} of {len(train_pool):,} training examples "
                "for validation; choose another fraction or no validation"
            )
        val_idx, train_pool = _stratified_split(
            raw.train_labels, train_pool, n_val, cfg.seed, _STREAM_VAL_TRAIN
        )
    elif cfg.validation == "test":
        n_val = int(round(TEST_VALIDATION_FRACTION * len(test_idx)))
        if not 1 <= n_val < len(test_idx):
            raise ConfigError(
                f"the test set of {len(test_idx):,} examples is too small to take 20% for validation"
            )
        val_idx, test_idx = _stratified_split(raw.test_labels, test_idx, n_val, cfg.seed, _STREAM_VAL_TEST)
        val_from_test = True

    train_idx = train_pool
    subset_notice = ""
    if cfg.train_subset is not None and cfg.train_subset > len(train_pool):
        # a subset at least as large as the data is the whole data: say so, don't refuse
        held = ""
        if val_idx is not None and not val_from_test:
            held = f" after holding out {len(val_idx):,} for validation"
        subset_notice = (f"The train subset of {cfg.train_subset:,} examples is larger than the "
                         f"{len(train_pool):,} training examples available{held}; all of them are used.")
    elif cfg.train_subset is not None and cfg.train_subset != len(train_pool):
        train_idx, _ = _stratified_split(
            raw.train_labels, train_pool, cfg.train_subset, cfg.seed, _STREAM_SUBSET
        )

    streamed = getattr(raw.train_images, "lazy", False)  # training images read from disk per batch
    train_pixels = raw.train_images.subset(train_idx) if streamed else raw.train_images[train_idx]
    normalization = Normalization()
    if cfg.normalization == "standardize":  # streamed: measured on a seeded sample of the training images
        normalization = _standardization(raw.train_images.sample(train_idx, cfg.seed) if streamed else train_pixels)

    class_names = raw.class_names
    relabel = None
    if cfg.one_vs_rest is not None:
        digit = cfg.one_vs_rest
        if digit >= raw.num_classes:
            raise ConfigError(
                f"one-vs-rest class {digit} does not exist: {raw.name} has {raw.num_classes} classes"
            )
        name = raw.class_names[digit]
        class_names = (f"not {name}", name)
        relabel = digit

    def split(
        images: np.ndarray, labels: np.ndarray, idx: np.ndarray, pixels: np.ndarray | None = None
    ) -> Split:
        y = labels[idx].astype(np.int64)
        if relabel is not None:
            y = (y == relabel).astype(np.int64)
        if pixels is None:
            pixels = images[idx]  # decoded (validation held out of streamed training images included)
        tensor = pixels.streamed(normalization) if getattr(pixels, "lazy", False) else normalization.apply(pixels)
        return Split(images=tensor, labels=torch.from_numpy(y), raw=pixels, indices=idx)

    train = split(raw.train_images, raw.train_labels, train_idx, train_pixels)
    if val_idx is None:
        val = None
    elif val_from_test:
        val = split(raw.test_images, raw.test_labels, val_idx)
    else:
        val = split(raw.train_images, raw.train_labels, val_idx)
    test = split(raw.test_images, raw.test_labels, test_idx)

    class_weights = None
    if relabel is not None and cfg.balance_classes:
        counts = np.bincount(train.labels.numpy(), minlength=2)
        if counts.min() == 0:
            missing = class_names[int(np.argmin(counts))]
            raise ConfigError(
                f"the {len(train):,} training examples hold no example of class {missing!r}; "
                "use a larger train subset"
            )
        # n / (2 * count_c): each class contributes half of the loss, as in a balanced set.
        class_weights = torch.as_tensor(len(train) / (2.0 * counts), dtype=torch.float32)

    return PreparedData(
        name=raw.name, train=train, val=val, test=test, class_names=tuple(class_names),
        normalization=normalization, class_weights=class_weights, notice=subset_notice,
    )


def load_data(
    cfg: DataConfig,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    fallback: bool = True,
) -> PreparedData:
    """Load (downloading if needed) and prepare the data that ``cfg`` asks for.

    When a download fails (but was not cancelled) and ``fallback`` is true, the embedded MNIST
    sample is prepared instead and ``notice`` says why.

    Raises
    ------
    DataError
        Bad files; a failed download when ``fallback`` is false; ``DownloadError("download
        cancelled")`` when ``cancel`` was set.
    ConfigError
        Bad options (see :func:`prepare`).
    """
    cfg.validate()
    try:
        raw = load_raw(cfg, progress=progress, cancel=cancel, cache_dir=cache_dir)
    except DownloadCancelled:
        raise
    except DownloadError as exc:
        if not fallback:
            raise
        return _prepare_fallback(cfg, str(exc))
    return prepare(raw, cfg)


def _prepare_fallback(cfg: DataConfig, reason: str) -> PreparedData:
    """The embedded sample with ``cfg``'s options (a subset too big for it means all of it)."""
    data = prepare(embedded_sample(), dataclasses.replace(cfg, dataset="sample", data_dir=None))
    notice = f"{reason} Using the embedded MNIST sample."
    return dataclasses.replace(data, notice=f"{notice} {data.notice}" if data.notice else notice)


def _stratified_split(
    labels: np.ndarray, pool: np.ndarray, n_take: int, seed: int, stream: int
) -> tuple[np.ndarray, np.ndarray]:
    """Take ``n_take`` of the positions in ``pool``, proportionally from every class.

    Returns the taken positions and the rest, each sorted. Per class, the share is ``n_take`` times the
    class's share of the pool, rounded by largest remainder so the counts add up exactly; within a
    class the examples are a seeded random choice.
    """
    rng = np.random.default_rng([seed, stream])
    pool_labels = labels[pool]
    classes, counts = np.unique(pool_labels, return_counts=True)
    # Integer arithmetic: counts * n_take / len(pool) = take + remainder / len(pool), exactly.
    take, remainder = np.divmod(counts.astype(np.int64) * n_take, len(pool))
    short = n_take - int(take.sum())
    if short > 0:
        # Largest remainders first; ties go to the larger class, then the lower class index.
        order = np.lexsort((classes, -counts, -remainder))
        take[order[:short]] += 1
    chosen = []
    for cls, k in zip(classes, take):
        members = pool[pool_labels == cls]
        chosen.append(members[rng.permutation(len(members))[:k]])
    taken = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    rest = np.setdiff1d(pool, taken, assume_unique=True)
    return taken, rest


def _standardization(pixels: np.ndarray) -> Normalization:
    """Mean and std of the training pixels in [0, 1] units, exact, from a 256-bin histogram."""
    # torch's bincount takes uint8 as is; numpy's would first widen 47M pixels to int64.
    counts = torch.bincount(torch.from_numpy(pixels).reshape(-1), minlength=256).numpy().astype(np.float64)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum()
    mean = float((counts * values).sum() / total)
    var = float((counts * (values - mean) ** 2).sum() / total)
    std = var**0.5
    # A constant image set has std 0; dividing by it would blow up, so only centre it.
    return Normalization(mean=mean, std=std if std >= MIN_STD else 1.0)
