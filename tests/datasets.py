"""Generated datasets for the tests: the four IDX files of random images (never real data, never a download)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnviz.data.catalog import STANDARD_FILES
from cnnviz.data.idx import write_idx


def write_dataset(folder: Path, n_train: int = 100, n_test: int = 20, seed: int = 0, gz: bool = True,
                  height: int = 28, width: int | None = None, classes: int = 10) -> dict[str, Path]:
    """Random ``height x width`` images with labels 0..classes-1 cycling, as the four IDX files (gzipped
    under the standard names, or plain); returns the files by role."""
    width = height if width is None else width
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, height, width), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % classes).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, height, width), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % classes).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for role, name in STANDARD_FILES.items():
        path = folder / (name if gz else name.removesuffix(".gz"))
        write_idx(path, arrays[role])
        paths[role] = path
    return paths
