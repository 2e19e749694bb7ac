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
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the images the model takes."""
        shape = getattr(getattr(self.model, "spec", None), "input_shape", (1, 28, 28))
        return int(shape[1]), int(shape[2])

    def to_tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """An H x W image in [0, 1] as the (1, 1, H, W) input the model sees.

        Raises SpecError when the image is not of the model's input size (said plainly, not as a matrix-size
        error from inside the model)."""
        a = np.asarray(pixels, dtype=np.float32)
        if a.ndim == 2 and a.shape != self.input_size:
            raise SpecError(f"this image is {a.shape[0]}x{a.shape[1]} but the model takes "
                            f"{self.input_size[0]}x{self.input_size[1]} images")
        return self.normalization.apply(a[None])

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """The class probabilities (C,) of an H x W [0, 1] image."""
        return np.asarray(predict_proba(self.model, self.to_tensor(pixels))).reshape(-1)
