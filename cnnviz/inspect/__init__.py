"""Looking inside a model: activations, filters, saliency, drawn digits and mistakes.

Pure torch/numpy (no Qt), shared by the window and the CLI. Every function that runs a model does it
in eval mode, restores the model's train/eval mode afterwards and removes any hook it added.
"""
from cnnviz.inspect.activations import LayerActivation, feature_maps, predict_proba
from cnnviz.inspect.canvas import render_strokes, strokes_to_mnist, to_mnist
from cnnviz.inspect.filters import conv_weights, filter_change, filter_mosaic
from cnnviz.inspect.mistakes import (
    cell_examples,
    confusion_matrix,
    most_confident_mistakes,
    most_confused_pairs,
    per_class_accuracy,
)
from cnnviz.inspect.mosaic import Mosaic, activation_mosaic, make_mosaic
from cnnviz.inspect.saliency import grad_cam, saliency

__all__ = [
    "LayerActivation",
    "Mosaic",
    "activation_mosaic",
    "cell_examples",
    "confusion_matrix",
    "conv_weights",
    "feature_maps",
    "filter_change",
    "filter_mosaic",
    "grad_cam",
    "make_mosaic",
    "most_confident_mistakes",
    "most_confused_pairs",
    "per_class_accuracy",
    "predict_proba",
    "render_strokes",
    "saliency",
    "strokes_to_mnist",
    "to_mnist",
]
