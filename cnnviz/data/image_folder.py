"""Datasets from a folder of images sorted into one subfolder per class (grayscale or colour, any size).

Two layouts are read (class names are the subfolder names, in sorted order):

- ``DIR/train/<class>/*.png`` and ``DIR/test/<class>/*.png``: the split as given;
- ``DIR/<class>/*.png``: one tree, split by a fixed rule: of each class's files in name order, every
  :data:`TEST_EVERY`-th (the 5th, 10th, ...) is a test image, the rest train (20% test, the same split on
  every machine).

Files are PNG, JPEG, BMP or GIF (first frame) by their first bytes; other files (``.txt``, ``Thumbs.db``)
are skipped by their name, and an image file that cannot be read is an error naming it. The set is in
colour (3 channels) when any of its images is stored in colour, else grayscale.

The size rule (:func:`choose_size`): every image becomes the most common size among the training images,
shrunk (aspect kept) so that no side exceeds ``max_side`` (64 by default). An image of another size is
scaled to fit inside that size with its aspect ratio kept, and centred on black padding.

Decoded sets are cached (:mod:`cnnviz.data.tensor_cache`) under a key made of every file's path, size and
modification time, so loading the same folder again skips the decoding (and a new entry replaces the
folder's older ones). Training images that would take
more than :data:`cnnviz.limits.STREAM_ABOVE_BYTES` decoded are not decoded here: they are read from disk
batch by batch while training (:mod:`cnnviz.data.streaming`).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnviz import limits
from cnnviz.data.download import DownloadCancelled, Progress
from cnnviz.data.sources import RawDataset
from cnnviz.data.tensor_cache import cache_path, cached_shapes, prune, read_cache, write_cache
from cnnviz.errors import DataError
from cnnviz.files import open_regular, read_regular
from cnnviz.imagefile import FORMATS, image_format

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DEFAULT_MAX_SIDE = 64  # the size rule's cap on a side, in pixels
TEST_EVERY = 5  # one-tree layout: every 5th file of a class (in name order) is a test image
_HEADER_BYTES = 64 * 1024  # enough for the header of nearly every image; else the whole file is read
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_PIL_FORMATS = {b"png": "PNG", b"jpeg": "JPEG", b"gif": "GIF", b"bmp": "BMP"}


@dataclass(frozen=True)
class ImageFiles:
    """The image files of a folder: ``(path, label)`` pairs per split and the class names."""

    root: Path
    layout: str  # "train/test" or "one tree"
    class_names: tuple[str, ...]
    train: tuple[tuple[Path, int], ...]
    test: tuple[tuple[Path, int], ...]


def is_image_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` looks like images in class subfolders (either layout); no file is opened."""
    folder = Path(folder)
    try:
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            folder = folder / "train"
        return any(_images_in(sub) for sub in _subfolders(folder))
    except (OSError, DataError):
        return False


def find_image_files(folder: str | os.PathLike[str]) -> ImageFiles:
    """List the images of ``folder`` in either layout (see the module's docstring).

    Raises
    ------
    DataError
        The folder is missing, holds no class subfolders with images, has a test class that train lacks,
        too many classes, or a class with no training image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found" if not root.exists() else f"{root}: is not a folder")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_classes = _class_folders(root / "train")
        test_classes = _class_folders(root / "test")
        names = tuple(train_classes)
        extra = [name for name in test_classes if name not in train_classes]
        if extra:
            raise DataError(f"{root / 'test' / extra[0]}: class {extra[0]!r} has no folder in {root / 'train'}")
        train = tuple((p, i) for i, name in enumerate(names) for p in _images_in(train_classes[name]))
        test = tuple((p, names.index(name)) for name, sub in test_classes.items() for p in _images_in(sub))
        layout = "train/test"
    else:
        classes = _class_folders(root)
        names = tuple(classes)
        train_list, test_list = [], []
        for i, name in enumerate(names):
            for k, path in enumerate(_images_in(classes[name])):
                (test_list if k % TEST_EVERY == TEST_EVERY - 1 else train_list).append((path, i))
        train, test, layout = tuple(train_list), tuple(test_list), "one tree"
    counts = Counter(label for _, label in train)
    empty = [names[i] for i in range(len(names)) if counts[i] == 0]
    if empty:
        raise DataError(f"{root}: class {empty[0]!r} has no training image"
                        + (f" (one tree: a class needs at least 1 image besides every {TEST_EVERY}th)"
                           if layout == "one tree" else ""))
    if not test:
        raise DataError(f"{root}: no test image (one tree: a class needs {TEST_EVERY} images to give one "
                        "to the test set)" if layout == "one tree" else f"{root / 'test'}: holds no image")
    return ImageFiles(root, layout, names, train, test)


def choose_size(sizes: list[tuple[int, int]], max_side: int = DEFAULT_MAX_SIDE) -> tuple[int, int]:
    """The ``(height, width)`` every image is brought to: the most common of ``sizes`` (ties: the larger,
    then the first in order), shrunk with its aspect ratio kept so that no side exceeds ``max_side``."""
    if not sizes:
        raise ValueError("no image sizes")
    counts = Counter(sizes)
    height, width = max(counts, key=lambda s: (counts[s], s[0] * s[1], -sizes.index(s)))
    if max(height, width) > max_side:
        scale = max_side / max(height, width)
        height, width = max(1, round(height * scale)), max(1, round(width * scale))
    return height, width


def load_image_folder(
    folder: str | os.PathLike[str],
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
    name: str | None = None,
) -> RawDataset:
    """Decode the images of ``folder`` into a :class:`RawDataset` (from the cache when it is there).

    Parameters
    ----------
    progress
        Called as ``progress(bytes_decoded, bytes_in_all, message)``; the message counts files.
    cancel
        When set, reading stops at the next file with :class:`LoadCancelled` (a
        :class:`~cnnviz.data.download.DownloadCancelled`).
    cache_dir
        The folder of decoded sets; default ``folders`` beside the downloaded datasets.

    Raises
    ------
    DataError
        A layout problem (:func:`find_image_files`), or an image file that is not a regular file, too
        large, not PNG/JPEG/BMP/GIF, or damaged: the message names the file.
    """
    files = find_image_files(folder)
    everything = files.train + files.test
    key = _cache_key(files, max_side)
    where = cache_path(Path(cache_dir) if cache_dir is not None else default_folder_cache(), key)
    shapes = cached_shapes(where)  # a cached set is used only while its training images fit the budget
    fits = shapes is not None and int(np.prod(shapes.get("train_images", (0,)))) <= limits.STREAM_ABOVE_BYTES
    cached = read_cache(where) if fits else None
    title = name or (files.root.resolve().name or str(files.root))
    if cached is not None:
        try:
            return RawDataset(name=title, class_names=files.class_names, **cached)
        except (DataError, TypeError):
            pass  # a foreign or damaged entry: decode again
    total = len(everything)
    sizes = [_file_size(path) for path, _ in everything]
    total_bytes = sum(sizes)
    headers = []
    for i, (path, _) in enumerate(everything):
        _check_cancel(cancel)
        headers.append(read_header(path))
        if progress is not None and (i % 64 == 0 or i == total - 1):
            progress(0, total_bytes, f"Checking images: {i + 1:,} of {total:,}")
    colour = any(c for _, _, c in headers)
    size = choose_size([(h, w) for h, w, _ in headers[:len(files.train)]], max_side)
    channels = 3 if colour else 1
    shape = size + ((3,) if colour else ())
    pixels = size[0] * size[1] * channels
    stream = len(files.train) * pixels > limits.STREAM_ABOVE_BYTES
    decoded = len(files.test) * pixels + (0 if stream else len(files.train) * pixels)
    if decoded > limits.MAX_DECODED_BYTES:
        raise DataError(f"{files.root}: {len(files.test) if stream else total:,} {'test ' if stream else ''}images "
                        f"of {size[1]}x{size[0]} pixels would take {decoded / limits.GiB:,.1f} GiB decoded, more "
                        f"than cnnviz holds in memory ({limits.MAX_DECODED_BYTES / limits.GiB:,.1f} GiB)")
    if stream:  # the training images stay in their files (cnnviz.data.streaming); the test images are decoded
        from cnnviz.data.streaming import LazyImages

        everything = files.test
        out = {"train": LazyImages([p for p, _ in files.train], size, colour),
               "test": np.zeros((len(files.test), *shape), np.uint8)}
        sizes = sizes[len(files.train):]
        total_bytes, total = sum(sizes), len(files.test)
    else:
        out = {split: np.zeros((len(items), *shape), np.uint8) for split, items in
               (("train", files.train), ("test", files.test))}
    done = 0
    for i, (path, _) in enumerate(everything):
        _check_cancel(cancel)
        first_test = 0 if stream else len(files.train)  # where the test images start in `everything`
        split, j = ("train", i) if i < first_test else ("test", i - first_test)
        out[split][j] = decode_image(path, size, colour)
        done += sizes[i]
        if progress is not None and (i % 64 == 0 or i == total - 1):
            progress(done, total_bytes, f"Reading images: {i + 1:,} of {total:,}")
    arrays = {
        "train_images": out["train"], "train_labels": np.array([y for _, y in files.train], np.int64),
        "test_images": out["test"], "test_labels": np.array([y for _, y in files.test], np.int64),
    }
    if not stream:
        source = str(files.root.resolve())
        if write_cache(where, arrays, {"folder": source, "classes": json.dumps(files.class_names)}):
            prune(where, "folder", source)  # this folder's entries for files that have changed since
    return RawDataset(name=title, class_names=files.class_names, **arrays)


def default_folder_cache() -> Path:
    """The folder of decoded image folders: ``folders`` in the user cache dir of "cnnviz"."""
    from cnnviz.data.download import default_cache_dir

    return default_cache_dir().parent / "folders"


def read_header(path: Path) -> tuple[int, int, bool]:
    """``(height, width, colour)`` of the image at ``path``, from its header; DataError naming the file."""
    f, _ = open_regular(path, limits.MAX_IMAGE_BYTES, DataError, "image file")
    with f:
        try:
            head = f.read(_HEADER_BYTES)
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        image = _open(path, head)
    except DataError:
        if len(head) < _HEADER_BYTES:
            raise
        image = _open(path, read_regular(path, limits.MAX_IMAGE_BYTES, DataError, "image file"))
    width, height = image.size
    return height, width, _is_colour(image)


def decode_image(path: Path, size: tuple[int, int], colour: bool) -> np.ndarray:
    """The image at ``path`` as uint8 ``size`` (H, W), or (H, W, 3) when ``colour``: scaled to fit with
    its aspect ratio kept and centred on black; transparency is dropped. DataError names the file."""
    from PIL import Image

    image = _open(path, read_regular(path, limits.MAX_IMAGE_BYTES, DataError, "image file"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Pillow's note on palette transparency
            image.load()
            if image.mode.startswith("I"):  # 16-bit gray (PNG): keep the top 8 bits (Pillow's convert clips)
                image = Image.fromarray((np.asarray(image, np.int64) >> 8).clip(0, 255).astype(np.uint8), "L")
            image = image.convert("RGB" if colour else "L")
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, ValueError, SyntaxError, ...
        raise DataError(f"{path}: not a readable {image.format or 'image'} image ({exc})") from None
    height, width = size
    if image.size != (width, height):
        scale = min(width / image.width, height / image.height)
        inner = (max(1, min(width, round(image.width * scale))), max(1, min(height, round(image.height * scale))))
        image = image.resize(inner, Image.Resampling.BILINEAR)  # Pillow's resize averages when shrinking
        canvas = Image.new(image.mode, (width, height))
        canvas.paste(image, ((width - inner[0]) // 2, (height - inner[1]) // 2))
        image = canvas
    return np.array(image, dtype=np.uint8)  # a writable copy (torch warns on read-only arrays)


def _open(path: Path, data: bytes):  # noqa: ANN202 - a PIL image
    """Pillow's lazy image of ``data`` with only the decoder its first bytes name; limits checked."""
    from PIL import Image

    fmt = image_format(data)
    if fmt is None:
        from cnnviz.imagefile import _looks_like

        raise DataError(f"{path}: not a {FORMATS} image{_looks_like(data)}")
    kind = _PIL_FORMATS[fmt]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data), formats=[kind])
    except Exception as exc:  # noqa: BLE001 - UnidentifiedImageError, SyntaxError, DecompressionBombError...
        raise DataError(f"{path}: not a readable {kind} image ({exc})") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: not a readable {kind} image (its header is damaged)")
    if max(width, height) > limits.MAX_IMAGE_SIDE or width * height > limits.MAX_IMAGE_PIXELS:
        raise DataError(f"{path}: the image is {width:,} x {height:,} pixels; cnnviz reads images of at most "
                        f"{limits.MAX_IMAGE_SIDE:,} pixels a side and {limits.MAX_IMAGE_PIXELS:,} pixels in all")
    return image


def _is_colour(image) -> bool:  # noqa: ANN001 - a PIL image
    if image.mode in _GRAY_MODES:
        return False
    if image.mode in ("P", "PA"):
        palette = image.getpalette() or []
        return any(palette[i] != palette[i + 1] or palette[i] != palette[i + 2]
                   for i in range(0, len(palette) - 2, 3))
    return True


def _subfolders(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    return [p for p in entries if p.is_dir() and not p.name.startswith(".")]


def _class_folders(folder: Path) -> dict[str, Path]:
    """Class name -> its folder, for the subfolders of ``folder`` holding at least one image file."""
    classes = {p.name: p for p in _subfolders(folder) if _images_in(p)}
    if not classes:
        raise DataError(f"{folder}: holds no class subfolders of images (expected {folder}/<class>/*.png, or "
                        "train/<class>/ and test/<class>/; PNG, JPEG, BMP or GIF), nor the four IDX files")
    if len(classes) > limits.MAX_CLASSES:
        raise DataError(f"{folder}: {len(classes):,} class folders; cnnviz handles at most "
                        f"{limits.MAX_CLASSES:,} classes")
    long = next((n for n in classes if len(n) > limits.MAX_CLASS_NAME_LENGTH), None)
    if long is not None:
        raise DataError(f"{folder / long}: a class name of {len(long):,} characters; at most "
                        f"{limits.MAX_CLASS_NAME_LENGTH} are allowed")
    return classes


def _images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` by name (in name order); hidden files are skipped."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    return [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            and not p.is_dir()]


def _cache_key(files: ImageFiles, max_side: int) -> str:
    """A digest of the layout, the size rule and every file's path, size and modification time."""
    digest = hashlib.sha256(json.dumps([files.layout, max_side, files.class_names]).encode())
    for split, items in (("train", files.train), ("test", files.test)):
        for path, label in items:
            try:
                info = os.stat(path)
                stamp = f"{info.st_size}:{info.st_mtime_ns}"
            except OSError:
                stamp = "?"  # reading it will say what is wrong
            digest.update(f"{split}\0{path.relative_to(files.root)}\0{label}\0{stamp}\n".encode())
    return digest.hexdigest()


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # reading it will say what is wrong


class LoadCancelled(DownloadCancelled):
    """The user cancelled loading a folder of images (handled as a cancelled download is)."""

    def __init__(self) -> None:
        DataError.__init__(self, "loading cancelled")


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise LoadCancelled()
