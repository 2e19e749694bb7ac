"""CIFAR-10: its binary archive downloaded from a local server (MD5-verified) and read without pickle."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cnnviz.config import DataConfig
from cnnviz.data.catalog import CIFAR10_ARCHIVE, CIFAR10_CLASSES, DATASETS
from cnnviz.data.cifar import TEST_FILE, TRAIN_FILES, decode_records, encode_records, read_cifar_binary
from cnnviz.data.download import fetch_dataset
from cnnviz.data.prepare import prepare
from cnnviz.data.sources import load_raw
from cnnviz.errors import DataError, DownloadError
from tests.engine.test_data_download import server as local_server

server = local_server  # the local HTTP server fixture of the download tests


def _archive(per_batch: int = 3, members: dict[str, bytes] | None = None) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A tar.gz laid out like cifar-10-binary.tar.gz with ``per_batch`` records per batch."""
    rng = np.random.default_rng(0)
    n = per_batch * 6
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    files = {name: encode_records(images[i * per_batch:(i + 1) * per_batch], labels[i * per_batch:(i + 1) * per_batch])
             for i, name in enumerate((*TRAIN_FILES, TEST_FILE))}
    files["cifar-10-batches-bin/batches.meta.txt"] = "\n".join(CIFAR10_CLASSES).encode()
    files.update(members or {})
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue(), images, labels


def test_records_are_label_then_red_green_blue_planes():
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, 0, 1] = (10, 20, 30)  # row 0, column 1
    data = encode_records(image, np.array([7]))
    assert len(data) == 3073 and data[0] == 7
    assert (data[1 + 1], data[1 + 1024 + 1], data[1 + 2048 + 1]) == (10, 20, 30)
    images, labels = decode_records(data)
    assert labels.tolist() == [7] and np.array_equal(images, image)


def test_a_cut_batch_is_refused():
    with pytest.raises(DataError, match="3,000 bytes is not a whole number of 3,073-byte records"):
        decode_records(b"\0" * 3000)


def test_cifar_downloaded_from_a_local_server_verified_by_md5(server, tmp_path: Path):
    blob, images, labels = _archive()
    server.files[CIFAR10_ARCHIVE] = blob
    info = dataclasses.replace(DATASETS["cifar10"], mirrors=(server.base,),
                               sha256={CIFAR10_ARCHIVE: hashlib.md5(blob).hexdigest()},
                               sizes={CIFAR10_ARCHIVE: len(blob)})
    calls = []
    folder = fetch_dataset(info, cache_dir=tmp_path, progress=lambda d, t, m: calls.append((d, t)))
    assert (folder / CIFAR10_ARCHIVE).read_bytes() == blob
    assert calls[-1] == (len(blob), len(blob))
    raw = read_cifar_binary(folder / CIFAR10_ARCHIVE)
    assert raw.train_images.shape == (15, 32, 32, 3) and raw.test_images.shape == (3, 32, 32, 3)
    assert raw.channels == 3 and raw.class_names == CIFAR10_CLASSES
    assert np.array_equal(raw.train_images, images[:15]) and np.array_equal(raw.test_labels, labels[15:])
    data = prepare(raw, DataConfig(validation="none"))
    assert tuple(data.train.images.shape) == (15, 3, 32, 32)
    assert data.train.images[0, 0, 0, 0].item() == pytest.approx(images[0, 0, 0, 0] / 255.0)
    assert data.train.images[0, 2, 0, 0].item() == pytest.approx(images[0, 0, 0, 2] / 255.0)
    # a second fetch finds the verified file and asks the server for nothing
    before = len(server.requests)
    fetch_dataset(info, cache_dir=tmp_path)
    assert len(server.requests) == before


def test_the_published_md5_is_checked(server, tmp_path: Path):
    blob, _, _ = _archive()
    server.files[CIFAR10_ARCHIVE] = blob
    info = dataclasses.replace(DATASETS["cifar10"], mirrors=(server.base,))  # the real MD5: no match
    with pytest.raises(DownloadError, match="its md5 is .*expected c32a1d4ab5d03f1284b67883e8d87530"):
        fetch_dataset(info, cache_dir=tmp_path)
    assert not (tmp_path / "cifar10" / CIFAR10_ARCHIVE).exists()


def test_load_raw_reads_cifar_from_the_cache(tmp_path: Path, monkeypatch):
    blob, _, _ = _archive()
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / CIFAR10_ARCHIVE).write_bytes(blob)
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(
        DATASETS["cifar10"], sha256={CIFAR10_ARCHIVE: hashlib.md5(blob).hexdigest()}, mirrors=("https://example.invalid/",)))
    raw = load_raw(DataConfig(dataset="cifar10"), cache_dir=tmp_path)
    assert raw.name == "CIFAR-10" and raw.image_shape == (32, 32) and len(raw.train_labels) == 15


def test_a_traversing_member_is_never_written_and_a_missing_batch_is_named(tmp_path: Path):
    blob, _, _ = _archive(members={"../../evil.bin": b"x"})
    (tmp_path / "a.tar.gz").write_bytes(blob)
    read_cifar_binary(tmp_path / "a.tar.gz")
    assert not (tmp_path.parent / "evil.bin").exists()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(TRAIN_FILES[0])
        info.size = 3073
        tar.addfile(info, io.BytesIO(b"\0" * 3073))
    (tmp_path / "b.tar.gz").write_bytes(out.getvalue())
    with pytest.raises(DataError, match="the archive lacks cifar-10-batches-bin/data_batch_2.bin"):
        read_cifar_binary(tmp_path / "b.tar.gz")
    (tmp_path / "c.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(DataError, match="c.tar.gz: not a readable CIFAR-10 archive"):
        read_cifar_binary(tmp_path / "c.tar.gz")
