"""Filter surgery: zero, freeze, unfreeze or re-initialise one conv filter of a model that is training.

An operation is plain data (:class:`FilterOperation`), applied by the trainer between two batches and kept in
its state as a log (:class:`SurgeryLog`), so that a checkpoint or anchor knows which operations its weights
already carry and a replay from it applies the later ones at their steps: the timeline stays exact. A frozen
filter is held at its values after every optimizer step (momentum or weight decay would move it otherwise);
zeroing and re-initialising also clear the filter's optimizer state, so it starts fresh.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from cnnviz.errors import ConfigError

ACTIONS = ("zero", "freeze", "unfreeze", "reinit")
ACTION_WORDS = {"zero": "zeroed", "freeze": "froze", "unfreeze": "unfroze", "reinit": "re-initialised"}


@dataclass(frozen=True)
class FilterOperation:
    """One operation on filter ``index`` of conv layer ``layer``; ``step`` is the step after which it applied."""

    layer: str
    index: int
    action: str
    step: int = -1  # set by the trainer when it applies the operation

    def describe(self) -> str:
        """E.g. ``zeroed conv1 #3 at step 420``."""
        where = f" at step {self.step}" if self.step >= 0 else ""
        return f"{ACTION_WORDS.get(self.action, self.action)} {self.layer} #{self.index}{where}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: object) -> "FilterOperation":
        """An operation from JSON; anything malformed is a ConfigError."""
        if not isinstance(d, dict):
            raise ConfigError(f"a filter operation must be an object, got {type(d).__name__}")
        layer, index, action, step = d.get("layer"), d.get("index"), d.get("action"), d.get("step", -1)
        if not isinstance(layer, str) or not 0 < len(layer) <= 100:
            raise ConfigError("a filter operation needs the name of its layer")
        if not _is_int(index) or not 0 <= index < 1 << 20 or not _is_int(step) or not -1 <= step < 1 << 50:
            raise ConfigError(f"a filter operation has an impossible filter number or step ({index!r}, {step!r})")
        if action not in ACTIONS:
            raise ConfigError(f"unknown filter operation {str(action)[:20]!r}; known: {', '.join(ACTIONS)}")
        return cls(layer, int(index), action, int(step))


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def conv_layer(model: nn.Module, name: str) -> nn.Conv2d:
    """The conv layer ``name`` of ``model`` (a child of ``model.layers``); ConfigError names the ones there are."""
    root = getattr(model, "layers", model)
    convs = {n: m for n, m in root.named_children() if isinstance(m, nn.Conv2d)}
    if name not in convs:
        raise ConfigError(f"the model has no conv layer named '{name}'; its conv layers are: "
                          f"{', '.join(convs) or 'none'}")
    return convs[name]


def check_operation(model: nn.Module, op: FilterOperation) -> nn.Conv2d:
    """The layer ``op`` works on, after checking the layer, the filter number and the action."""
    if op.action not in ACTIONS:
        raise ConfigError(f"unknown filter operation '{op.action}'; known: {', '.join(ACTIONS)}")
    conv = conv_layer(model, op.layer)
    if not 0 <= op.index < conv.out_channels:
        raise ConfigError(f"{op.layer} has filters 0 to {conv.out_channels - 1}; there is no filter {op.index}")
    return conv


class SurgeryLog:
    """The operations a run has applied, in order, and the filters they left frozen."""

    def __init__(self, operations: list[FilterOperation] | None = None) -> None:
        self.operations: list[FilterOperation] = list(operations or [])
        self._held: list[tuple[torch.Tensor, int, torch.Tensor]] = []  # (parameter, filter, its frozen values)

    @property
    def frozen(self) -> tuple[tuple[str, int], ...]:
        """(layer, filter) of the filters frozen now, in the order they were frozen."""
        held: dict[tuple[str, int], None] = {}
        for op in self.operations:
            key = (op.layer, op.index)
            if op.action == "freeze":
                held[key] = None
            elif op.action in ("unfreeze", "reinit"):
                held.pop(key, None)
        return tuple(held)

    def to_json(self) -> list[dict]:
        return [op.to_dict() for op in self.operations]

    @classmethod
    def from_json(cls, data: object) -> "SurgeryLog":
        if not isinstance(data, list) or len(data) > 100_000:
            raise ConfigError("the filter operations must be a list")
        return cls([FilterOperation.from_dict(d) for d in data])

    def copy(self) -> "SurgeryLog":
        return SurgeryLog(self.operations)

    def apply(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, op: FilterOperation,
              seed: int) -> FilterOperation:
        """Apply ``op`` (its ``step`` set) to ``model`` and its optimizer's state, log it, and return it.

        ``seed`` (the run's) and the operation's place in the log seed a re-initialisation, so a replay draws
        the same values."""
        conv = check_operation(model, op)
        with torch.no_grad():
            if op.action in ("zero", "reinit"):
                _clear_optimizer_state(optimizer, conv, op.index)
            if op.action == "zero":
                conv.weight[op.index].zero_()
                if conv.bias is not None:
                    conv.bias[op.index].zero_()
            elif op.action == "reinit":
                _reinitialise(conv, op.index, seed * 1_000_003 + len(self.operations))
        self.operations.append(op)
        self.hold(model)
        return op

    def hold(self, model: nn.Module) -> None:
        """Take the frozen filters' current values as the ones to keep (after an operation or a resume)."""
        self._held = []
        for layer, index in self.frozen:
            conv = conv_layer(model, layer)
            for param in (conv.weight, conv.bias):
                if param is not None:
                    self._held.append((param, index, param.detach()[index].clone()))

    def restore_frozen(self) -> None:
        """Put the frozen filters back to their values (after an optimizer step). Cheap when none are frozen."""
        if self._held:
            with torch.no_grad():
                for param, index, values in self._held:
                    param[index].copy_(values)


def _clear_optimizer_state(optimizer, conv: nn.Conv2d, index: int) -> None:
    """Zero the filter's slice of every per-parameter optimizer buffer (momentum, Adam's moments)."""
    if optimizer is None:
        return
    for param in (conv.weight, conv.bias):
        if param is None:
            continue
        for value in optimizer.state.get(param, {}).values():
            if torch.is_tensor(value) and value.shape == param.shape:
                value[index].zero_()


def _reinitialise(conv: nn.Conv2d, index: int, seed: int) -> None:
    """PyTorch's own initialisation of a conv layer (uniform in +-1/sqrt(fan in)), for one filter."""
    generator = torch.Generator().manual_seed(seed % (1 << 63))
    fan_in = conv.weight[index].numel()
    bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
    w = torch.empty(conv.weight[index].shape).uniform_(-bound, bound, generator=generator)
    conv.weight[index].copy_(w.to(conv.weight.device, conv.weight.dtype))
    if conv.bias is not None:
        b = torch.empty(()).uniform_(-bound, bound, generator=generator)
        conv.bias[index].copy_(b.to(conv.bias.device, conv.bias.dtype))
