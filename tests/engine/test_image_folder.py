"""Datasets from folders of images in class subfolders: layouts, gray and colour, odd sizes, bad files, cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.config import DataConfig
from cnnviz.data.image_folder import choose_size, find_image_files, load_image_folder
from cnnviz.data.prepare import load_data
from cnnviz.errors import DataError


def _save(path: Path, pixels: np.ndarray, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)


def _gray_tree(root: Path, per_class: int = 5) -> None:
    for c, name in enumerate(("circle", "square")):
        for i in range(per_class):
            _save(root / name / f"{i:02d}.png", np.full((12, 10), 40 * c + i, np.uint8))


def test_one_tree_is_split_every_fifth_file_and_gray_stays_one_channel(tmp_path):
    _gray_tree(tmp_path / "shapes", per_class=10)
    files = find_image_files(tmp_path / "shapes")
    assert files.layout == "one tree" and files.class_names == ("circle", "square")
    assert [p.name for p, y in files.test] == ["04.png", "09.png", "04.png", "09.png"]
    raw = load_image_folder(tmp_path / "shapes", cache_dir=tmp_path / "cache")
    assert raw.channels == 1 and raw.train_images.shape == (16, 12, 10) and raw.test_images.shape == (4, 12, 10)
    assert raw.name == "shapes" and raw.test_labels.tolist() == [0, 0, 1, 1]
    assert raw.test_images[1, 0, 0] == 9 and raw.test_images[3, 0, 0] == 49  # the 10th circle and square


def test_train_test_layout_rgb_with_odd_sizes_padded_to_the_common_size(tmp_path):
    root = tmp_path / "pets"
    red = np.zeros((8, 6, 3), np.uint8)
    red[..., 0] = 255
    for split, n in (("train", 3), ("test", 1)):
        for name in ("cat", "dog"):
            for i in range(n):
                _save(root / split / name / f"{i}.png", red)
    _save(root / "train" / "cat" / "wide.jpg", np.full((4, 12, 3), 200, np.uint8), "JPEG")  # another size
    gray = np.full((16, 12), 255, np.uint8)  # twice the size, grayscale: becomes colour, shrunk
    _save(root / "test" / "dog" / "big.bmp", gray, "BMP")
    (root / "train" / "cat" / "README.txt").write_text("not an image")  # skipped by its name
    seen = []
    raw = load_image_folder(root, cache_dir=tmp_path / "cache", progress=lambda d, t, m: seen.append((d, t)))
    assert raw.channels == 3 and raw.image_shape == (8, 6) and raw.class_names == ("cat", "dog")
    assert raw.train_images.shape == (7, 8, 6, 3) and raw.test_images.shape == (3, 8, 6, 3)
    in_all = sum(p.stat().st_size for p in root.rglob("*.*") if p.suffix != ".txt")
    assert seen[0] == (0, in_all) and seen[-1] == (in_all, in_all)
    assert raw.train_images[0, 4, 3].tolist() == [255, 0, 0]
    wide = raw.train_images[3]  # cat/wide.jpg (name order: 0, 1, 2, wide): 12x4 -> 6x2, centred
    assert wide[0, 3].tolist() == [0, 0, 0] and wide[4, 3].tolist() == pytest.approx([200, 200, 200], abs=3)
    big = raw.test_images[2]  # dog/big.bmp: exactly half size, white, in 3 channels
    assert big.min() == 255
    data = load_data(DataConfig(data_dir=str(root), validation="none"), cache_dir=tmp_path / "c2")
    assert tuple(data.train.images.shape[1:]) == (3, 8, 6)


def test_the_size_rule():
    assert choose_size([(28, 28), (28, 28), (30, 20)]) == (28, 28)
    assert choose_size([(32, 32), (20, 20)]) == (32, 32)  # a tie: the larger
    assert choose_size([(480, 640)] * 2 + [(10, 10)]) == (48, 64)  # capped at 64, aspect kept
    assert choose_size([(100, 100)], max_side=40) == (40, 40)


def test_a_corrupt_image_is_reported_by_its_path(tmp_path):
    _gray_tree(tmp_path / "d")
    bad = tmp_path / "d" / "square" / "03.png"
    bad.write_bytes(bad.read_bytes()[:40])  # cut off after the header
    with pytest.raises(DataError, match=rf"^{bad}: not a readable PNG image"):
        load_image_folder(tmp_path / "d", cache_dir=tmp_path / "cache")
    bad.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    with pytest.raises(DataError, match=rf"^{bad}: not a PNG, JPEG, BMP or GIF image \(it looks like SVG"):
        load_image_folder(tmp_path / "d", cache_dir=tmp_path / "cache")


def test_layout_errors_say_what_was_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no class subfolders of images"):
        load_image_folder(tmp_path / "empty", cache_dir=tmp_path / "cache")
    _gray_tree(tmp_path / "tt" / "train")
    _gray_tree(tmp_path / "tt" / "test")
    _save(tmp_path / "tt" / "test" / "star" / "0.png", np.zeros((12, 10), np.uint8))
    with pytest.raises(DataError, match="class 'star' has no folder in"):
        load_image_folder(tmp_path / "tt", cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="nor does it hold images in class subfolders"):
        load_data(DataConfig(data_dir=str(tmp_path / "empty")), cache_dir=tmp_path / "cache")


def test_a_second_load_comes_from_the_cache_and_a_changed_file_is_seen(tmp_path, monkeypatch):
    import cnnviz.data.image_folder as folder_module

    _gray_tree(tmp_path / "d")
    first = load_image_folder(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    calls = []
    real = folder_module.decode_image
    monkeypatch.setattr(folder_module, "decode_image", lambda *a: calls.append(a) or real(*a))
    again = load_image_folder(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert calls == [] and np.array_equal(first.train_images, again.train_images)
    _save(tmp_path / "d" / "circle" / "00.png", np.full((12, 10), 99, np.uint8))
    changed = load_image_folder(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert len(calls) == 10 and changed.train_images[0, 0, 0] == 99
    assert len(list((tmp_path / "cache").iterdir())) == 1  # the stale entry went
    _gray_tree(tmp_path / "other")
    load_image_folder(tmp_path / "other", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 2  # another folder's entry stays
    for entry in (tmp_path / "cache").iterdir():  # a damaged entry is a miss: the images are decoded again
        entry.write_bytes(entry.read_bytes()[:100])
    calls.clear()
    again = load_image_folder(tmp_path / "other", cache_dir=tmp_path / "cache")
    assert len(calls) == 10 and again.train_images.shape == (8, 12, 10)


def test_loading_can_be_cancelled_and_progress_is_in_bytes(tmp_path):
    import threading

    from cnnviz.data.download import DownloadCancelled

    _gray_tree(tmp_path / "d", per_class=70)
    cancel = threading.Event()
    seen = []

    def progress(done, total, message):
        seen.append(message)
        if message.startswith("Reading images"):
            cancel.set()  # the user presses Stop once decoding has begun

    with pytest.raises(DownloadCancelled, match="^loading cancelled$"):
        load_image_folder(tmp_path / "d", progress=progress, cancel=cancel, cache_dir=tmp_path / "cache")
    assert seen[0] == "Checking images: 1 of 140" and seen[-1] == "Reading images: 1 of 140"
    assert not (tmp_path / "cache").exists()  # nothing half-decoded was cached


def test_a_16_bit_gray_png_keeps_its_gray_levels(tmp_path):
    _gray_tree(tmp_path / "d")
    deep = np.full((12, 10), 0x8080, np.uint16)  # mid-gray in 16 bits
    Image.fromarray(deep).save(tmp_path / "d" / "circle" / "00.png")
    raw = load_image_folder(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert raw.channels == 1 and raw.train_images[0, 0, 0] == 0x80
