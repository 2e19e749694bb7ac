"""The timeline's files in a run folder: the event log, weight keyframes, anchors and recorded evaluations.

Format (version 2; `docs/run-format.md` is the full description):

- ``events.jsonl``: append-only, one JSON object a line, each with a type ``"t"``: ``steps``, ``epoch``,
  ``eval``, ``keyframe``, ``anchor``, ``stats``, ``state``, ``end``. A line is only ever appended whole, after
  the file it points to is complete; a reader skips a last line without its newline (a write in progress or
  torn by a crash) and any line that does not parse, so a damaged record is never fatal.
- ``keyframes/<step>.safetensors``: the weights at a step for display, at the precision the run's byte budget
  allows (float32, float16, or 8 bits per value with a per-tensor scale and offset); ``<step>.safetensors.zlib``
  is the same compressed with zlib (8 bits, when the budget needs it).
- ``anchors/<step>.safetensors``: a full checkpoint (weights, optimizer, random streams, progress, recipe) from
  which the run continues bit-exactly; the weights of any step are recomputed from the nearest one before it.
- ``evals/<step>.safetensors``: a test evaluation's labels and predictions (uint8 up to 256 classes, else
  int32; int64 before December 2026) and probabilities (float16).

Every file is written to a temporary name and renamed, so a reader on this or another machine (a shared or
network folder) sees a file whole or not at all. No database, no lock a reader must take.
"""
from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import save as st_save
from safetensors.torch import load as st_load

from cnnviz.errors import CheckpointError
from cnnviz.files import open_regular, read_regular

FORMAT_VERSION = 2  # of the run folder; version 1 had no timeline (a checkpoint and CSV files)
EVENTS_NAME = "events.jsonl"
KEYFRAMES, ANCHORS, EVALS = "keyframes", "anchors", "evals"
PRECISIONS = ("float32", "float16", "uint8")  # a keyframe's precision, best first
BYTES_PER_VALUE = {"float32": 4, "float16": 2, "uint8": 1}
MAX_LINE_BYTES = 8 << 20  # a longer line is damage, not a record
MAX_FILE_BYTES = 2 << 30  # a keyframe, anchor or evaluation larger than this is refused unread
MAX_LOG_BYTES = 4 << 30  # an event log this large is not one cnnviz wrote


def step_file(kind: str, step: int) -> str:
    """The relative path of the file of `kind` (keyframes, anchors, evals) for `step`."""
    return f"{kind}/{int(step):09d}.safetensors"


# -- the event log -----------------------------------------------------------------------------------------
class EventWriter:
    """Appends events to a run's ``events.jsonl`` (one writer per run; the run folder's lock guarantees it)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / EVENTS_NAME
        self._fh = open(self.path, "ab")
        self._repair()

    def _repair(self) -> None:
        """A crash can leave a torn last line; end it so the next record starts on a line of its own."""
        try:
            fh, size = open_regular(self.path, MAX_LOG_BYTES, CheckpointError, "event log")
        except CheckpointError:
            return  # the append above would have failed for anything but a regular file
        with fh:
            if size:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    self._fh.write(b"\n")
                    self._fh.flush()

    def write(self, event: dict, sync: bool = False) -> None:
        """Append one event as one line; `sync` makes it durable (at epoch ends and the end)."""
        line = json.dumps(event, separators=(",", ":"), allow_nan=True).encode() + b"\n"
        self._fh.write(line)
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass


class EventReader:
    """Reads a run's events as they are appended: :meth:`read_new` returns the whole lines added since the last
    call. Damaged lines are counted in `skipped` and left out."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / EVENTS_NAME
        self.offset = 0
        self.skipped = 0

    def read_new(self, limit: int = 64 << 20) -> list[dict]:
        if not self.path.exists():
            return []
        fh, _ = open_regular(self.path, MAX_LOG_BYTES, CheckpointError, "event log")  # never a FIFO or device
        with fh:
            try:
                fh.seek(self.offset)
                chunk = fh.read(limit)
            except OSError as exc:
                raise CheckpointError(f"{self.path}: cannot be read ({exc.strerror or exc})") from None
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) > MAX_LINE_BYTES:  # one giant line without an end: damage; step over it
                self.offset += len(chunk)
                self.skipped += 1
            return []
        self.offset += end + 1
        events = []
        for line in chunk[:end].split(b"\n"):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                self.skipped += 1
                continue
            if isinstance(event, dict) and isinstance(event.get("t"), str):
                events.append(event)
            else:
                self.skipped += 1
        return events


# -- keyframes -------------------------------------------------------------------------------------------
def encode_keyframe(state: dict[str, np.ndarray], precision: str, compress: bool = False) -> bytes:
    """The weights as a safetensors file at `precision`; 8-bit values keep a per-tensor scale and offset.
    `compress`: the file's bytes through zlib (a ``.zlib`` file).

    `state` may hold views of the live weights: the bytes are made before this returns (safetensors' numpy
    writer, about 8x faster than its torch one for a keyframe)."""
    tensors, meta = {}, {"precision": precision}
    for name, value in state.items():
        array = np.asarray(value)
        if precision == "float32" or not np.issubdtype(array.dtype, np.floating):
            tensors[name] = np.ascontiguousarray(array) if array.ndim else array.reshape(())
        elif precision == "float16":
            tensors[name] = array.astype(np.float16)
        else:
            low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
            scale = (high - low) / 255.0 if high > low else 1.0
            tensors[name] = np.round((array - low) / scale).astype(np.uint8)
            meta[f"scale.{name}"], meta[f"offset.{name}"] = repr(scale), repr(low)
    raw = st_save(tensors, metadata=meta)
    return zlib.compress(raw, 1) if compress else raw


def decode_keyframe(raw: bytes, where: str = "keyframe", compressed: bool = False) -> dict[str, np.ndarray]:
    """float32 weights back from :func:`encode_keyframe`'s bytes (`compressed`: a ``.zlib`` file)."""
    if compressed:
        raw = _inflate(raw, where)
    try:
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError, RecursionError) as exc:
        raise CheckpointError(f"{where}: not a readable keyframe ({exc})") from None
    out = {}
    for name, tensor in tensors.items():
        array = tensor.numpy()
        if array.dtype == np.uint8 and f"scale.{name}" in meta:
            try:
                scale, offset = float(meta[f"scale.{name}"]), float(meta[f"offset.{name}"])
            except ValueError:
                raise CheckpointError(f"{where}: damaged scale of {name}") from None
            array = array.astype(np.float32) * np.float32(scale) + np.float32(offset)
        elif np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        out[name] = array
    return out


def _inflate(raw: bytes, where: str) -> bytes:
    """zlib-compressed bytes back, never more than ``MAX_FILE_BYTES`` (a bomb is refused, not unpacked)."""
    try:
        inflater = zlib.decompressobj()
        out = inflater.decompress(raw, MAX_FILE_BYTES)
    except zlib.error as exc:
        raise CheckpointError(f"{where}: not a readable compressed keyframe ({exc})") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise CheckpointError(f"{where}: a compressed keyframe that is damaged or too large")
    return out


def anchor_weights(raw: bytes, where: str = "anchor") -> dict[str, np.ndarray]:
    """The model weights in an anchor's bytes (a checkpoint file), float32, for display."""
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{where}: not a readable anchor ({exc})") from None
    weights = {k[len("model."):]: v.numpy() for k, v in tensors.items() if k.startswith("model.")}
    if not weights:
        raise CheckpointError(f"{where}: an anchor without weights")
    return weights


def keyframe_bytes(state: dict[str, np.ndarray], precision: str) -> int:
    """About how large a keyframe of `state` is at `precision` (what the byte budget plans with)."""
    values = sum(int(np.asarray(v).size) for v in state.values())
    return values * BYTES_PER_VALUE[precision] + 64 * len(state) + 512


# -- files -----------------------------------------------------------------------------------------------
def write_file(folder: Path, relative: str, payload: bytes) -> int:
    """Write `payload` under `folder/relative` through a temporary name; returns the bytes written."""
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(payload)
    os.replace(tmp, path)
    return len(payload)


def read_file(folder: Path, relative: str) -> bytes:
    """A timeline file's bytes; a missing, odd or oversized file is a CheckpointError naming it."""
    if not isinstance(relative, str) or relative.startswith(("/", "\\")) or ".." in Path(relative).parts:
        raise CheckpointError(f"{relative!r}: not a file of this run")  # an event must not point outside the run
    return read_regular(folder / relative, MAX_FILE_BYTES, CheckpointError, "timeline file")


@dataclass(frozen=True)
class RecordedEvaluation:
    """What is kept of a test evaluation: enough to show it again (labels, predictions, probabilities)."""

    step: int
    labels: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray


def encode_evaluation(evaluation) -> bytes:
    classes = np.asarray(evaluation.probabilities).shape[-1]
    kind = np.uint8 if classes <= 256 else np.int32
    return st_save({"labels": np.asarray(evaluation.labels).astype(kind),
                    "predicted": np.asarray(evaluation.predicted).astype(kind),
                    "probabilities": np.asarray(evaluation.probabilities, np.float16)},
                   metadata={"step": str(int(evaluation.step))})


def decode_evaluation(raw: bytes, step: int, where: str = "evaluation") -> RecordedEvaluation:
    try:
        tensors = st_load(raw)
        return RecordedEvaluation(step, tensors["labels"].numpy().astype(np.int64),
                                  tensors["predicted"].numpy().astype(np.int64),
                                  tensors["probabilities"].numpy().astype(np.float32))
    except (SafetensorError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{where}: not a readable evaluation ({exc})") from None
