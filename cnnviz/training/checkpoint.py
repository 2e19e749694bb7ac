"""Checkpoints: one safetensors file holding weights, optimizer state, history and the recipe as JSON.

Nothing from a file is ever unpickled or evaluated: tensors come from safetensors and everything else
from JSON in its header. Files are written atomically (temp file, fsync, rename), so a crash mid-save
leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
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

from cnnviz.config import Recipe
from cnnviz.data.prepare import Normalization, PreparedData
from cnnviz.errors import CheckpointError, CnnvizError
from cnnviz.models import CnnvizNet, ModelSpec, build_model
from cnnviz.training.history import History

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
    """Read and validate a checkpoint; every problem is a CheckpointError naming the file."""
    path = resolve_checkpoint_path(path)
    name = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if raw[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or raw[:2] == b"PK":
        raise CheckpointError(f"{name}: this is a pickle / torch.save file; cnnviz never unpickles files "
                              f"(unpickling can run arbitrary code). Use a cnnviz run file (.safetensors).")
    if len(raw) < 8:
        raise CheckpointError(f"{name}: not a cnnviz run file (only {len(raw)} bytes; truncated?)")
    try:
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{name}: not a readable cnnviz run file (truncated or corrupt: {exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a cnnviz run file (a safetensors file without cnnviz's header)")
    try:
        version = int(meta.get("version", "0"))
    except ValueError:
        raise CheckpointError(f"{name}: unreadable format version {meta.get('version')!r}") from None
    if version > VERSION:
        raise CheckpointError(f"{name}: written by a newer cnnviz (format version {version}; this version reads "
                              f"up to {VERSION}). Update cnnviz to open it.")
    try:
        return _decode(meta, tensors)
    except CnnvizError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{name}: damaged header ({type(exc).__name__}: {exc})") from None


def _decode(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> Checkpoint:
    spec = ModelSpec.from_dict(json.loads(meta["spec"]))
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _check_weights_match(spec, model_state)
    progress = json.loads(meta["progress"])
    optimizer = json.loads(meta.get("optimizer", "null"))
    if optimizer is not None:
        state: dict[int, dict[str, Any]] = {}
        for index, plain in optimizer["state"].items():
            state[int(index)] = dict(plain)
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, entry = key.split(".", 2)
                state.setdefault(int(index), {})[entry] = value
        optimizer = {"state": state, "param_groups": optimizer["param_groups"]}
    arrays = {k[len("history."):]: v.numpy() for k, v in tensors.items() if k.startswith("history.")}
    epoch, step, batch_in_epoch = int(progress["epoch"]), int(progress["step"]), int(progress["batch_in_epoch"])
    per_epoch = (step - batch_in_epoch) // epoch if epoch > 0 else None  # for epochs saved without their step
    history = History.restore(arrays, json.loads(meta.get("history_epochs", "[]")),
                              json.loads(meta.get("test_accuracy", "[]")), steps_per_epoch=per_epoch)
    return Checkpoint(
        spec=spec, recipe=Recipe.from_dict(json.loads(meta["recipe"])),
        normalization=Normalization.from_dict(json.loads(meta["normalization"])),
        class_names=tuple(json.loads(meta["class_names"])), dataset=meta.get("dataset", ""),
        model_state=model_state, optimizer_state=optimizer, epoch=int(progress["epoch"]),
        step=int(progress["step"]), batch_in_epoch=int(progress["batch_in_epoch"]), history=history,
        rng={k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")},
    )


def _check_weights_match(spec: ModelSpec, state: dict[str, torch.Tensor]) -> None:
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


def resume_trainer(checkpoint: Checkpoint, data: PreparedData, callbacks=(), recipe: Recipe | None = None):
    """A Trainer that continues `checkpoint` where it stopped (optionally with a longer recipe)."""
    from cnnviz.training.trainer import Trainer

    trainer = Trainer(checkpoint.spec, recipe or checkpoint.recipe, data, callbacks)
    trainer.model.load_state_dict(checkpoint.model_state)
    if checkpoint.optimizer_state is not None:
        try:
            trainer.optimizer.load_state_dict(checkpoint.optimizer_state)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"the optimizer state does not fit this recipe's optimizer ({exc})") from None
    trainer.epoch, trainer.step_count, trainer.batch_in_epoch = checkpoint.epoch, checkpoint.step, \
        checkpoint.batch_in_epoch
    trainer.history = checkpoint.history
    if "shuffle" in checkpoint.rng:
        trainer.shuffle.set_state(checkpoint.rng["shuffle"])
    if "shuffle_epoch" in checkpoint.rng:
        trainer.epoch_shuffle_state = checkpoint.rng["shuffle_epoch"]
    if "torch" in checkpoint.rng:
        torch.set_rng_state(checkpoint.rng["torch"])
    trainer.remember_good_state()
    return trainer
