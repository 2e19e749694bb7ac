"""Optimizers and learning-rate schedules of the tutorial recipes."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from cnnviz.config import OptimizerConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam, Adadelta or RMSprop, with Keras' epsilon conventions."""
    cfg.validate()
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, rho=cfg.rho, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.rho, eps=cfg.eps, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)


def learning_rate(cfg: OptimizerConfig, step: int, epoch: int) -> float:
    """The learning rate for a batch, from the 0-based global `step` and 0-based `epoch`.

    constant:    lr
    step:        lr * gamma ** (epoch // step_epochs)
    exponential: lr * gamma ** (step / decay_steps)                       (TensorFlow's exponential_decay)
    gorner:      lr_min + (lr - lr_min) * exp(-step / decay_steps)         (Görner's 99% challenge)
    """
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** (epoch // cfg.step_epochs)
    if cfg.schedule == "exponential":
        return cfg.lr * cfg.gamma ** (step / cfg.decay_steps)
    if cfg.schedule == "gorner":
        return cfg.lr_min + (cfg.lr - cfg.lr_min) * math.exp(-step / cfg.decay_steps)
    return cfg.lr


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
