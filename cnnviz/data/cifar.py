"""CIFAR-10's binary version: six batch files inside ``cifar-10-binary.tar.gz``, read as bytes.

Each record is 1 label byte and 3,072 pixel bytes: the 1,024 red values of the 32x32 image row by row,
then the green, then the blue. The archive is read in place: the six batch files are streamed out of it
by name into memory, nothing is written to disk (so a crafted member name cannot escape a folder) and
nothing is unpickled (the python version of the archive would have to be).
"""
from __future__ import annotations

import os
import tarfile

import numpy as np

from cnnviz import limits
from cnnviz.data.catalog import CIFAR10_CLASSES
from cnnviz.data.sources import RawDataset
from cnnviz.errors import DataError
from cnnviz.files import open_regular

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE  # 3,073 bytes
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"{FOLDER}/data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = f"{FOLDER}/test_batch.bin"
_MAX_BATCH_BYTES = 64 * limits.MiB  # a published batch is 30.7 MB (10,000 records)


def decode_records(data: bytes, where: str = "CIFAR-10 batch") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) int64 of a batch file's bytes."""
    if not data or len(data) % RECORD:
        raise DataError(f"{where}: {len(data):,} bytes is not a whole number of {RECORD:,}-byte records")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    images = records[:, 1:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def encode_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The inverse of :func:`decode_records` (for tests and tools): (N, 32, 32, 3) uint8 and labels."""
    planes = np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([np.asarray(labels, np.uint8)[:, None], planes], axis=1).tobytes()


def read_cifar_binary(
    archive: str | os.PathLike[str], name: str = "CIFAR-10", class_names: tuple[str, ...] = CIFAR10_CLASSES,
) -> RawDataset:
    """The dataset in CIFAR-10's binary archive (50,000 train and 10,000 test images of 32x32 RGB).

    Raises
    ------
    DataError
        The archive is not a readable tar.gz, lacks one of the six batch files (named), or a batch is
        not whole records or has a label of no class.
    """
    f, _ = open_regular(archive, limits.MAX_IDX_BYTES, DataError, "CIFAR-10 archive")
    wanted = set(TRAIN_FILES) | {TEST_FILE}
    batches: dict[str, bytes] = {}
    with f:
        try:
            with tarfile.open(fileobj=f, mode="r:gz") as tar:
                for member in tar:  # streamed: members are read in order, once
                    if member.name not in wanted or not member.isreg():
                        continue
                    if member.size > _MAX_BATCH_BYTES:
                        raise DataError(f"{archive}: {member.name} is {member.size:,} bytes, more than a "
                                        "CIFAR-10 batch")
                    stream = tar.extractfile(member)
                    batches[member.name] = stream.read() if stream is not None else b""
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive}: not a readable CIFAR-10 archive ({exc})") from None
    missing = [n for n in (*TRAIN_FILES, TEST_FILE) if n not in batches]
    if missing:
        raise DataError(f"{archive}: the archive lacks {', '.join(missing)}")
    train = [decode_records(batches[n], f"{archive}: {n}") for n in TRAIN_FILES]
    test_images, test_labels = decode_records(batches[TEST_FILE], f"{archive}: {TEST_FILE}")
    return RawDataset(
        name=name, class_names=tuple(class_names),
        train_images=np.concatenate([t[0] for t in train]), train_labels=np.concatenate([t[1] for t in train]),
        test_images=test_images, test_labels=test_labels,
    )
