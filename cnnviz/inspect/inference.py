"""A model ready to answer for one image at a time: its weights, the data's normalisation, its class names.

The window's drawing, the feature maps' input and `cnnviz predict` all go through it, so an image is
normalised and checked the same way everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.data.prepare import Normalization
from cnnviz.errors import SpecError
from cnnviz.inspect.activations import predict_proba
from cnnviz.inspect.embedding import predict_and_embed


@dataclass(frozen=True)
class InferenceModel:
    """`model` (in eval mode, on the CPU), the `normalization` its training data had, and its class names."""

    model: nn.Module
    normalization: Normalization = Normalization()
    class_names: tuple[str, ...] = ()

    @classmethod
    def from_checkpoint(cls, checkpoint) -> "InferenceModel":
        """The model of a saved run (a :class:`~cnnviz.training.checkpoint.Checkpoint`)."""
        return cls(checkpoint.build_model(), checkpoint.normalization, tuple(checkpoint.class_names))

    @property
    def channels(self) -> int:
        """1 for a grayscale model, 3 for one trained on colour images."""
        shape = getattr(getattr(self.model, "spec", None), "input_shape", (1, 28, 28))
        return int(shape[0])

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the images the model takes."""
        shape = getattr(getattr(self.model, "spec", None), "input_shape", (1, 28, 28))
        return int(shape[1]), int(shape[2])

    def to_tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """An H x W (gray) or H x W x 3 (RGB) image in [0, 1] as the (1, C, H, W) input the model sees.

        A gray image given to a colour model is copied into its 3 channels (a drawing on a model trained on
        colour images); a colour image given to a gray model is averaged into one.
        Raises SpecError when the image is not of the model's input size (said plainly, not as a matrix-size
        error from inside the model)."""
        a = np.asarray(pixels, dtype=np.float32)
        if a.ndim in (2, 3) and a.shape[:2] != self.input_size:
            raise SpecError(f"this image is {a.shape[0]}x{a.shape[1]} but the model takes "
                            f"{self.input_size[0]}x{self.input_size[1]} images")
        if a.ndim == 3:
            a = a.mean(axis=2) if self.channels == 1 else a
        elif a.ndim == 2 and self.channels == 3:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.ndim == 3:
            return self.normalization.apply(np.ascontiguousarray(a.transpose(2, 0, 1))[None])
        return self.normalization.apply(a[None])

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """The class probabilities (C,) of an H x W [0, 1] image."""
        return np.asarray(predict_proba(self.model, self.to_tensor(pixels))).reshape(-1)

    def predict_embedded(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The class probabilities (C,) and the embedding (D,; None without a dense layer) of an H x W [0, 1]
        image, from one forward pass."""
        return predict_and_embed(self.model, self.to_tensor(pixels))
