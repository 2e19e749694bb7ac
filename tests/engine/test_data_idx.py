"""IDX reading/writing, finding the four files in a folder, and loading raw datasets."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnviz.config import DataConfig
from cnnviz.data.catalog import DATASETS, MNIST_CLASSES
from cnnviz.data.idx import read_idx, write_idx
from cnnviz.data.sources import (
    SAMPLE_NAME, RawDataset, embedded_sample, find_idx_files, load_folder, load_raw,
)
from cnnviz.errors import DataError

STANDARD = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def tiny_arrays(n_train: int = 30, n_test: int = 10, classes: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % classes).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % classes).astype(np.uint8),
    }


def write_folder(folder: Path, arrays: dict[str, np.ndarray], names: dict[str, str] = STANDARD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for role, name in names.items():
        write_idx(folder / name, arrays[role])
    return folder


# --- read_idx / write_idx ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["data-idx3-ubyte", "data-idx3-ubyte.gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-128, -1, 0, 127], dtype=np.int8),
        np.array([[-30000, 2], [3, 30000]], dtype=np.int16),
        np.array([-(2**31), 0, 2**31 - 1], dtype=np.int32),
        np.array([[1.5, -2.25]], dtype=np.float32),
        np.array([np.pi, -1e300], dtype=np.float64),
    ],
    ids=["uint8", "int8", "int16", "int32", "float32", "float64"],
)
def test_round_trip(tmp_path: Path, name: str, array: np.ndarray) -> None:
    path = tmp_path / name
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")


def test_header_is_big_endian(tmp_path: Path) -> None:
    write_idx(tmp_path / "a", np.zeros((60000, 28, 28), dtype=np.uint8)[:2, :3, :1])
    data = (tmp_path / "a").read_bytes()
    assert data[:4] == bytes([0, 0, 0x08, 3])
    assert data[4:16] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (1).to_bytes(4, "big")
    write_idx(tmp_path / "b", np.array([258], dtype=np.int16))
    assert (tmp_path / "b").read_bytes()[8:] == b"\x01\x02"


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "labels.gz", array)
    shutil.copy(tmp_path / "labels.gz", tmp_path / "labels-unpacked-but-not-really")
    write_idx(tmp_path / "plain", array)
    shutil.copy(tmp_path / "plain", tmp_path / "plain-named.gz")
    for name in ("labels-unpacked-but-not-really", "plain-named.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_write_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"x\.idx: IDX cannot store arrays of type int64"):
        write_idx(tmp_path / "x.idx", np.arange(3, dtype=np.int64))


def _header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02\x08\x01" + (3).to_bytes(4, "big") + b"abc", r"not an IDX file: it starts with bytes 01 02"),
        (_header(0x07, (3,)) + b"abc", r"unknown IDX data type code 0x07"),
        (_header(0x08, (5, 2)) + b"abc", r"truncated: header says 5x2 \(10 bytes\) but the file holds 3"),
        (_header(0x0C, (2,)) + b"1234", r"truncated: header says 2 \(8 bytes\) but the file holds 4"),
        (_header(0x08, (3,)) + b"abcde", r"trailing bytes: header says 3 \(3 bytes\) but the file holds 5"),
        (_header(0x08, (3, 3, 3))[:9], r"truncated: the header announces 3 dimensions"),
        (_header(0x08, ()), r"the IDX header says the data has 0 dimensions"),
        (b"\x00\x00", r"not an IDX file: it holds only 2 bytes"),
        (b"", r"not an IDX file: it holds only 0 bytes"),
    ],
    ids=[
        "magic", "dtype", "truncated", "truncated-int32", "trailing", "short-header", "no-dims", "tiny", "empty",
    ],
)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_corrupt_files_raise_data_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str, compress: bool
) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(DataError, match=r"^train-images-idx3-ubyte\.gz: " + message):
        read_idx(path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"this is not deflate data at all")
    with pytest.raises(DataError, match=r"^t10k-labels-idx1-ubyte\.gz: corrupt gzip file"):
        read_idx(path)
    path.write_bytes(b"\x1f\x8bnot even a gzip header")
    with pytest.raises(DataError, match=r"^t10k-labels-idx1-ubyte\.gz: corrupt gzip file"):
        read_idx(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"^train-images-idx3-ubyte\.gz: truncated gzip file"):
        read_idx(path)


def test_gzip_with_bad_checksum(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    data = bytearray(gzip.compress(_header(0x08, (4,)) + b"abcd"))
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"^x\.gz: corrupt gzip file"):
        read_idx(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope-idx1-ubyte\.gz: file not found$"):
        read_idx(tmp_path / "nope-idx1-ubyte.gz")
    with pytest.raises(DataError, match="is a folder"):
        read_idx(tmp_path)


# --- find_idx_files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [
        STANDARD,
        {r: n.removesuffix(".gz") for r, n in STANDARD.items()},
        {r: n.replace("-idx", ".idx") for r, n in STANDARD.items()},
        {r: n.replace("t10k-", "test-") for r, n in STANDARD.items()},
        {r: n.upper() for r, n in STANDARD.items()},
        {  # a mix of all spellings
            "train_images": "train-images.idx3-ubyte",
            "train_labels": "train-labels-idx1-ubyte.gz",
            "test_images": "test-images-idx3-ubyte",
            "test_labels": "t10k-labels.idx1-ubyte.gz",
        },
    ],
    ids=["standard", "unpacked", "dot", "test-prefix", "upper-case", "mixed"],
)
def test_find_idx_files_spellings(tmp_path: Path, names: dict[str, str]) -> None:
    arrays = tiny_arrays()
    write_folder(tmp_path, arrays, names)
    (tmp_path / "README.txt").write_text("not data")
    found = find_idx_files(tmp_path)
    assert {role: path.name for role, path in found.items()} == names
    raw = load_folder(tmp_path)
    np.testing.assert_array_equal(raw.test_images, arrays["test_images"])


def test_find_prefers_unpacked_file(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    write_folder(tmp_path, arrays)
    write_idx(tmp_path / "train-images-idx3-ubyte", arrays["train_images"])
    assert find_idx_files(tmp_path)["train_images"].name == "train-images-idx3-ubyte"


def test_find_lists_missing_files(tmp_path: Path) -> None:
    names = {"train_images": STANDARD["train_images"], "test_labels": STANDARD["test_labels"]}
    write_folder(tmp_path, tiny_arrays(), names)
    with pytest.raises(DataError) as err:
        find_idx_files(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message
    assert "missing 2 of the 4 IDX files" in message
    assert "train labels (train-labels-idx1-ubyte.gz)" in message
    assert "test images (t10k-images-idx3-ubyte.gz)" in message
    assert "train images" not in message and "test labels" not in message


def test_find_missing_or_wrong_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="folder not found"):
        find_idx_files(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        find_idx_files(tmp_path / "file")


# --- load_folder / RawDataset ----------------------------------------------------------------


def test_load_folder_defaults(tmp_path: Path) -> None:
    arrays = tiny_arrays(classes=4)
    raw = load_folder(write_folder(tmp_path / "my-digits", arrays))
    assert raw.name == "my-digits"
    assert raw.class_names == ("0", "1", "2", "3")
    assert raw.image_shape == (28, 28)
    for role, array in arrays.items():
        np.testing.assert_array_equal(getattr(raw, role), array)
    named = load_folder(tmp_path / "my-digits", name="Mine", class_names=tuple("abcd"))
    assert (named.name, named.class_names) == ("Mine", ("a", "b", "c", "d"))


def test_count_mismatch_names_both_files_and_counts(tmp_path: Path) -> None:
    arrays = tiny_arrays(n_train=30)
    arrays["train_labels"] = arrays["train_labels"][:29]
    write_folder(tmp_path, arrays)
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte\.gz holds 30 images but train-labels-idx1-ubyte\.gz holds 29 labels",
    ):
        load_folder(tmp_path)


def test_labels_out_of_range(tmp_path: Path) -> None:
    arrays = tiny_arrays(classes=3)
    write_folder(tmp_path, arrays)
    expected = r"train-labels-idx1-ubyte\.gz: label 2 is out of range 0-1 for 2 classes"
    with pytest.raises(DataError, match=expected):
        load_folder(tmp_path, class_names=("a", "b"))


def test_image_size_mismatch_and_wrong_kind(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    arrays["test_images"] = np.zeros((10, 32, 32), dtype=np.uint8)
    write_folder(tmp_path / "a", arrays)
    expected = r"train-images-idx3-ubyte\.gz has 28x28 images but t10k-images-idx3-ubyte\.gz has 32x32"
    with pytest.raises(DataError, match=expected):
        load_folder(tmp_path / "a")
    arrays = tiny_arrays()
    arrays["train_images"] = arrays["train_images"].reshape(30, 784)
    write_folder(tmp_path / "b", arrays)
    expected = r"train-images-idx3-ubyte\.gz: expected images of shape N x height x width, got 30x784"
    with pytest.raises(DataError, match=expected):
        load_folder(tmp_path / "b")


def test_other_image_sizes_are_accepted(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    arrays["train_images"] = np.zeros((30, 16, 20), dtype=np.uint8)
    arrays["test_images"] = np.zeros((10, 16, 20), dtype=np.uint8)
    assert load_folder(write_folder(tmp_path, arrays)).image_shape == (16, 20)


def test_raw_dataset_validates_itself() -> None:
    arrays = tiny_arrays()
    arrays["test_labels"] = arrays["test_labels"][:5]
    with pytest.raises(DataError, match=r"^toy: 10 test images but 5 test labels$"):
        RawDataset(name="toy", class_names=("a", "b", "c"), **arrays)
    arrays = tiny_arrays()
    arrays["train_images"] = arrays["train_images"].astype(np.float32)
    with pytest.raises(DataError, match="pixels must be unsigned bytes"):
        RawDataset(name="toy", class_names=("a", "b", "c"), **arrays)


# --- embedded sample / load_raw --------------------------------------------------------------


def test_embedded_sample() -> None:
    raw = embedded_sample()
    assert raw.name == SAMPLE_NAME == "MNIST sample (4,000 / 1,000)"
    assert raw.class_names == MNIST_CLASSES
    assert raw.train_images.shape == (4000, 28, 28) and raw.train_images.dtype == np.uint8
    assert raw.test_images.shape == (1000, 28, 28)
    assert np.bincount(raw.train_labels).tolist() == [400] * 10
    assert np.bincount(raw.test_labels).tolist() == [100] * 10
    # Shuffled, not sorted by digit, and looking like digits: dark background, bright strokes.
    assert len(set(raw.test_labels[:20].tolist())) >= 5
    assert raw.train_images[:, 0, :].max() < 50 and raw.train_images.max() == 255
    assert 0.10 < raw.train_images.mean() / 255 < 0.16
    # No image is in both splits.
    train = {bytes(img) for img in raw.train_images.reshape(4000, -1)}
    assert not any(bytes(img) in train for img in raw.test_images.reshape(1000, -1))


def test_load_raw_data_dir_wins_and_sample(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "mine", tiny_arrays())
    # dataset="mnist" would download; the folder overrides it, so no network is touched.
    raw = load_raw(DataConfig(dataset="mnist", data_dir=str(folder)), cache_dir=tmp_path / "cache")
    assert raw.name == "mine" and len(raw.train_labels) == 30
    assert not (tmp_path / "cache").exists()
    assert load_raw(DataConfig(dataset="sample")).name == SAMPLE_NAME


def test_known_dataset_is_recognised_by_its_labels_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import hashlib

    folder = write_folder(tmp_path / "x", tiny_arrays(classes=3))
    digest = hashlib.sha256((folder / STANDARD["train_labels"]).read_bytes()).hexdigest()
    info = DATASETS["fashion"]
    fake = dataclasses.replace(info, sha256={**info.sha256, STANDARD["train_labels"]: digest})
    monkeypatch.setitem(DATASETS, "fashion", fake)
    raw = load_folder(folder)
    assert raw.name == "Fashion-MNIST"
    assert raw.class_names[:2] == ("T-shirt/top", "Trouser")
