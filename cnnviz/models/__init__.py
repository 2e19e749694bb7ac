"""Model specs, shape inference, the torch builder and the summary table.

Pure torch/numpy: nothing here imports Qt.
"""
from cnnviz.models.build import CnnvizNet, build_model, count_parameters
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
    "flatten",
    "format_summary",
    "infer_shapes",
    "maxpool",
    "summarize",
]
