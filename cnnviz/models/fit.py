"""Fit a model spec to the data it will see: the input shape and class count come from the data.

The presets are written for MNIST's 1x28x28 images, but nothing in them depends on that size except
the dense layer after the convolutions, whose input width :func:`~cnnviz.models.shapes.infer_shapes`
computes from the input shape. So a preset takes any image size its layers allow; where they do not
(a 3x3 'valid' convolution on 1x1 images), the error names the data's image size and the layer.

Every place that pairs a spec with data (the CLI's train and evaluate, the Trainer, the window) goes
through here, so they all accept and refuse the same things with the same words.
"""
from __future__ import annotations

from typing import Any

from cnnviz.errors import SpecError
from cnnviz.models.shapes import infer_shapes
from cnnviz.models.spec import ModelSpec


def image_shape(data: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` of the images of a :class:`~cnnviz.data.prepare.PreparedData`.

    Read from the normalized training tensor ``(N, C, H, W)``, which keeps its shape even when empty.
    """
    return tuple(int(v) for v in data.train.images.shape[1:])


def shape_text(shape: tuple[int, ...]) -> str:
    """``"1x28x28"``."""
    return "x".join(str(int(v)) for v in shape)


def _images_text(shape: tuple[int, int, int]) -> str:
    # "1x1 images" for the usual one channel, "3x32x32 images" otherwise.
    channels, height, width = shape
    return f"{height}x{width} images" if channels == 1 else f"{shape_text(shape)} images"


def fit_to_images(spec: ModelSpec, shape: tuple[int, int, int], num_classes: int | None = None,
                  what: str = "the model") -> ModelSpec:
    """Copy of ``spec`` that takes ``shape`` images (and has ``num_classes`` outputs), checked up front.

    Parameters
    ----------
    spec : ModelSpec
        The model as written (a preset's spec takes 1x28x28 images).
    shape : (C, H, W)
        The images it will see.
    num_classes : int, optional
        Outputs it needs; None keeps the spec's.
    what : str
        How the error names the model, e.g. ``"preset 'gorner'"``.

    Returns
    -------
    ModelSpec
        ``spec`` itself when nothing changes, else the adapted copy (the dense layer after the
        convolutions is sized by :func:`~cnnviz.models.shapes.infer_shapes` when the model is built).

    Raises
    ------
    SpecError
        The layers cannot take images of this size, e.g. ``"preset 'basic-cnn' cannot take the data's
        1x1 images: layer 1 'conv1': kernel 3 is larger than its 1x1 input padded by 0"``.
    """
    fitted = spec
    if tuple(spec.input_shape) != tuple(shape):
        fitted = fitted.with_input_shape(shape)
    if num_classes is not None and num_classes != spec.num_classes:
        fitted = fitted.with_num_classes(num_classes)
    try:
        infer_shapes(fitted)
    except SpecError as exc:
        raise SpecError(f"{what} cannot take the data's {_images_text(tuple(shape))}: {exc}") from None
    return fitted


def spec_for_data(spec: ModelSpec, data: Any, what: str = "the model") -> ModelSpec:
    """:func:`fit_to_images` with the image shape and class count of prepared ``data``."""
    return fit_to_images(spec, image_shape(data), data.num_classes, what)


def input_mismatch(spec: ModelSpec, data: Any, whose: str = "the model") -> str | None:
    """Why ``spec`` cannot run on ``data`` as it is (another image size), or None.

    E.g. ``"the run's model takes 1x28x28 images but this data has 1x32x32 images"``: for a model
    whose weights are fixed (a saved run), which cannot be refitted.
    """
    have, need = image_shape(data), tuple(spec.input_shape)
    if have == need:
        return None
    return f"{whose} takes {shape_text(need)} images but this data has {shape_text(have)} images"
