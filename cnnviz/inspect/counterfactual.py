""""What would make it a 3?": the smallest change of an image that makes the model answer a chosen class.

A targeted, minimal-L2 search in pixel space ([0, 1], ink = 1), for several target classes at once (a batch):

1. gradient steps of fixed L2 length on the target's cross-entropy, each followed by a projection back to
   [0, 1] (and to the allowed ``mask``), until the image *as it will be read* (``prepare``: by default put on
   the 8-bit grid of a PNG) gets the target with a logit ``margin`` over every other class;
2. then the change is shrunk: the smallest fraction of it (bisection) that still passes the same test.

The margin keeps the answer through an 8-bit round trip and small resampling; the size of the change (its L2
norm in pixel units) is a robustness figure: how far the image is from being read as that class.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.data.prepare import Normalization
from cnnviz.errors import ConfigError, SpecError
from cnnviz.inspect._model import eval_mode, model_device, run_failed

DEFAULT_MARGIN = 1.0  # target logit over the runner-up: ~73 % of a two-way split, and it survives 8-bit rounding
DEFAULT_STEP = 0.05  # L2 length of one gradient step, in pixel units
DEFAULT_MAX_STEPS = 400
_SHRINK_ROUNDS = 12


@dataclass(frozen=True, eq=False)
class Counterfactual:
    """The changed image for one target class.

    ``image`` is float32 (H, W) in [0, 1] on the 8-bit grid; ``difference`` = ``image`` - the original;
    ``l2`` its Euclidean norm; ``probability`` the target's probability for the image as read (``prepare``d);
    ``success`` whether that reading is the target with the margin (if not, ``image`` is the last try).
    """

    target: int
    success: bool
    image: np.ndarray
    difference: np.ndarray
    l2: float
    probability: float
    prediction: int
    steps: int


def quantize(image: np.ndarray) -> np.ndarray:
    """``image`` clipped to [0, 1] and rounded to the 256 levels of an 8-bit file."""
    return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def counterfactuals(model: nn.Module, normalization: Normalization, image: np.ndarray, targets: Sequence[int], *,
                    margin: float = DEFAULT_MARGIN, step: float = DEFAULT_STEP,
                    max_steps: int = DEFAULT_MAX_STEPS, mask: np.ndarray | None = None,
                    prepare: Callable[[np.ndarray], np.ndarray | None] | None = None) -> list[Counterfactual]:
    """One :class:`Counterfactual` per class of ``targets`` for ``image`` (H, W) in [0, 1].

    ``normalization`` turns pixels into the model's input (as for training). ``mask`` (H, W) in [0, 1], if
    given, scales how much each pixel may change (0: never). ``prepare`` maps a candidate to what the model
    will read (default :func:`quantize`; the CLI adds MNIST's centring as ``cnnviz predict`` does); it may
    return None (nothing to read: a failure).
    """
    x0 = np.asarray(image, dtype=np.float32)
    if x0.ndim != 2:
        raise SpecError(f"a counterfactual needs one (height, width) image; got shape {x0.shape}")
    x0 = np.clip(np.where(np.isfinite(x0), x0, 0.0), 0.0, 1.0).astype(np.float32)
    prepare = prepare or quantize
    device = model_device(model)
    targets = [int(t) for t in targets]
    with eval_mode(model), torch.no_grad():
        try:
            classes = int(model(_to_input(torch.from_numpy(x0)[None], normalization, device)).reshape(1, -1).shape[1])
        except RuntimeError as err:
            raise run_failed(torch.from_numpy(x0)[None, None], None, err) from err
    for t in targets:
        if not 0 <= t < classes:
            raise ConfigError(f"class {t} does not exist: the model has {classes} outputs (0 to {classes - 1})")
    if not targets:
        return []
    weight = torch.ones(x0.shape) if mask is None else torch.as_tensor(np.asarray(mask, np.float32))
    tgt = torch.tensor(targets, device=device)
    n = len(targets)
    x = torch.from_numpy(np.repeat(x0[None], n, axis=0)).to(device)
    found: list[np.ndarray | None] = [None] * n
    steps = [max_steps] * n

    def judge(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(passes (B,), probabilities (B, C)) of candidates (B, H, W) as they will be read."""
        read = [prepare(a) for a in batch]
        ok = np.array([r is not None for r in read])
        stack = np.stack([r if r is not None else np.zeros_like(x0) for r in read])
        with eval_mode(model), torch.no_grad():
            logits = model(_to_input(torch.from_numpy(stack.astype(np.float32)), normalization, device))
        return ok, logits.reshape(len(batch), -1).float().cpu().numpy()

    def passes(batch: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok, logits = judge(batch)
        t = np.array([targets[i] for i in which])
        own = logits[np.arange(len(which)), t]
        others = logits.copy()
        others[np.arange(len(which)), t] = -np.inf
        good = ok & (own - others.max(axis=1) >= margin)
        probs = _softmax(logits)
        return good, probs

    active = np.arange(n)
    for it in range(max_steps + 1):
        xa = x[active].clone().requires_grad_(True)
        with eval_mode(model), torch.enable_grad():
            logits = model(_to_input(xa, normalization, device)).reshape(len(active), -1)
            aim = tgt[torch.as_tensor(active, device=device)]
            raw = logits.detach().float().cpu().numpy()
            own = raw[np.arange(len(active)), aim.cpu().numpy()]
            raw[np.arange(len(active)), aim.cpu().numpy()] = -np.inf
            near = own - raw.max(axis=1) >= margin  # worth judging as it will be read
            good = np.zeros(len(active), bool)
            if near.any():
                good[near] = passes(xa.detach().cpu().numpy()[near], active[near])[0]
            for j in np.flatnonzero(good):
                found[active[j]], steps[active[j]] = xa[j].detach().cpu().numpy().copy(), it
            if good.all() or it == max_steps:
                break
            loss = torch.nn.functional.cross_entropy(logits, aim, reduction="none")[torch.as_tensor(~good)].sum()
            (grad,) = torch.autograd.grad(loss, xa)
        keep = ~good
        active, xa, grad = active[keep], xa[torch.as_tensor(keep)], grad[torch.as_tensor(keep)]
        grad = grad * weight.to(device)
        norm = grad.reshape(len(active), -1).norm(dim=1).clamp_min(1e-12)[:, None, None]
        with torch.no_grad():
            x[active] = (xa - step * grad / norm).clamp(0.0, 1.0).detach()

    # shrink each found change to the smallest fraction that still passes
    done = np.array([i for i in range(n) if found[i] is not None], dtype=np.int64)
    final = [quantize(x[i].detach().cpu().numpy()) for i in range(n)]
    if len(done):
        delta = np.stack([found[i] - x0 for i in done])
        lo, hi = np.zeros(len(done)), np.ones(len(done))
        for _ in range(_SHRINK_ROUNDS):
            mid = (lo + hi) / 2
            good, _ = passes(np.clip(x0[None] + mid[:, None, None] * delta, 0, 1), done)
            hi = np.where(good, mid, hi)
            lo = np.where(good, lo, mid)
        for j, i in enumerate(done):
            final[i] = quantize(x0 + hi[j] * delta[j])
    good, probs = passes(np.stack(final), np.arange(n))
    out = []
    for i, t in enumerate(targets):
        diff = (final[i] - x0).astype(np.float32)
        out.append(Counterfactual(t, bool(good[i]), final[i], diff, float(np.sqrt((diff.astype(np.float64) ** 2).sum())),
                                  float(probs[i, t]), int(probs[i].argmax()), steps[i]))
    return out


def counterfactual(model: nn.Module, normalization: Normalization, image: np.ndarray, target: int,
                   **options) -> Counterfactual:
    """The :class:`Counterfactual` of ``image`` for one ``target`` (see :func:`counterfactuals`)."""
    return counterfactuals(model, normalization, image, [target], **options)[0]


def _to_input(x: torch.Tensor, normalization: Normalization, device: torch.device) -> torch.Tensor:
    """Pixels (B, H, W) in [0, 1] as the model's (B, 1, H, W) input, differentiably."""
    x = x.to(device=device, dtype=torch.float32)
    if normalization.mean != 0.0 or normalization.std != 1.0:
        x = (x - normalization.mean) / normalization.std
    return x[:, None]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
