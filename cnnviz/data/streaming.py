"""Training images read from disk batch by batch, for a folder of images too large to decode into memory.

When a folder's decoded training images would exceed the memory budget (:data:`cnnviz.limits.
STREAM_ABOVE_BYTES`), :func:`~cnnviz.data.image_folder.load_image_folder` keeps only their file names
(:class:`LazyImages`); the test images, and validation images held out of train, are still decoded (the
views show them). :func:`~cnnviz.data.prepare.prepare` then gives the training split a
:class:`StreamedImages` in place of its image tensor, and the Trainer asks it for each epoch's batches in its
own shuffled order (:meth:`StreamedImages.batches`): a ``torch.utils.data.DataLoader`` whose workers decode
the coming batches while the model trains on the current one. Everything else (the run folder, the
timeline, the views) is the same as for data in memory.

In a process that may not start worker processes (the window's training process is a daemon), the batches
are decoded by a pool of threads instead (Pillow releases the GIL while it decodes).
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cnnviz.errors import DataError

_STATS_SAMPLE = 1000  # training images that standardization's mean and std are measured on when streaming


def default_workers() -> int:
    """DataLoader workers: up to 4, one core left for training; 0 in a daemon process (it may have none)."""
    if multiprocessing.current_process().daemon:
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class LazyImages:
    """Stands in for a uint8 image array ``(N, H, W)`` or ``(N, H, W, 3)`` whose images stay in their files.

    Indexing with an integer, a slice or an index array decodes those images (numpy, as the array would give);
    :meth:`streamed` makes the training tensor that reads them per batch.
    """

    lazy = True
    dtype = np.dtype(np.uint8)

    def __init__(self, paths: Sequence[Path], size: tuple[int, int], colour: bool) -> None:
        self.paths = tuple(paths)
        self.size = (int(size[0]), int(size[1]))
        self.colour = bool(colour)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), *self.size, *((3,) if self.colour else ()))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, index):  # noqa: ANN001 - int, slice or index array, as numpy takes
        if isinstance(index, (int, np.integer)):
            return self._decode(self.paths[index])
        positions = range(len(self.paths))[index] if isinstance(index, slice) else np.asarray(index).reshape(-1)
        out = np.zeros((len(positions), *self.shape[1:]), np.uint8)
        with ThreadPoolExecutor(max_workers=4) as pool:
            for i, pixels in enumerate(pool.map(lambda k: self._decode(self.paths[int(k)]), positions)):
                out[i] = pixels
        return out

    def subset(self, index: np.ndarray) -> "LazyImages":
        """The images at ``index``, still in their files."""
        return LazyImages([self.paths[int(k)] for k in np.asarray(index).reshape(-1)], self.size, self.colour)

    def sample(self, index: np.ndarray, seed: int, n: int = _STATS_SAMPLE) -> np.ndarray:
        """At most ``n`` of the images at ``index``, a seeded choice, decoded (for the normalization's statistics)."""
        index = np.asarray(index).reshape(-1)
        if len(index) > n:
            index = np.sort(np.random.default_rng([seed, 4]).choice(index, n, replace=False))
        return self[index]

    def streamed(self, normalization) -> "StreamedImages":  # noqa: ANN001 - a Normalization
        return StreamedImages(self, normalization)

    def _decode(self, path: Path) -> np.ndarray:
        from cnnviz.data.image_folder import decode_image

        return decode_image(path, self.size, self.colour)


class _FileDataset(Dataset):
    """One normalized image (C, H, W) per item, decoded from its file (what the DataLoader's workers run)."""

    def __init__(self, images: LazyImages, normalization) -> None:  # noqa: ANN001
        self.images, self.normalization = images, normalization

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.normalization.apply(self.images[int(i)][None])[0]


class StreamedImages:
    """A training split's images ``(N, C, H, W)`` as the Trainer uses them, read from disk when asked for.

    ``images[index]`` (an index tensor or a slice) decodes and normalizes those images at once (the
    evaluation's batches); :meth:`batches` serves a whole epoch's batches in a planned order, decoded ahead by
    DataLoader workers.
    """

    streamed = True
    dtype = torch.float32

    def __init__(self, images: LazyImages, normalization, workers: int | None = None) -> None:  # noqa: ANN001
        self.images, self.normalization = images, normalization
        self.workers = default_workers() if workers is None else workers
        self.device = torch.device("cpu")

    @property
    def shape(self) -> torch.Size:
        n, h, w = self.images.shape[:3]
        return torch.Size((n, 3 if self.images.colour else 1, h, w))

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device) -> "StreamedImages":  # noqa: ANN001 - as torch.Tensor.to
        moved = StreamedImages(self.images, self.normalization, self.workers)
        moved.device = torch.device(device)
        return moved

    def __getitem__(self, index) -> torch.Tensor:  # noqa: ANN001
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return self.normalization.apply(self.images[index]).to(self.device)

    def batches(self, order: torch.Tensor, starts: Sequence[int], size: int, device) -> "_PlannedBatches":  # noqa: ANN001
        """The batches ``order[s:s + size]`` for each ``s`` in ``starts``, in that order, decoded ahead."""
        plan = [order[s:s + size].cpu().tolist() for s in starts]
        return _PlannedBatches(self, plan, torch.device(device))


class _PlannedBatches:
    """One epoch's batches, handed out in plan order: ``batches[index]`` is the next planned batch (and must
    be the one ``index`` names: the Trainer asks for them in the order it planned)."""

    def __init__(self, source: StreamedImages, plan: list[list[int]], device: torch.device) -> None:
        self.device, self.plan = device, plan
        dataset = _FileDataset(source.images, source.normalization)
        if source.workers > 0 and plan:
            loader = DataLoader(dataset, batch_sampler=plan, num_workers=source.workers, prefetch_factor=2)
            self._batches = iter(loader)
            self._pool = None
        else:  # threads decode the next batch while this one trains
            self._pool = ThreadPoolExecutor(max_workers=2)
            self._batches = self._threaded(dataset, plan)
        self._next = 0

    def _threaded(self, dataset: _FileDataset, plan: list[list[int]]):  # noqa: ANN202
        def load(batch: list[int]) -> torch.Tensor:
            return torch.stack([dataset[i] for i in batch])

        pending = self._pool.submit(load, plan[0]) if plan else None
        for k in range(len(plan)):
            current = pending
            pending = self._pool.submit(load, plan[k + 1]) if k + 1 < len(plan) else None
            yield current.result()
        self._pool.shutdown(wait=False)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        expected = self.plan[self._next]
        asked = index.cpu().tolist() if isinstance(index, torch.Tensor) else list(index)
        if asked != expected:
            raise RuntimeError("streamed batches must be asked for in the planned order")
        self._next += 1
        try:
            batch = next(self._batches)
        except DataError as exc:  # a file that went bad since it was checked; from a worker with its traceback
            last = str(exc).strip().splitlines()[-1]
            raise DataError(last.removeprefix(f"{DataError.__module__}.{DataError.__name__}: ")) from None
        return batch.to(self.device)
