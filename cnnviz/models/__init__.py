"""Model specs, shape inference, the torch builder and the summary table.

Pure torch/numpy: nothing here imports Qt.
"""
from cnnviz.models.build import CnnvizNet, build_model, count_parameters
from cnnviz.models.fit import fit_to_images, image_shape, input_mismatch, spec_for_data
from cnnviz.models.shapes import LayerShape, infer_shapes
from cnnviz.models.spec import (
    ACTIVATIONS,
    LAYER_KINDS,
    LayerSpec,
    ModelSpec,
    act,
    avgpool,
    batchnorm,
    conv,
    dense,
    dropout,
    flatten,
    maxpool,
)
from cnnviz.models.summary import ModelSummary, format_summary, summarize

__all__ = [
    "ACTIVATIONS",
    "LAYER_KINDS",
    "CnnvizNet",
    "LayerShape",
    "LayerSpec",
    "ModelSpec",
    "ModelSummary",
    "act",
    "avgpool",
    "batchnorm",
    "build_model",
    "conv",
    "count_parameters",
    "dense",
    "dropout",
    "fit_to_images",
    "flatten",
    "format_summary",
    "image_shape",
    "infer_shapes",
    "input_mismatch",
    "maxpool",
    "spec_for_data",
    "summarize",
]
