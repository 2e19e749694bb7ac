"""Per-layer statistics of a training run: what the distributions and health views draw over time.

For every layer with weights: a histogram of the weights and of the last step's gradients, their norms, and
the update/weight ratio of one step (how far one optimizer step moved the weights, relative to their size;
about 1e-3 is healthy). For every layer that applies an activation: the fraction of *dead* ReLU units (a
channel or neuron whose output is 0 for every example and position of the batch) and of *saturated*
sigmoid/tanh units (95% or more of its outputs in the flat ends: beyond 0.01/0.99 for sigmoid, +-0.99 for
tanh), and the activations' mean and spread.

Taking them is two ticks between batches, never a per-step cost: :meth:`LayerStats.arm` (after step s) copies
the weights and hooks the activation layers for one forward pass; :meth:`LayerStats.collect` (after step
s + 1) reads that step's gradients, its update and the hooked activations, and unhooks.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

HISTOGRAM_BINS = 32
STAT_NAMES = ("weight_hist", "grad_hist", "weight_norm", "grad_norm", "update_ratio", "dead_fraction",
              "saturated_fraction", "activation_mean", "activation_std")
_SATURATED_SHARE = 0.95


HISTOGRAM_SAMPLE = 1 << 16  # a larger tensor's histogram is taken over an evenly strided sample of this many


def _histogram(values: torch.Tensor) -> dict:
    """Counts in 32 equal bins from the smallest to the largest finite value. A tensor of more than
    ``HISTOGRAM_SAMPLE`` values is sampled evenly (every k-th value; the counts are the sample's): a
    dense layer of 235,200 weights then costs a quarter of the time, and its shape is the same."""
    v = values.detach().reshape(-1)
    if v.numel() > HISTOGRAM_SAMPLE:
        v = v[::-(-v.numel() // HISTOGRAM_SAMPLE)]
    v = v.float()
    finite = v[torch.isfinite(v)]
    if finite.numel() == 0:
        return {"counts": [0] * HISTOGRAM_BINS, "low": 0.0, "high": 0.0}
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        high = low + 1e-12
    counts = torch.histc(finite, bins=HISTOGRAM_BINS, min=low, max=high)
    return {"counts": [int(c) for c in counts.tolist()], "low": low, "high": high}


def _number(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


class LayerStats:
    """Takes one record of statistics of `model` over two consecutive steps (see the module's docstring)."""

    def __init__(self, model: nn.Module) -> None:
        root = getattr(model, "layers", model)
        self.weighted = [(name, m) for name, m in root.named_children() if getattr(m, "weight", None) is not None]
        self.activations = [(name, m) for name, m in root.named_children()
                            if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Sigmoid, nn.Tanh))]
        self._before: dict[str, torch.Tensor] = {}
        self._hooks: list = []
        self._seen: dict[str, dict] = {}
        self.armed = False

    def arm(self) -> None:
        """After step s: remember the weights and listen to the activations of the next forward pass."""
        self._before = {name: m.weight.detach().clone() for name, m in self.weighted}
        self._seen = {}
        for name, module in self.activations:
            self._hooks.append(module.register_forward_hook(self._hook(name, module)))
        self.armed = True

    def _hook(self, name: str, module: nn.Module):
        def hook(_module, _inputs, output) -> None:
            if name in self._seen or not torch.is_tensor(output):
                return
            with torch.no_grad():
                self._seen[name] = _activation_figures(module, output.detach())
        return hook

    def disarm(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks, self._before, self.armed = [], {}, False

    def collect(self) -> dict[str, dict]:
        """After step s + 1: the record, layer name -> figures (JSON-ready; non-finite figures are None)."""
        layers: dict[str, dict] = {}
        with torch.no_grad():
            for name, module in self.weighted:
                w = module.weight.detach()
                norm = float(w.float().norm())
                figures = {"weight_hist": _histogram(w), "weight_norm": _number(norm)}
                grad = module.weight.grad
                if grad is not None:
                    figures["grad_hist"] = _histogram(grad)
                    figures["grad_norm"] = _number(float(grad.float().norm()))
                before = self._before.get(name)
                if before is not None:
                    figures["update_ratio"] = _number(float((w - before).float().norm()) / norm) if norm > 0 else None
                layers[name] = figures
        for name, figures in self._seen.items():
            layers.setdefault(name, {}).update(figures)
        self.disarm()
        return layers


def _activation_figures(module: nn.Module, out: torch.Tensor) -> dict:
    """Mean and spread of one batch's activations, and the dead or saturated share of its units."""
    out = out.float()
    figures = {"activation_mean": _number(float(out.mean())), "activation_std": _number(float(out.std()))
               if out.numel() > 1 else 0.0}
    per_unit = out.transpose(0, 1).reshape(out.shape[1], -1) if out.ndim >= 2 else out.reshape(1, -1)
    if isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.ELU)):
        dead = (per_unit <= 0).all(dim=1) if isinstance(module, nn.ReLU) else (per_unit <= 0).all(dim=1)
        figures["dead_fraction"] = float(dead.float().mean())
    elif isinstance(module, nn.Sigmoid):
        flat = ((per_unit < 0.01) | (per_unit > 0.99)).float().mean(dim=1)
        figures["saturated_fraction"] = float((flat >= _SATURATED_SHARE).float().mean())
    elif isinstance(module, nn.Tanh):
        flat = (per_unit.abs() > 0.99).float().mean(dim=1)
        figures["saturated_fraction"] = float((flat >= _SATURATED_SHARE).float().mean())
    return figures


def histogram_matrix(records: list[dict], layer: str, which: str = "weight_hist",
                     bins: int = 64) -> tuple[np.ndarray, float, float, np.ndarray]:
    """The histograms of `layer` over time on one common value axis, for a heatmap.

    Returns ``(matrix, low, high, steps)``: matrix[i, j] is the share of record i's values in bin j of
    ``bins`` equal bins from `low` to `high` (the range over all records); each record's own bins are
    spread onto the common ones by their centres."""
    rows = [(r["step"], r["layers"][layer][which]) for r in records
            if layer in r.get("layers", {}) and which in r["layers"][layer]]
    if not rows:
        return np.zeros((0, bins), np.float32), 0.0, 1.0, np.zeros(0, np.int64)
    low = min(h["low"] for _, h in rows)
    high = max(h["high"] for _, h in rows)
    if high <= low:
        high = low + 1e-9
    matrix = np.zeros((len(rows), bins), np.float32)
    for i, (_, h) in enumerate(rows):
        counts = np.asarray(h["counts"], np.float64)
        if counts.sum() <= 0:
            continue
        edges = np.linspace(h["low"], h["high"], len(counts) + 1)
        centres = (edges[:-1] + edges[1:]) / 2
        index = np.clip(((centres - low) / (high - low) * bins).astype(np.int64), 0, bins - 1)
        np.add.at(matrix[i], index, counts / counts.sum())
    return matrix, low, high, np.array([s for s, _ in rows], np.int64)
