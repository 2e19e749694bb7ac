"""Build the embedded MNIST sample in ``resources/mnist-sample/`` from 5,000 real MNIST digits.

Usage::

    python resources/build_sample.py /path/to/mnist-5k.csv.gz

The source is a CSV (gzip) with one row per image: 784 pixel values 0-255, then the label, 500
images per class. The script makes a stratified split, 400 train / 100 test per class, chosen with a
fixed seed, shuffles each split (the source is sorted by label, and galleries show the first images),
and writes the four standard IDX files (gzip without time stamp, so the output is byte-for-byte
reproducible) and a README.md stating provenance and checksums.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnnviz.data.idx import read_idx, write_idx  # noqa: E402

SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
SEED = 20240607
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100
OUT = ROOT / "resources" / "mnist-sample"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 from the CSV."""
    with gzip.open(path, "rt") as f:
        rows = np.array([line.split(",") for line in f if line.strip()], dtype=np.int64)
    if rows.shape[1] != 785:
        raise SystemExit(f"{path}: expected 785 columns, got {rows.shape[1]}")
    if rows[:, :784].min() < 0 or rows[:, :784].max() > 255 or not np.isin(rows[:, 784], range(10)).all():
        raise SystemExit(f"{path}: pixel or label values out of range")
    return rows[:, :784].reshape(-1, 28, 28).astype(np.uint8), rows[:, 784].astype(np.uint8)


def split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the train and test split, stratified and shuffled with :data:`SEED`."""
    rng = np.random.default_rng(SEED)
    train, test = [], []
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        if len(rows) < TRAIN_PER_CLASS + TEST_PER_CLASS:
            raise SystemExit(f"only {len(rows)} images of digit {digit}")
        rows = rng.permutation(rows)
        train.append(rows[:TRAIN_PER_CLASS])
        test.append(rows[TRAIN_PER_CLASS:TRAIN_PER_CLASS + TEST_PER_CLASS])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="mnist-5k.csv.gz")
    args = parser.parse_args()
    source_hash = sha256(args.source)
    if source_hash != SOURCE_SHA256:
        raise SystemExit(f"{args.source}: sha256 {source_hash}, expected {SOURCE_SHA256}")
    images, labels = read_csv(args.source)
    train, test = split(labels)
    arrays = {
        "train_images": images[train], "train_labels": labels[train],
        "test_images": images[test], "test_labels": labels[test],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for role, name in FILES.items():
        write_idx(OUT / name, arrays[role])
        assert np.array_equal(read_idx(OUT / name), arrays[role])
        hashes[name] = sha256(OUT / name)
        print(f"{name}: {arrays[role].shape} sha256 {hashes[name]}")
    (OUT / "README.md").write_text(readme(args.source.name, train, test, hashes), encoding="utf-8")


def readme(source: str, train: np.ndarray, test: np.ndarray, hashes: dict[str, str]) -> str:
    rows = "\n".join(
        f"| `{name}` | {(OUT / name).stat().st_size:,} | `{digest}` |" for name, digest in hashes.items()
    )
    return f"""# Embedded MNIST sample

The small dataset cnnviz uses by default and whenever no other data is available (offline):
5,000 real MNIST digits, split into {len(train):,} training images ({TRAIN_PER_CLASS} per digit) and
{len(test):,} test images ({TEST_PER_CLASS} per digit), stored as the four standard IDX files (gzip,
28x28 uint8 images, uint8 labels 0-9).

All 5,000 digits come from the MNIST *training* set, so the sample's test images are not part of the
official MNIST test set: a model trained on full MNIST has seen them.

## Provenance

- Source: `{source}`, 5,000 MNIST training digits (500 per digit), one CSV row per image:
  784 pixel values 0-255, then the label; sha256 `{SOURCE_SHA256}`.
- Split: for each digit, a random permutation of its 500 rows (numpy `default_rng({SEED})`, digits
  in order 0-9); the first {TRAIN_PER_CLASS} go to train, the next {TEST_PER_CLASS} to test. Each split is then
  shuffled with the same generator, so the files are not sorted by digit.
- Seed: {SEED}.
- Built by `resources/build_sample.py` (`python resources/build_sample.py {source}`); the gzip
  streams carry no time stamp, so rebuilding gives identical bytes.

| file | bytes | sha256 |
|---|---|---|
{rows}

## Credit and licence

MNIST: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits",
licensed under CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/). This sample is a
subset of MNIST in the same format and is shared under the same licence.
"""


if __name__ == "__main__":
    main()
