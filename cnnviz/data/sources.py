"""Raw datasets as uint8 arrays: the embedded sample, a folder of IDX files, or a download."""
from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnviz import limits
from cnnviz.config import DataConfig
from cnnviz.data.catalog import DATASETS, MNIST_CLASSES, ROLES, DatasetInfo
from cnnviz.data.download import Progress, fetch_dataset
from cnnviz.data.idx import read_idx
from cnnviz.errors import ConfigError, DataError
from cnnviz.files import read_regular
from cnnviz.resources import resource_path

__all__ = [
    "DATASETS", "DatasetInfo", "RawDataset", "SAMPLE_NAME", "check_arrays", "embedded_sample",
    "find_idx_files", "image_channels", "load_any_folder", "load_folder", "load_raw",
]

SAMPLE_NAME = "MNIST sample (4,000 / 1,000)"

# Accepted spellings, e.g. train-images-idx3-ubyte.gz, t10k-labels.idx1-ubyte, test-images-idx3-ubyte.
_PREFIXES = {
    "train_images": ("train-images",),
    "train_labels": ("train-labels",),
    "test_images": ("t10k-images", "test-images"),
    "test_labels": ("t10k-labels", "test-labels"),
}
_KINDS = {"train_images": "idx3", "train_labels": "idx1", "test_images": "idx3", "test_labels": "idx1"}


@dataclass(frozen=True, eq=False)
class RawDataset:
    """A dataset as loaded: uint8 images (N, H, W), or (N, H, W, 3) in colour, integer labels (N,), and
    class names."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        check_arrays(
            self.train_images, self.train_labels, self.test_images, self.test_labels,
            len(self.class_names), where=self.name,
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int]:
        return (int(self.train_images.shape[1]), int(self.train_images.shape[2]))

    @property
    def channels(self) -> int:
        """1 for grayscale images (N, H, W), 3 for colour ones (N, H, W, 3)."""
        return image_channels(self.train_images)


def image_channels(images: np.ndarray) -> int:
    """1 for grayscale uint8 images (N, H, W), 3 for colour ones (N, H, W, 3) (RGB, channels last)."""
    return 3 if images.ndim == 4 else 1


def check_arrays(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    num_classes: int,
    files: Mapping[str, str | os.PathLike[str]] | None = None,
    where: str = "",
) -> None:
    """Check that the four arrays form a dataset; raise DataError naming the files and numbers.

    Images must be uint8 (N, H, W), or (N, H, W, 3) for RGB, with the same shape in train and test,
    labels integer (N,) with
    as many labels as images and values in ``0 .. num_classes - 1``.
    """
    arrays = {
        "train_images": train_images, "train_labels": train_labels,
        "test_images": test_images, "test_labels": test_labels,
    }

    def label(role: str) -> str:
        if files is not None and role in files:
            return Path(files[role]).name
        return f"{where + ': ' if where else ''}{role.replace('_', ' ')}"

    for role, array in arrays.items():
        if not isinstance(array, np.ndarray) and not getattr(array, "lazy", False):  # or images left in files
            raise DataError(f"{label(role)}: expected a numpy array, got {type(array).__name__}")
        if role.endswith("images"):
            if not (array.ndim == 3 or (array.ndim == 4 and array.shape[3] == 3)):
                raise DataError(
                    f"{label(role)}: expected images of shape N x height x width"
                    f"{' (or N x height x width x 3 in colour)' if array.ndim == 4 else ''}, got {_shape(array.shape)}"
                )
            if array.dtype != np.uint8:
                raise DataError(f"{label(role)}: pixels must be unsigned bytes (0-255), got {array.dtype}")
            if array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
                raise DataError(f"{label(role)}: holds no images (shape {_shape(array.shape)})")
        else:
            if array.ndim != 1:
                raise DataError(
                    f"{label(role)}: expected one label per image, got shape {_shape(array.shape)}"
                )
            if array.dtype.kind not in "iu":
                raise DataError(f"{label(role)}: labels must be integers, got {array.dtype}")
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            if files is not None:
                raise DataError(
                    f"{label(split + '_images')} holds {len(images):,} images but "
                    f"{label(split + '_labels')} holds {len(labels):,} labels"
                )
            raise DataError(
                f"{where or 'dataset'}: {len(images):,} {split} images but {len(labels):,} {split} labels"
            )
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise DataError(
                f"{label(split + '_labels')}: label {bad} is out of range 0-{num_classes - 1} "
                f"for {num_classes} classes"
            )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{label('train_images')} has {_shape(train_images.shape[1:])} images but "
            f"{label('test_images')} has {_shape(test_images.shape[1:])} images"
        )


def embedded_sample() -> RawDataset:
    """The MNIST sample shipped with cnnviz: 4,000 training and 1,000 test digits, balanced."""
    return load_folder(resource_path("mnist-sample"), name=SAMPLE_NAME, class_names=MNIST_CLASSES)


def find_idx_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Find the four IDX files of an MNIST-like dataset in ``folder``.

    Accepts the standard names with or without ``.gz``, ``t10k-`` or ``test-`` for the test files,
    and ``-idx3-ubyte`` or ``.idx3-ubyte``; case does not matter. An uncompressed file is preferred
    over its ``.gz`` when both are present (it loads faster).

    Returns
    -------
    dict
        Keys ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.

    Raises
    ------
    DataError
        The folder does not exist, or some of the four files are missing (all are listed).
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: folder not found")
    if not folder.is_dir():
        kind = "a file" if folder.is_file() else "a device, pipe or socket"
        raise DataError(f"{folder}: is {kind}, not a folder of IDX files")
    try:
        present = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    found: dict[str, Path] = {}
    for role in ROLES:
        for candidate in _candidates(role):
            if candidate in present:
                found[role] = present[candidate]
                break
    missing = [role for role in ROLES if role not in found]
    if missing:
        wanted = ", ".join(f"{role.replace('_', ' ')} ({_candidates(role)[1]})" for role in missing)
        raise DataError(f"{folder}: missing {len(missing)} of the 4 IDX files: {wanted}")
    return found


def load_folder(
    folder: str | os.PathLike[str],
    name: str | None = None,
    class_names: tuple[str, ...] | None = None,
) -> RawDataset:
    """Load the four IDX files in ``folder`` (see :func:`find_idx_files`).

    Parameters
    ----------
    name
        Display name; default: the known dataset these files are (MNIST, Fashion-MNIST, KMNIST),
        else the folder name.
    class_names
        Default: the known dataset's, else "0", "1", ... up to the largest label.
    """
    files = find_idx_files(folder)
    arrays = {role: read_idx(path) for role, path in files.items()}
    known = _identify(files["train_labels"])
    if class_names is None:
        if known is not None:
            class_names = known.class_names
        else:
            top = max(_max_label(arrays["train_labels"]), _max_label(arrays["test_labels"]))
            if top + 1 > limits.MAX_CLASSES:
                where = files["train_labels" if top == _max_label(arrays["train_labels"]) else "test_labels"]
                raise DataError(f"{where.name}: label {top:,} means {top + 1:,} classes; cnnviz handles at "
                                f"most {limits.MAX_CLASSES:,} classes")
            class_names = tuple(str(i) for i in range(max(top + 1, 2)))
    if name is None:
        name = known.title if known is not None else (Path(folder).resolve().name or str(folder))
    check_arrays(
        arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"],
        len(class_names), files=files,
    )
    return RawDataset(name=name, class_names=tuple(class_names), **arrays)


def load_any_folder(
    folder: str | os.PathLike[str],
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RawDataset:
    """The dataset in ``folder``: its four IDX files when it has them, else its images in class
    subfolders (:mod:`cnnviz.data.image_folder`); DataError saying what was expected otherwise."""
    from cnnviz.data.image_folder import is_image_folder, load_image_folder

    try:
        return load_folder(folder)
    except DataError as exc:
        if not str(exc).startswith(f"{Path(folder)}: missing") or not is_image_folder(folder):
            if str(exc).startswith(f"{Path(folder)}: missing"):
                raise DataError(f"{exc}; nor does it hold images in class subfolders (<class>/*.png, or "
                                "train/<class>/ and test/<class>/)") from None
            raise
    folders = Path(cache_dir) / "folders" if cache_dir is not None else None
    return load_image_folder(folder, progress=progress, cancel=cancel, cache_dir=folders)


def load_raw(
    cfg: DataConfig,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RawDataset:
    """The raw dataset that ``cfg`` asks for.

    ``cfg.data_dir`` wins; else ``"sample"`` is the embedded sample; else the dataset is downloaded
    into (or found in) the cache and loaded from there.

    Raises
    ------
    DataError
        Bad files; :class:`~cnnviz.errors.DownloadError` when a download failed or was cancelled.
    """
    if cfg.data_dir:
        return load_any_folder(cfg.data_dir, progress=progress, cancel=cancel, cache_dir=cache_dir)
    if cfg.dataset == "sample":
        return embedded_sample()
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"dataset must be one of sample, {', '.join(DATASETS)}; got {cfg.dataset!r}")
    info = DATASETS[cfg.dataset]
    folder = fetch_dataset(info, cache_dir=cache_dir, progress=progress, cancel=cancel)
    if info.layout == "cifar-binary":
        from cnnviz.data.cifar import read_cifar_binary

        return read_cifar_binary(folder / info.files["archive"], name=info.title, class_names=info.class_names)
    return load_folder(folder, name=info.title, class_names=info.class_names)


def _candidates(role: str) -> list[str]:
    """Accepted lower-case file names for ``role``, most preferred first."""
    kind = _KINDS[role]
    names = []
    for prefix in _PREFIXES[role]:
        for sep in ("-", "."):
            base = f"{prefix}{sep}{kind}-ubyte"
            names += [base, base + ".gz"]
    return names


def _identify(labels_file: Path) -> DatasetInfo | None:
    """The known dataset whose published train-labels file this is (a small file, cheap to hash)."""
    try:
        digest = hashlib.sha256(read_regular(labels_file, 1 << 20, DataError)).hexdigest()
    except DataError:  # too large to be a published labels file, or unreadable: read_idx will say why
        return None
    for info in DATASETS.values():
        if info.layout == "idx" and info.sha256.get(info.files["train_labels"]) == digest:
            return info
    return None


def _max_label(labels: np.ndarray) -> int:
    return int(labels.max()) if labels.ndim == 1 and labels.size and labels.dtype.kind in "iu" else 0


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if shape else "a scalar"
