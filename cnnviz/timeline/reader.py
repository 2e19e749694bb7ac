"""Reading a run's timeline, also while another process (or machine) is still writing it.

:class:`RunTimeline` reads what the run folder holds (`store.py` describes the files) and, on
:meth:`RunTimeline.refresh`, what was appended since: the steps' metrics as a :class:`History`, the epochs,
the evaluations, the keyframes and anchors by step, the layer statistics, the run's state. A run folder from
before the timeline (a checkpoint and CSV files) or a bare checkpoint file reads as a timeline of one
keyframe, its last step.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnviz.errors import CheckpointError, CnnvizError
from cnnviz.files import read_regular
from cnnviz.training.history import History
from cnnviz.training.messages import EpochMetrics, Evaluation
from cnnviz.training.surgery import FilterOperation
from cnnviz.validation import parse_json
from cnnviz.timeline.store import (EVENTS_NAME, FORMAT_VERSION, EventReader, anchor_weights, decode_evaluation,
                                   decode_keyframe, read_file)

_EPOCH_FIELDS = {f for f in EpochMetrics.__dataclass_fields__}
MAX_HEADER_BYTES = 4 << 20


@dataclass
class RunTimeline:
    """What a run holds, kept up to date by :meth:`refresh`."""

    path: Path
    header: dict = field(default_factory=dict)
    history: History = field(default_factory=History)
    keyframes: dict[int, tuple[str, str]] = field(default_factory=dict)  # step -> (file, precision)
    anchors: dict[int, str] = field(default_factory=dict)  # step -> file
    evaluations: dict[int, dict] = field(default_factory=dict)  # step -> the eval event (test split)
    stats: list[dict] = field(default_factory=list)  # the stats events, in step order
    surgeries: list[FilterOperation] = field(default_factory=list)  # the filter operations, in the order applied
    state: str = "unknown"
    ended: dict | None = None  # the end event, once the run ended
    latest: dict | None = None  # where the run stood at its last steps record (epoch, ETA, images/s...)
    has_timeline: bool = True
    _reader: EventReader | None = None
    _checkpoint_file: Path | None = None

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunTimeline":
        """The timeline of a run folder (with or without a timeline) or of a bare checkpoint file."""
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"{path}: no such run folder or file")
        if path.is_dir() and (path / EVENTS_NAME).is_file():
            timeline = cls(path)
            timeline.header = read_header(path)
            timeline._reader = EventReader(path)
            timeline.refresh()
            return timeline
        return cls._from_checkpoint(path)

    @classmethod
    def _from_checkpoint(cls, path: Path) -> "RunTimeline":
        from cnnviz.training.checkpoint import load_checkpoint, resolve_checkpoint_path

        file = resolve_checkpoint_path(path)
        checkpoint = load_checkpoint(file)
        folder = file.parent
        timeline = cls(folder, header=read_header(folder) if path.is_dir() else {}, history=checkpoint.history,
                       has_timeline=False)
        timeline.anchors[checkpoint.step] = file.name
        timeline._checkpoint_file = file
        timeline.surgeries = list(checkpoint.surgery)
        timeline.state = timeline.header.get("status", "stopped") if isinstance(timeline.header, dict) else "stopped"
        for e, acc in zip(checkpoint.history.epochs, checkpoint.history.test_accuracy):
            timeline.evaluations[e.step] = {"step": e.step, "accuracy": acc, "split": "test"}
        return timeline

    # -- following -------------------------------------------------------------------------------------------
    def refresh(self) -> list[dict]:
        """Read what was appended since the last call; returns those events (a follower turns them into
        messages). Nothing happens for a timeline without an event log."""
        if self._reader is None:
            return []
        events = self._reader.read_new()
        for event in events:
            self._apply(event)
        return events

    def _apply(self, event: dict) -> None:
        kind = event.get("t")
        try:
            if kind == "steps":
                first = int(event["first"])
                if first != self.history.steps + 1:  # a gap or an overlap: keep the part that follows on
                    skip = self.history.steps + 1 - first
                    if skip < 0 or skip >= len(event["loss"]):
                        return
                    event = {**event, "first": first + skip, "loss": event["loss"][skip:],
                             "accuracy": event["accuracy"][skip:], "lr": event["lr"][skip:]}
                n = min(len(event["loss"]), len(event["accuracy"]), len(event["lr"]))
                self.history.add_steps(_nan(event["loss"][:n]), _nan(event["accuracy"][:n]), _nan(event["lr"][:n]))
                self.latest = event.get("latest") if isinstance(event.get("latest"), dict) else self.latest
            elif kind == "epoch":
                metrics = EpochMetrics(**{k: v for k, v in event.items() if k in _EPOCH_FIELDS})
                self.history.epochs.append(metrics)
                test = self.evaluations.get(metrics.step)  # the epoch's test evaluation is recorded before it
                if test is not None and len(self.history.test_accuracy) < len(self.history.epochs):
                    self.history.test_accuracy.append(float(test["accuracy"]))
            elif kind == "eval" and event.get("split") == "test":
                step = int(event["step"])
                self.evaluations[step] = event
                ends = [e.step for e in self.history.epochs]
                if step in ends and len(self.history.test_accuracy) < len(self.history.epochs):
                    self.history.test_accuracy.append(float(event["accuracy"]))
            elif kind == "keyframe":
                self.keyframes[int(event["step"])] = (str(event["file"]), str(event.get("precision", "float32")))
            elif kind == "anchor":
                self.anchors[int(event["step"])] = str(event["file"])
            elif kind == "stats":
                if isinstance(event.get("layers"), dict):
                    self.stats.append(event)
            elif kind == "surgery":
                if int(event["n"]) == len(self.surgeries):  # a repeat or a gap is not this run's next operation
                    self.surgeries.append(FilterOperation.from_dict(
                        {k: event[k] for k in ("layer", "index", "action", "step") if k in event}))
            elif kind == "state":
                self.state = str(event.get("state"))
            elif kind == "rewind":
                self._rewind(int(event["step"]))
                del self.surgeries[int(event.get("surgeries", len(self.surgeries))):]
            elif kind == "end":
                self.ended, self.state = event, str(event.get("status", "finished"))
        except (KeyError, TypeError, ValueError, CnnvizError):
            if self._reader is not None:
                self._reader.skipped += 1  # a record of the wrong shape counts as damaged, never fatal

    def _rewind(self, step: int) -> None:
        h = self.history
        keep_epochs = [e for e in h.epochs if e.step is not None and e.step <= step]
        self.history = h.truncated(step, len(keep_epochs))
        for table in (self.keyframes, self.anchors, self.evaluations):
            for s in [s for s in table if s > step]:
                del table[s]
        self.stats = [r for r in self.stats if r.get("step", 0) <= step]
        self.ended = None

    # -- what it holds ---------------------------------------------------------------------------------------
    @property
    def last_step(self) -> int:
        return max([self.history.steps, *self.anchors, *self.keyframes] or [0])

    @property
    def exact(self) -> bool:
        """Whether steps are recomputed exactly (False for a run trained on a GPU: its kernels are not
        deterministic, so the nearest keyframe is shown)."""
        return bool(self.header.get("exact", True)) and self.has_timeline

    def keyframe_steps(self) -> list[int]:
        """Every step whose weights are stored (keyframes and anchors), sorted."""
        return sorted(set(self.keyframes) | set(self.anchors))

    def nearest_keyframe(self, step: int) -> int | None:
        """The stored step at or before `step` (the first one when `step` is before all)."""
        steps = self.keyframe_steps()
        if not steps:
            return None
        i = bisect.bisect_right(steps, step) - 1
        return steps[max(i, 0)]

    def anchor_before(self, step: int) -> int | None:
        steps = sorted(self.anchors)
        i = bisect.bisect_right(steps, step) - 1
        return steps[i] if i >= 0 else None

    def weights(self, step: int) -> dict[str, np.ndarray]:
        """The stored weights of a stored step (a keyframe's, decoded; an anchor's, exact)."""
        if step in self.anchors:
            if self._checkpoint_file is not None:
                return {k: v.numpy() for k, v in self.load_anchor(step).model_state.items()}
            # the weights alone, for display: the full checks of a resumable state (`load_anchor`) cost ~20 ms
            return anchor_weights(read_file(self.path, self.anchors[step]), f"{self.path / self.anchors[step]}")
        if step not in self.keyframes:
            raise CheckpointError(f"step {step} has no stored weights in {self.path}")
        relative, _ = self.keyframes[step]
        return decode_keyframe(read_file(self.path, relative), f"{self.path / relative}", relative.endswith(".zlib"))

    def precision(self, step: int) -> str:
        """How exactly the stored weights of `step` are kept: "exact" for an anchor, else the keyframe's."""
        return "exact" if step in self.anchors else self.keyframes.get(step, ("", "?"))[1]

    def load_anchor(self, step: int):
        from cnnviz.training.checkpoint import load_checkpoint

        if self._checkpoint_file is not None and step in self.anchors and self.anchors[step] == \
                self._checkpoint_file.name:
            return load_checkpoint(self._checkpoint_file)
        relative = self.anchors[step]
        read_file(self.path, relative)  # checks the name stays inside the run, and the size
        return load_checkpoint(self.path / relative)

    def evaluation_at(self, step: int) -> Evaluation | None:
        """The nearest recorded test evaluation at or before `step` (None when there is none)."""
        steps = sorted(s for s, e in self.evaluations.items() if "file" in e)
        i = bisect.bisect_right(steps, step) - 1
        if i < 0:
            return None
        event = self.evaluations[steps[i]]
        recorded = decode_evaluation(read_file(self.path, event["file"]), steps[i])
        classes = recorded.probabilities.shape[1] if recorded.probabilities.ndim == 2 else 0
        confusion = np.asarray(event.get("confusion") or np.zeros((classes, classes)), np.int64)
        return Evaluation("test", steps[i], float(event.get("loss") or 0.0), float(event["accuracy"]),
                          np.asarray(event.get("per_class", []), np.float64), confusion, recorded.labels,
                          recorded.predicted, recorded.probabilities)

    def bytes_on_disk(self) -> int:
        total = 0
        for root, _, files in os.walk(self.path):
            for name in files:
                try:
                    total += (Path(root) / name).stat().st_size
                except OSError:
                    pass
        return total

    def stat_names(self) -> dict[str, list[str]]:
        """Layer name -> the statistics recorded for it."""
        names: dict[str, set[str]] = {}
        for record in self.stats:
            for layer, figures in record["layers"].items():
                names.setdefault(layer, set()).update(figures)
        return {layer: sorted(found) for layer, found in names.items()}

    def info(self) -> dict:
        """What `cnnviz info --json` prints."""
        epochs = self.history.epochs
        tests = [e for s, e in sorted(self.evaluations.items())]
        return {
            "path": str(self.path), "format_version": int(self.header.get("format_version", 1)),
            "name": self.header.get("name") or self.header.get("preset"), "state": self.state,
            "steps": self.last_step, "epochs": len(epochs),
            "keyframe_steps": self.keyframe_steps(), "anchor_steps": sorted(self.anchors),
            "filter_operations": [op.to_dict() for op in self.surgeries],
            "keyframe_precision": sorted({p for _, p in self.keyframes.values()}),
            "test_accuracy": float(tests[-1]["accuracy"]) if tests else self.header.get("test_accuracy"),
            "stats": self.stat_names(), "exact": self.exact, "bytes": self.bytes_on_disk(),
            "damaged_records": self._reader.skipped if self._reader is not None else 0,
        }


def read_header(folder: Path) -> dict:
    """The run's ``run.json``: {} when there is none; a damaged or too-new one is a CheckpointError."""
    path = Path(folder) / "run.json"
    if not path.exists():
        return {}
    raw = read_regular(path, MAX_HEADER_BYTES, CheckpointError, "run description")
    header = parse_json(raw, f"{path}: the run description", CheckpointError, max_bytes=MAX_HEADER_BYTES)
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a run description (a JSON object is expected)")
    version = header.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer cnnviz (run format {version!r}; this version reads up "
                              f"to {FORMAT_VERSION}). Update cnnviz to open it.")
    return header


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


__all__ = ["RunTimeline", "read_header"]
