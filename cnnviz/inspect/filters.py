"""Convolution filters as pictures, and how much each filter moved between two snapshots.

Layout of a layer's mosaic (:func:`filter_mosaic`): one tile per output filter. A first-layer filter
(one input channel) is its kh x kw kernel. A deeper filter has one kernel per input channel; its tile
shows all of them in a small near-square grid (1 px apart) rather than their mean over input channels,
because kernels of opposite sign cancel in the mean and what is left is mostly noise. Tiles are 2 px
apart, so filters stand out from the kernels inside them. ``filter_mosaic(w, out_channel=k)`` is the
same block for one filter, enlarged on its own (``tile_at`` then gives the input channel).
A colour model's first layer can also be drawn as RGB tiles (:func:`rgb_filter_mosaic`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.inspect._model import layer_root, to_numpy
from cnnviz.inspect.mosaic import Mosaic, grid_cols, layout, make_mosaic, normalise

_KERNEL_GAP = 1  # pixels between the kernels of one filter
_FILTER_GAP = 2  # pixels between filters, wider so each filter reads as one block


def conv_weights(model: nn.Module) -> list[tuple[str, np.ndarray]]:
    """``(layer name, float32 copy of the weight (out, in, kh, kw))`` for every ``Conv2d``, in order.

    Names are those of :func:`feature_maps` (children of ``model.layers``; dotted below them).
    """
    return [
        (name, to_numpy(module.weight))
        for name, module in layer_root(model).named_modules()
        if isinstance(module, nn.Conv2d)
    ]


def _weight_array(weight: np.ndarray | torch.Tensor) -> np.ndarray:
    w = to_numpy(weight)
    if w.ndim != 4 or 0 in w.shape:
        raise SpecError(f"a conv weight must have shape (out, in, kh, kw) with no zero size; got {w.shape}")
    return w


def filter_mosaic(
    weight: np.ndarray | torch.Tensor, out_channel: int | None = None, scale: float | None = None
) -> Mosaic:
    """A signed mosaic of a conv layer's filters, with one scale (max |w| of the layer) for all.

    Parameters
    ----------
    weight : array of shape (out, in, kh, kw)
    out_channel : int, optional
        None: one tile per output filter (see the module docstring for the layout). k: the ``in``
        kernels of filter k as tiles, in the same grid as its block in the overview.
    scale : float, optional
        The value shown as +1; default max |w| over the whole layer, so an enlarged filter keeps the
        colours it has in the overview.

    Returns
    -------
    Mosaic
        ``tile_at`` gives the output filter (overview) or the input channel (one filter).
    """
    w = _weight_array(weight)
    n_out, n_in, kh, kw = w.shape
    if scale is None:
        finite = np.where(np.isfinite(w), w, 0)
        scale = float(np.abs(finite).max())
    if out_channel is not None:
        if not 0 <= out_channel < n_out:
            raise SpecError(f"filter {out_channel} does not exist: the layer has {n_out} filters")
        return make_mosaic(w[out_channel], pad=_KERNEL_GAP, signed=True, scale=scale)
    if n_in == 1:
        return make_mosaic(w[:, 0], pad=_KERNEL_GAP, signed=True, scale=scale)
    # Each filter's kernels as a block (out, H, W), laid out like filter_mosaic(w, out_channel=k).
    values, _, _ = normalise(w, signed=True, scale=scale)
    blocks = layout(values, grid_cols(n_in, kh, kw, _KERNEL_GAP), _KERNEL_GAP)
    # Already in [-1, 1]: scale 1 keeps the values as they are; report the layer's scale.
    mosaic = make_mosaic(blocks, pad=_FILTER_GAP, signed=True, scale=1.0)
    return dataclasses.replace(mosaic, scale=float(scale))


def rgb_filter_mosaic(weight: np.ndarray | torch.Tensor, scale: float | None = None) -> tuple[Mosaic, np.ndarray]:
    """A colour model's first-layer filters as RGB tiles: one (kh, kw) tile per filter, its weights on the red,
    green and blue input channels as the tile's red, green and blue, ``0.5 + 0.5 * w / scale`` each.

    Grey is a filter that ignores colour (all zero); a reddish pixel means the filter responds to red
    there, a cyan one that it responds against red, as in the first-layer pictures of AlexNet.

    Parameters
    ----------
    weight : array of shape (out, 3, kh, kw)
    scale : float, optional
        The weight shown at full intensity; default max |w| over the layer.

    Returns
    -------
    (Mosaic, numpy.ndarray)
        The layout (its ``image`` is the tiles' mean over the channels, in [-1, 1], for ``tile_at`` and
        the gaps) and the float32 (H, W, 3) image in [0, 1]; padding is 0.5 (grey) there.
    """
    w = _weight_array(weight)
    if w.shape[1] != 3:
        raise SpecError(f"RGB filters need 3 input channels; this layer has {w.shape[1]}")
    if scale is None:
        finite = np.where(np.isfinite(w), w, 0)
        scale = float(np.abs(finite).max())
    planes = [make_mosaic(w[:, c], pad=_FILTER_GAP, signed=True, scale=scale) for c in range(3)]
    rgb = np.clip(0.5 + 0.5 * np.stack([p.image for p in planes], axis=-1), 0.0, 1.0).astype(np.float32)
    mean = np.ascontiguousarray(np.mean([p.image for p in planes], axis=0), dtype=np.float32)
    return dataclasses.replace(planes[0], image=mean, scale=float(planes[0].scale)), rgb


def filter_change(previous: np.ndarray | torch.Tensor, current: np.ndarray | torch.Tensor) -> np.ndarray:
    """Relative L2 change of each output filter: ``||W_t - W_{t-1}|| / (||W_{t-1}|| + 1e-12)``.

    Parameters
    ----------
    previous, current : arrays of shape (out, ...)
        The same layer's weights at two moments.

    Returns
    -------
    numpy.ndarray
        float64 of shape (out,); 0 for an unchanged filter.
    """
    prev = to_numpy(previous, np.float64)
    cur = to_numpy(current, np.float64)
    if prev.shape != cur.shape or prev.ndim < 1:
        raise SpecError(f"cannot compare weights of shape {prev.shape} with weights of shape {cur.shape}")
    prev = prev.reshape(prev.shape[0], -1)
    cur = cur.reshape(cur.shape[0], -1)
    return np.linalg.norm(cur - prev, axis=1) / (np.linalg.norm(prev, axis=1) + 1e-12)
