"""The tutorial presets: each reproduces one tutorial's model exactly, with its recipe as defaults.

Sources
-------
- CNTK 103D "Convolutional Neural Network with MNIST": two conv models trained with plain SGD,
  lr 0.2, minibatch 64, 10 sweeps, pixels scaled to [0, 1].
- The Keras/PyTorch "basic CNN" post (Keras' mnist_cnn architecture): Adam, batch 128, validation on a
  stratified 20% of the test set.
- The CNN-vs-dense exercise: every model trains on a stratified 4,000-example subset and compares
  scaling with standardization; the baseline is a dense net with batch norm and dropout.
- M. Görner, "TensorFlow and deep learning, without a PhD": Adam with lr = 0.0001 + 0.003 * exp(-step/2000),
  batch 100; the 99% challenge adds bigger kernels and dropout (pkeep 0.75).
- The Keras "six vs not-six" notebook: a one-conv network on the binary task, SGD lr 0.1, momentum 0.9,
  Nesterov; its exercise is a deeper network trained with Adadelta.
- A. Karpathy's ConvNetJS CIFAR-10 demo (https://cs.stanford.edu/people/karpathy/convnetjs/demo/cifar10.html):
  conv 5x5x16 relu, pool 2; conv 5x5x20 relu, pool 2; conv 5x5x20 relu, pool 2; softmax 10, all
  convolutions padded by 2 ('same'); trainer adadelta, batch 4, l2_decay 0.0001 (ConvNetJS's defaults
  rho 0.95, eps 1e-6). ConvNetJS adds ``l2_decay * w`` to the *summed* batch gradient and then divides by
  the batch size, so PyTorch's weight decay on the mean gradient is 0.0001 / 4 = 2.5e-5 (ConvNetJS exempts the
  biases, cnnviz's weight decay covers them too); its Adadelta step is PyTorch's with lr 1. The demo also
  flips images and shifts them by up to 2 pixels while training; cnnviz does not. Its figure, "about 80%
  after a long run in the browser", is quoted from issue 16's summary of the demo and was not checked
  against the page offline, nor reproduced here (see docs/benchmarks.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from cnnviz.config import DataConfig, OptimizerConfig, Recipe, TrainConfig
from cnnviz.errors import ConfigError
from cnnviz.models import ModelSpec, act, batchnorm, conv, dense, dropout, maxpool


@dataclass(frozen=True)
class Preset:
    """A named tutorial model with its training recipe and the accuracy the tutorial reports."""

    name: str
    title: str
    source: str
    spec: ModelSpec
    recipe: Recipe
    reported_accuracy: float | None  # test accuracy the tutorial reports (fraction), None if it gives none
    reported_note: str = ""


def _recipe(optimizer: OptimizerConfig, epochs: int, batch: int, **data: object) -> Recipe:
    return Recipe(data=DataConfig(**data), optimizer=optimizer, train=TrainConfig(epochs=epochs, batch_size=batch))


_GORNER_LR = OptimizerConfig(name="adam", lr=0.003, schedule="gorner", lr_min=0.0001, decay_steps=2000)

_PRESETS = (
    Preset(
        "cntk-conv", "CNTK 103D: two strided convolutions", "CNTK 103D",
        ModelSpec((conv(8, 5, 2, "same"), conv(16, 5, 2, "same"), dense(10))),
        _recipe(OptimizerConfig(name="sgd", lr=0.2), epochs=10, batch=64, validation="none"),
        0.9843,
    ),
    Preset(
        "cntk-pool", "CNTK 103D: convolutions with max pooling", "CNTK 103D",
        ModelSpec((conv(8, 5, 1, "same"), maxpool(2), conv(16, 5, 1, "same"), maxpool(3), dense(10))),
        _recipe(OptimizerConfig(name="sgd", lr=0.2), epochs=10, batch=64, validation="none"),
        0.9895,
    ),
    Preset(
        "basic-cnn", "Basic CNN (Keras/PyTorch post)", "Keras/PyTorch basic CNN post",
        ModelSpec((
            conv(32, 3), conv(64, 3), maxpool(2), dropout(0.25),
            dense(128, "relu"), dropout(0.5), dense(10),
        )),
        _recipe(OptimizerConfig(name="adam", lr=0.001), epochs=5, batch=128, validation="test"),
        0.9875, "98.7-98.8%",
    ),
    Preset(
        "dense-baseline", "Dense baseline with batch norm (4,000 examples)", "CNN-vs-dense exercise",
        ModelSpec((
            dense(500), batchnorm(), act("relu"), dropout(0.5),
            dense(50), batchnorm(), act("relu"), dropout(0.5), dense(10),
        )),
        _recipe(OptimizerConfig(name="adam", lr=0.001), epochs=20, batch=32,
                train_subset=4000, normalization="standardize"),
        0.91, "~91% on 4,000 training examples",
    ),
    Preset(
        "cnn1", "One convolution (4,000 examples)", "CNN-vs-dense exercise",
        ModelSpec((conv(32, 3, 1, "same"), dense(10))),
        _recipe(OptimizerConfig(name="adam", lr=0.001), epochs=20, batch=32,
                train_subset=4000, normalization="standardize"),
        None,
    ),
    Preset(
        "cnn2-bn", "Four convolutions with batch norm (4,000 examples)", "CNN-vs-dense exercise",
        ModelSpec((
            conv(32, 3, 1, "same", None), batchnorm(), act("relu"),
            conv(32, 3, 1, "same", None), batchnorm(), act("relu"), maxpool(2),
            conv(64, 3, 1, "same", None), batchnorm(), act("relu"),
            conv(64, 3, 1, "same", None), batchnorm(), act("relu"), maxpool(2),
            dense(200), batchnorm(), act("relu"), dropout(0.5), dense(10),
        )),
        _recipe(OptimizerConfig(name="adam", lr=0.001), epochs=20, batch=32,
                train_subset=4000, normalization="standardize"),
        None,
    ),
    Preset(
        "gorner", "Görner: three convolutions", "TensorFlow without a PhD",
        ModelSpec((
            conv(4, 5, 1, "same"), conv(8, 5, 2, "same"), conv(12, 4, 2, "same"),
            dense(200, "relu"), dense(10),
        )),
        _recipe(_GORNER_LR, epochs=10, batch=100, validation="none"),
        0.989, "~98.9%",
    ),
    Preset(
        "gorner-dropout", "Görner: the 99% challenge (bigger kernels, dropout)", "TensorFlow without a PhD",
        ModelSpec((
            conv(6, 6, 1, "same"), conv(12, 5, 2, "same"), conv(24, 4, 2, "same"),
            dense(200, "relu"), dropout(0.25), dense(10),
        )),
        _recipe(_GORNER_LR, epochs=15, batch=100, validation="none"),
        0.993,
    ),
    Preset(
        "six-or-not", "Six vs not-six (binary)", "Keras six vs not-six notebook",
        ModelSpec((conv(32, 3), dense(2)), num_classes=2),
        _recipe(OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True), epochs=3, batch=128,
                one_vs_rest=6, validation="none"),
        0.9685, "96.85% (binary task)",
    ),
    Preset(
        "keras-deep", "Deeper Keras network (Adadelta)", "Keras six vs not-six notebook, exercise",
        ModelSpec((
            conv(32, 3, 1, "same"), conv(32, 3), maxpool(2), dropout(0.25),
            conv(64, 3, 1, "same"), conv(64, 3), maxpool(2), dropout(0.25),
            dense(512, "relu"), dropout(0.5), dense(10),
        )),
        _recipe(OptimizerConfig(name="adadelta", lr=1.0, rho=0.95, eps=1e-7), epochs=12, batch=128,
                validation="none"),
        None,
    ),
)

_CONVNETJS_CIFAR = Preset(
    "convnetjs-cifar", "ConvNetJS CIFAR-10 demo (colour, 3 convolutions)", "ConvNetJS CIFAR-10 demo",
    ModelSpec((
        conv(16, 5, 1, "same"), maxpool(2), conv(20, 5, 1, "same"), maxpool(2),
        conv(20, 5, 1, "same"), maxpool(2), dense(10),
    ), input_shape=(3, 32, 32)),
    _recipe(OptimizerConfig(name="adadelta", lr=1.0, rho=0.95, eps=1e-6, weight_decay=2.5e-5), epochs=10, batch=4,
            dataset="cifar10", validation="none"),
    0.80, "~80% after a long run in the browser, with flips and shifts (not reproduced here)",
)

PRESETS: dict[str, Preset] = {p.name: p for p in (*_PRESETS, _CONVNETJS_CIFAR)}
DEFAULT_PRESET = "gorner"


def get_preset(name: str) -> Preset:
    """The preset called `name`; ConfigError listing the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
