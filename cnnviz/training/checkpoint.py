"""Checkpoints: one safetensors file holding weights, optimizer state, history and the recipe as JSON.

Nothing from a file is ever unpickled or evaluated: tensors come from safetensors and everything else
from JSON in its header. Files are written atomically (temp file, fsync, rename), so a crash mid-save
leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from cnnviz import limits
from cnnviz.config import Recipe
from cnnviz.data.prepare import Normalization, PreparedData
from cnnviz.errors import CheckpointError, CnnvizError, ConfigError
from cnnviz.files import read_regular
from cnnviz.models import CnnvizNet, ModelSpec, build_model, summarize
from cnnviz.training.history import History
from cnnviz.training.surgery import FilterOperation, SurgeryLog
from cnnviz.validation import (
    check_fields, check_ranges, check_text_list, check_type, describe, parse_json, ranged,
)

FORMAT = "cnnviz-run"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass
class Checkpoint:
    """Everything needed to show a run again or to continue training it."""

    spec: ModelSpec
    recipe: Recipe
    normalization: Normalization
    class_names: tuple[str, ...]
    dataset: str
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None = None
    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    history: History = field(default_factory=History)
    rng: dict[str, torch.Tensor] = field(default_factory=dict)
    surgery: tuple[FilterOperation, ...] = ()  # the filter operations these weights already carry

    def build_model(self) -> CnnvizNet:
        """The model with the checkpoint's weights, in eval mode, on the CPU."""
        model = build_model(self.spec)
        model.load_state_dict(self.model_state)
        return model.eval()


def from_trainer(trainer) -> Checkpoint:
    """Capture a trainer's state (call from the training thread, or while it is not running)."""
    return Checkpoint(
        spec=trainer.spec, recipe=trainer.recipe, normalization=trainer.data.normalization,
        class_names=tuple(trainer.data.class_names), dataset=trainer.data.name,
        model_state={k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()},
        optimizer_state=trainer.optimizer.state_dict(), epoch=trainer.epoch, step=trainer.step_count,
        batch_in_epoch=trainer.batch_in_epoch, history=trainer.history,
        rng={"shuffle": trainer.shuffle.get_state(), "shuffle_epoch": trainer.epoch_shuffle_state,
             "torch": torch.get_rng_state()},
        surgery=tuple(trainer.surgery.operations),
    )


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to `path` atomically; returns the path."""
    path = Path(path)
    atomic_write_bytes(path, checkpoint_bytes(checkpoint))
    return path


def checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    """`checkpoint` as the bytes of a safetensors file (tensors copied: the trainer may go on at once)."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v.detach().cpu().contiguous().clone()
                                        for k, v in checkpoint.model_state.items()}
    for name, values in checkpoint.history.step_arrays().items():
        tensors[f"history.{name}"] = torch.from_numpy(values.copy())
    for name, state in checkpoint.rng.items():
        tensors[f"rng.{name}"] = state.clone()
    optimizer_json = None
    if checkpoint.optimizer_state is not None:
        optimizer_json = {"param_groups": checkpoint.optimizer_state["param_groups"], "state": {}}
        for index, entries in checkpoint.optimizer_state["state"].items():
            plain = {}
            for key, value in entries.items():
                if torch.is_tensor(value):
                    tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous().clone()
                else:
                    plain[key] = value
            optimizer_json["state"][str(index)] = plain
    meta = {
        "format": FORMAT, "version": str(VERSION), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "spec": json.dumps(checkpoint.spec.to_dict()), "recipe": json.dumps(checkpoint.recipe.to_dict()),
        "normalization": json.dumps(checkpoint.normalization.to_dict()),
        "class_names": json.dumps(list(checkpoint.class_names)), "dataset": checkpoint.dataset,
        "progress": json.dumps({"epoch": checkpoint.epoch, "step": checkpoint.step,
                                "batch_in_epoch": checkpoint.batch_in_epoch}),
        "history_epochs": json.dumps(checkpoint.history.epochs_json()),
        "test_accuracy": json.dumps(checkpoint.history.test_accuracy),
        "optimizer": json.dumps(optimizer_json),
    }
    if checkpoint.surgery:  # absent when none: older readers and files stay as they were
        meta["surgery"] = json.dumps([op.to_dict() for op in checkpoint.surgery])
    return st_save(tensors, metadata=meta)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temp file in the same folder, fsync it, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A run folder means its checkpoint file."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; every problem is a CheckpointError naming the file.

    Only a regular file of at most :data:`cnnviz.limits.MAX_CHECKPOINT_BYTES` is read; its JSON header
    (at most :data:`cnnviz.limits.MAX_CHECKPOINT_HEADER_BYTES`) and every metadata value are checked
    against their schema (types and ranges) before anything is built from them.
    """
    path = resolve_checkpoint_path(path)
    name = path.name
    raw = read_regular(path, limits.MAX_CHECKPOINT_BYTES, CheckpointError, "run file")
    if raw[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or raw[:2] == b"PK":
        raise CheckpointError(f"{name}: this is a pickle / torch.save file; cnnviz never unpickles files "
                              f"(unpickling can run arbitrary code). Use a cnnviz run file (.safetensors).")
    if len(raw) < 8:
        raise CheckpointError(f"{name}: not a cnnviz run file (only {len(raw)} bytes; truncated?)")
    header_len = int.from_bytes(raw[:8], "little")
    if header_len > min(len(raw) - 8, limits.MAX_CHECKPOINT_HEADER_BYTES):
        raise CheckpointError(f"{name}: not a readable cnnviz run file (its header claims {header_len:,} bytes; "
                              f"the file holds {len(raw) - 8:,} after the length, and at most "
                              f"{limits.MAX_CHECKPOINT_HEADER_BYTES:,} are read)")
    try:
        header = parse_json(raw[8:8 + header_len], "its header", CheckpointError)
        tensors = st_load(raw)
    except CheckpointError as exc:
        raise CheckpointError(f"{name}: not a readable cnnviz run file ({exc})") from None
    except (SafetensorError, ValueError, TypeError, RuntimeError, UnicodeDecodeError, OverflowError,
            MemoryError) as exc:
        raise CheckpointError(f"{name}: not a readable cnnviz run file (truncated or corrupt: {exc})") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a cnnviz run file (a safetensors file without cnnviz's header)")
    version = meta.get("version", "0")
    if not (isinstance(version, str) and version.isdigit() and len(version) <= 6):
        raise CheckpointError(f"{name}: unreadable format version {describe(version)}")
    if int(version) > VERSION:
        raise CheckpointError(f"{name}: written by a newer cnnviz (format version {version}; this version reads "
                              f"up to {VERSION}). Update cnnviz to open it.")
    try:
        return _decode(meta, tensors)
    except CnnvizError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:  # a check missing below; never expected
        raise CheckpointError(f"{name}: damaged header ({type(exc).__name__}: {str(exc)[:200]})") from None


@dataclass(frozen=True)
class _Progress:
    """Where a run stopped (the ``progress`` header entry)."""

    epoch: int = ranged(0, 0, 1_000_000_000, label="progress epoch")
    step: int = ranged(0, 0, 2**53, label="progress step")
    batch_in_epoch: int = ranged(0, 0, 2**53, label="progress batch in epoch")


_REQUIRED = object()


def _entry(meta: dict[str, Any], key: str, default: Any = _REQUIRED) -> Any:
    """The header entry ``key`` parsed as JSON (size- and depth-checked)."""
    if key not in meta:
        if default is _REQUIRED:
            raise CheckpointError(f"damaged header: it has no {key!r} entry")
        return default
    return parse_json(meta[key], f"damaged header: its {key!r} entry", CheckpointError)


def _decode(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Checkpoint:
    spec = ModelSpec.from_dict(_entry(meta, "spec"))
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _check_weights_match(spec, model_state)
    recipe = Recipe.from_dict(_entry(meta, "recipe")).validate()
    normalization = Normalization.from_dict(_entry(meta, "normalization"))
    class_names = check_text_list(_entry(meta, "class_names"), "class names", CheckpointError,
                                  count=spec.num_classes)
    dataset = check_type(meta.get("dataset", ""), str, "dataset name", CheckpointError)
    progress = _Progress(**check_fields(_Progress, _entry(meta, "progress"), CheckpointError, "progress"))
    check_ranges(progress, CheckpointError)
    optimizer = _decode_optimizer(_entry(meta, "optimizer", None), tensors)
    arrays = {}
    for key, value in tensors.items():
        if key.startswith("history."):
            if not value.is_floating_point():
                raise CheckpointError(f"history: {key} must hold numbers, got {value.dtype}")
            arrays[key[len("history."):]] = value.float().numpy()
    done = progress.step - progress.batch_in_epoch
    per_epoch = done // progress.epoch if progress.epoch > 0 and done > 0 else None  # for epochs saved without a step
    history = History.restore(arrays, _entry(meta, "history_epochs", []), _entry(meta, "test_accuracy", []),
                              steps_per_epoch=per_epoch)
    try:
        surgery = tuple(SurgeryLog.from_json(_entry(meta, "surgery", [])).operations)
    except ConfigError as exc:
        raise CheckpointError(f"damaged header: {exc}") from None
    rng = {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}
    expected_rng = torch.get_rng_state()
    for key, state in rng.items():
        if state.dtype != torch.uint8 or tuple(state.shape) != tuple(expected_rng.shape):
            raise CheckpointError(f"the random-generator state {key!r} is damaged (a {state.dtype} tensor of shape "
                                  f"{tuple(state.shape)}; expected uint8 of shape {tuple(expected_rng.shape)})")
    return Checkpoint(
        spec=spec, recipe=recipe, normalization=normalization, class_names=class_names, dataset=dataset,
        model_state=model_state, optimizer_state=optimizer, epoch=progress.epoch, step=progress.step,
        batch_in_epoch=progress.batch_in_epoch, history=history, rng=rng, surgery=surgery,
    )


def _decode_optimizer(plain: Any, tensors: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """The optimizer state dict from its JSON part and its ``optim.<index>.<entry>`` tensors.

    Only its shape is checked here (groups of plain values, states by parameter index); whether it
    fits the recipe's optimizer is checked when a run is continued (:func:`resume_trainer`).
    """
    if plain is None:
        return None
    if not isinstance(plain, dict) or set(plain) != {"param_groups", "state"}:
        raise CheckpointError(f"optimizer: must be an object with param_groups and state, got {describe(plain)}")
    groups, entries = plain["param_groups"], plain["state"]
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise CheckpointError(f"optimizer: param_groups must be a list of objects, got {describe(groups)}")
    for i, group in enumerate(groups, start=1):
        for key, value in group.items():
            if key == "params":
                if not isinstance(value, list) or not all(_is_index(v) for v in value):
                    raise CheckpointError(f"optimizer group {i}: params must be a list of parameter numbers")
            elif not (_is_plain(value) or (isinstance(value, list) and len(value) <= 16
                                            and all(_is_plain(v) for v in value))):
                raise CheckpointError(f"optimizer group {i}: {str(key)[:40]} must be a number, text or a short "
                                      f"list of numbers, got {describe(value)}")
    if not isinstance(entries, dict):
        raise CheckpointError(f"optimizer: state must be an object, got {describe(entries)}")
    state: dict[int, dict[str, Any]] = {}
    for index, values in entries.items():
        if not (index.isdigit() and len(index) <= 9) or not isinstance(values, dict) \
                or not all(_is_plain(v) for v in values.values()):
            raise CheckpointError(f"optimizer: damaged state entry {index[:20]!r}")
        state[int(index)] = dict(values)
    for key, value in tensors.items():
        if key.startswith("optim."):
            parts = key.split(".", 2)
            if len(parts) != 3 or not (parts[1].isdigit() and len(parts[1]) <= 9):
                raise CheckpointError(f"optimizer: unexpected tensor {key[:60]!r}")
            state.setdefault(int(parts[1]), {})[parts[2]] = value
    return {"state": state, "param_groups": groups}


def _is_plain(value: Any) -> bool:
    """A JSON scalar that is safe to hand to torch: null, true/false, a finite number or short text."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        try:
            return math.isfinite(value)
        except OverflowError:
            return False
    return isinstance(value, str) and len(value) <= 100


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def _check_weights_match(spec: ModelSpec, state: dict[str, torch.Tensor]) -> None:
    # Count before building: a tiny file must not make us allocate a model of 100M parameters. (A small
    # difference is left to the comparison below, which names the layer.)
    needed, held = summarize(spec).total, sum(int(v.numel()) for v in state.values())
    if needed > 2 * held + 1_000_000:
        raise CheckpointError(f"the weights do not match the model: the model has {needed:,} parameters, "
                              f"the file holds {held:,} weight values")
    expected = build_model(spec).state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError("the weights do not match the model: "
                              + (f"missing {', '.join(missing[:5])}" if missing else "")
                              + ("; " if missing and extra else "")
                              + (f"unexpected {', '.join(extra[:5])}" if extra else ""))
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(f"the weights do not match the model: {key} has shape "
                                  f"{tuple(state[key].shape)}, the model needs {tuple(value.shape)}")
        if not torch.isfinite(state[key].float()).all():
            raise CheckpointError(f"the weights contain NaN or infinite values ({key})")


def resume_trainer(checkpoint: Checkpoint, data: PreparedData, callbacks=(), recipe: Recipe | None = None,
                   distributed=None):
    """A Trainer that continues `checkpoint` where it stopped (optionally with a longer recipe; `distributed`: as
    one of several processes, see Trainer)."""
    from cnnviz.training.trainer import Trainer

    trainer = Trainer(checkpoint.spec, recipe or checkpoint.recipe, data, callbacks, distributed=distributed)
    trainer.model.load_state_dict(checkpoint.model_state)
    if checkpoint.optimizer_state is not None:
        _check_optimizer_fits(trainer.optimizer, checkpoint.optimizer_state)
        try:
            trainer.optimizer.load_state_dict(checkpoint.optimizer_state)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"the optimizer state does not fit this recipe's optimizer ({exc})") from None
    trainer.epoch, trainer.step_count, trainer.batch_in_epoch = checkpoint.epoch, checkpoint.step, \
        checkpoint.batch_in_epoch
    trainer.history = checkpoint.history
    trainer.surgery = SurgeryLog(list(checkpoint.surgery))
    try:
        trainer.surgery.hold(trainer.model)
    except ConfigError as exc:
        raise CheckpointError(f"damaged header: {exc}") from None
    try:
        if "shuffle" in checkpoint.rng:
            trainer.shuffle.set_state(checkpoint.rng["shuffle"])
            trainer.shuffle.get_state()
        if "shuffle_epoch" in checkpoint.rng:
            torch.Generator().set_state(checkpoint.rng["shuffle_epoch"])  # used later by the loop: try it now
            trainer.epoch_shuffle_state = checkpoint.rng["shuffle_epoch"]
        if "torch" in checkpoint.rng:
            torch.set_rng_state(checkpoint.rng["torch"])
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"the random-generator state is damaged ({str(exc)[:200]})") from None
    trainer.remember_good_state()
    return trainer


def _check_optimizer_fits(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Refuse an optimizer state whose settings or tensors would only fail later, inside a training step."""
    fresh = optimizer.state_dict()["param_groups"]
    if len(fresh) != len(state["param_groups"]):
        return  # load_state_dict says so itself
    for i, (ours, theirs) in enumerate(zip(fresh, state["param_groups"]), start=1):
        for key, value in ours.items():
            if key != "params" and key in theirs and not _same_kind(value, theirs[key]):
                raise CheckpointError(f"the optimizer state does not fit this recipe's optimizer (group {i}: {key} "
                                      f"is {describe(theirs[key])}, expected a value like {describe(value)})")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entries in state["state"].items():
        if index >= len(params):
            raise CheckpointError(f"the optimizer state does not fit this model (state for parameter {index}; "
                                  f"the model has {len(params)})")
        for key, value in entries.items():
            if torch.is_tensor(value) and value.dim() > 0 and tuple(value.shape) != tuple(params[index].shape):
                raise CheckpointError(f"the optimizer state does not fit this model ({key} of parameter {index} "
                                      f"has shape {tuple(value.shape)}, the parameter {tuple(params[index].shape)})")


def _same_kind(ours: Any, theirs: Any) -> bool:
    def kind(v: Any) -> Any:
        if v is None or isinstance(v, bool):
            return "flag"  # torch's optional switches are None or a bool
        if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1):
            return "number"
        if isinstance(v, (list, tuple)):
            return ("list", len(v), tuple(kind(x) for x in v))
        return type(v).__name__

    return kind(ours) == kind(theirs)
