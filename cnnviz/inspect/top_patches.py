"""The test images (and the patch in each) that excite each filter of a conv layer most.

A filter's top patches are its ``k`` strongest responses over a set of images, at most one per image (the
image's strongest position), each with the box of input pixels the unit sees (:mod:`receptive_field`).

:class:`TopPatchTracker` keeps them up to date while a network trains without a pass over the whole set per
update: each call of :meth:`TopPatchTracker.update` runs one *chunk* (a slice of the images) through the
weights of the moment, and the answer merges the latest candidates of every chunk. Going round the chunks
(:meth:`TopPatchTracker.next_chunk`) covers the whole set every few updates; a chunk's candidates are replaced
when it comes round again, so stale responses leave as the weights move on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.inspect._model import as_batch, eval_mode, find_layer, layer_root, run_failed
from cnnviz.inspect.receptive_field import ReceptiveField, receptive_field

DEFAULT_K = 8
CHUNK = 500  # images per update: ~10 ms of a small preset's conv layers


def conv_layers(model: nn.Module) -> list[str]:
    """The names of the model's conv layers (the modules holding filters), in order."""
    return [name for name, module in layer_root(model).named_modules() if isinstance(module, nn.Conv2d)]


@dataclass(frozen=True, eq=False)
class TopPatches:
    """One layer's top patches: for filter ``f``, entry ``j`` is its ``j``-th strongest (highest first).

    ``indices`` are positions in the image set (-1 where fewer than ``k`` images were seen), ``rows``/``cols``
    the unit's position in the layer's output, ``activations`` its output there.
    """

    layer: str
    activations: np.ndarray  # float32 (F, k)
    indices: np.ndarray  # int64 (F, k)
    rows: np.ndarray  # int64 (F, k)
    cols: np.ndarray  # int64 (F, k)
    field: ReceptiveField

    @property
    def filters(self) -> int:
        return int(self.indices.shape[0])

    def entries(self, f: int) -> list[dict]:
        """Filter ``f``'s patches as ``{"index", "row", "col", "activation"}`` dicts, highest first."""
        keep = self.indices[f] >= 0
        return [{"index": int(i), "row": int(r), "col": int(c), "activation": float(a)}
                for i, r, c, a in zip(self.indices[f][keep], self.rows[f][keep], self.cols[f][keep],
                                      self.activations[f][keep])]

    def box(self, f: int, j: int, image_shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of patch ``j`` of filter ``f`` in its image."""
        return self.field.box(int(self.rows[f, j]), int(self.cols[f, j]), image_shape)


def _best_per_image(out: torch.Tensor, k: int) -> tuple[np.ndarray, ...]:
    """From a layer's output (N, F, h, w): each filter's ``k`` best images of the chunk, with their positions."""
    n, f, h, w = out.shape
    flat = out.reshape(n, f, h * w)
    peak, where = flat.max(dim=2)  # (N, F): each image's strongest position per filter
    take = min(k, n)
    top, images = peak.sort(dim=0, descending=True, stable=True)  # ties: the lower image first
    top, images = top[:take], images[:take]  # (take, F), highest first
    pos = where.gather(0, images)
    return (top.T.float().cpu().numpy(), images.T.cpu().numpy().astype(np.int64),
            (pos // w).T.cpu().numpy().astype(np.int64), (pos % w).T.cpu().numpy().astype(np.int64))


class TopPatchTracker:
    """The top ``k`` patches of every filter of ``layers`` over a set of ``count`` images, merged from chunks.

    Not thread-safe: one thread updates it and reads :meth:`result` (the window's worker hands results back).
    """

    def __init__(self, model: nn.Module, count: int, layers: list[str] | None = None, k: int = DEFAULT_K,
                 chunk: int = CHUNK) -> None:
        if count <= 0:
            raise SpecError("there are no images to find top patches in")
        self.layers = list(layers) if layers is not None else conv_layers(model)
        if not self.layers:
            raise SpecError("the model has no conv layer, so it has no filters to find patches for")
        for name in self.layers:
            if not isinstance(find_layer(model, name), nn.Conv2d):
                raise SpecError(f"layer '{name}' is not a conv layer; the conv layers are: "
                                f"{', '.join(conv_layers(model)) or 'none'}")
        self.fields = {name: receptive_field(model, name) for name in self.layers}
        self.k, self.count, self.chunk = max(1, int(k)), int(count), max(1, int(chunk))
        self.chunks = (self.count + self.chunk - 1) // self.chunk
        self._next = 0
        # chunk number -> layer -> (activations, indices, rows, cols), each (F, <=k)
        self._found: dict[int, dict[str, tuple[np.ndarray, ...]]] = {}

    def next_chunk(self) -> int:
        """The chunk to run next, round-robin (0, 1, ..., chunks - 1, 0, ...)."""
        c = self._next
        self._next = (self._next + 1) % self.chunks
        return c

    def chunk_slice(self, c: int) -> slice:
        """The images of chunk ``c``."""
        return slice(c * self.chunk, min(self.count, (c + 1) * self.chunk))

    @property
    def covered(self) -> int:
        """How many chunks have candidates (the set is covered once this equals :attr:`chunks`)."""
        return len(self._found)

    def update(self, model: nn.Module, images: torch.Tensor | np.ndarray, c: int | None = None) -> int:
        """Run chunk ``c`` (default the next, round-robin) of ``images`` (the whole set, normalised as for
        training) through ``model`` and replace that chunk's candidates. Returns the chunk run."""
        c = self.next_chunk() if c is None else int(c)
        part = self.chunk_slice(c)
        xb = as_batch(images[part], model)
        modules = {name: find_layer(model, name) for name in self.layers}
        captured: dict[str, torch.Tensor] = {}

        def hook(name: str):
            def record(module: nn.Module, args: tuple, output: object) -> None:
                captured[name] = output

            return record

        handles = [module.register_forward_hook(hook(name)) for name, module in modules.items()]
        try:
            with eval_mode(model), torch.no_grad():
                try:
                    model(xb)
                except RuntimeError as err:
                    raise run_failed(xb, None, err) from err
        finally:
            for handle in handles:
                handle.remove()
        found = {}
        for name in self.layers:
            acts, idx, rows, cols = _best_per_image(captured[name], self.k)
            found[name] = (acts, idx + part.start, rows, cols)
        self._found[c] = found
        return c

    def result(self, layer: str) -> TopPatches:
        """The merged top patches of ``layer`` from every chunk run so far."""
        if layer not in self.fields:
            raise SpecError(f"layer '{layer}' is not tracked; the tracked layers are: {', '.join(self.layers)}")
        parts = [found[layer] for _, found in sorted(self._found.items())]
        if not parts:
            raise SpecError("no images have been run yet")
        acts, idx, rows, cols = (np.concatenate([p[i] for p in parts], axis=1) for i in range(4))
        # highest activation first; ties go to the lower image index, so the answer is deterministic
        order = np.lexsort((idx, -acts), axis=1)[:, : self.k]
        pick = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
        acts, idx, rows, cols = pick(acts), pick(idx), pick(rows), pick(cols)
        missing = self.k - acts.shape[1]
        if missing > 0:
            pad = ((0, 0), (0, missing))
            acts = np.pad(acts, pad, constant_values=-np.inf)
            idx, rows, cols = (np.pad(a, pad, constant_values=-1) for a in (idx, rows, cols))
        return TopPatches(layer, acts.astype(np.float32), idx, rows, cols, self.fields[layer])


def top_patches(model: nn.Module, images: torch.Tensor | np.ndarray, layer: str, k: int = DEFAULT_K,
                chunk: int = CHUNK) -> TopPatches:
    """The top ``k`` patches of every filter of conv ``layer`` over all of ``images`` (N, C, H, W), normalised
    as for training: one pass, chunk by chunk."""
    tracker = TopPatchTracker(model, len(images), [layer], k, chunk)
    for c in range(tracker.chunks):
        tracker.update(model, images, c)
    return tracker.result(layer)
