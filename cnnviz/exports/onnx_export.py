"""The model at any step of a run as one ONNX file, for Netron, onnxruntime, a browser or a phone.

The graph takes what a user has: ``pixels``, float32 ``(N, C, H, W)`` in [0, 1] exactly as read from the
image files, and gives ``scores``, the class scores (logits; a softmax makes them probabilities). The run's
normalisation (``standardize``: ``(x - mean) / std`` of its training pixels) is inside the graph, so nobody
has to know or repeat it. The batch axis is dynamic. The class names, the step and the run travel as the
model's metadata properties, which Netron shows.

Exporter: torch's TorchScript-based one (``dynamo=False``). It needs only the ``onnx`` package and takes
about 0.05 s for these models; the torch.export-based one (torch's default since 2.9) also needs
``onnxscript`` and ``onnx_ir``, takes 1.5 to 8 s for the same model and logs to stderr. Our models are
plain sequential CNNs with no control flow, the case both exporters handle the same way; the TorchScript
exporter's deprecation warning is silenced here.
"""
from __future__ import annotations

import io
import json
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnviz.errors import CheckpointError
from cnnviz.exports.outputs import ExportError, need, output_file, write_bytes

INPUT_NAME, OUTPUT_NAME = "pixels", "scores"
OPSET = 17  # fixed, so the file does not change with torch's default; onnxruntime has run opset 17 since 1.14


class PixelsToScores(nn.Module):
    """Pixels in [0, 1] to class scores: the run's normalisation, then its model (in eval mode)."""

    def __init__(self, model: nn.Module, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.model = model.eval()
        self.mean, self.std = float(mean), float(std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.mean != 0.0 or self.std != 1.0:  # as Normalization.apply: subtract, then divide, in float32
            pixels = (pixels - self.mean) / self.std
        return self.model(pixels)


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote."""

    path: Path
    step: int
    source: str  # where the weights came from, in words ("the run's checkpoint", "recomputed from step 0", ...)
    input_shape: tuple[int, ...]  # (C, H, W)
    class_names: tuple[str, ...]
    bytes: int


def requirements() -> None:
    """Raise ExportError (naming what to install) when the ONNX export cannot run here."""
    need("the ONNX export", ("onnx", "onnx"))


def export_onnx(run, out, step: int | None = None, progress: Callable[[int, int], None] | None = None,
                cancel: threading.Event | None = None) -> OnnxExport:
    """Write the model of `run` (a run folder or checkpoint file) at `step` (default: its last) to `out`.

    A step whose weights are not stored exactly (an anchor, a float32 keyframe) is recomputed from the
    nearest anchor before it; `progress(done, total)` follows that and `cancel` stops it. Raises
    ExportError (or another CnnvizError) for a missing package, a bad path, a step the run does not have."""
    from cnnviz.timeline.reader import RunTimeline
    from cnnviz.training.checkpoint import load_checkpoint, resolve_checkpoint_path

    requirements()
    out = output_file(out, "the ONNX file", ".onnx")
    timeline = RunTimeline.open(run)
    try:
        checkpoint, label = load_checkpoint(resolve_checkpoint_path(run)), "the run's checkpoint"
    except CheckpointError:
        if not timeline.has_timeline or not timeline.anchors:
            raise
        last_anchor = max(timeline.anchors)  # a run that ended before its first save: its last anchor
        checkpoint, label = timeline.load_anchor(last_anchor), f"the anchor at step {last_anchor}"
    step = max(timeline.last_step, checkpoint.step) if step is None else int(step)
    weights, source = weights_at(timeline, checkpoint, step, progress, cancel, label)
    model = _model(checkpoint, weights, step)
    name = run_name(run)
    metadata = {
        "run": name, "step": str(step), "class_names": json.dumps(list(checkpoint.class_names)),
        "dataset": checkpoint.dataset, "weights": source,
        "normalization": json.dumps({**checkpoint.normalization.to_dict(), "inside_the_graph": True}),
        "input": f"{INPUT_NAME}: float32 (N, {', '.join(map(str, checkpoint.spec.input_shape))}), pixels in [0, 1]",
        "output": f"{OUTPUT_NAME}: float32 (N, {len(checkpoint.class_names)}), class scores (logits)",
    }
    payload = onnx_bytes(model, checkpoint.normalization.mean, checkpoint.normalization.std,
                         tuple(checkpoint.spec.input_shape), metadata,
                         f"cnnviz run {name} at step {step}: {metadata['input']} -> {metadata['output']} for "
                         f"the classes {', '.join(checkpoint.class_names)}")
    write_bytes(out, payload)
    return OnnxExport(out, step, source, tuple(checkpoint.spec.input_shape), tuple(checkpoint.class_names),
                      len(payload))


def _model(checkpoint, weights: dict[str, torch.Tensor], step: int) -> nn.Module:
    from cnnviz.models import build_model

    model = build_model(checkpoint.spec)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, ValueError) as exc:  # a damaged keyframe: missing tensors, other shapes
        detail = str(exc).strip().splitlines()[-1].strip()[:300] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"the stored weights of step {step} do not fit the run's model ({detail})") from None
    return model.eval()


def weights_at(timeline, checkpoint, step: int, progress=None, cancel=None,
               label: str = "the run's checkpoint") -> tuple[dict[str, torch.Tensor], str]:
    """The exact weights of `step` and where they came from: `checkpoint` (called `label`), an anchor or a
    float32 keyframe (stored exactly), else recomputed from the nearest anchor before the step."""
    from cnnviz.timeline.replay import exact_weights

    last = max(timeline.last_step, checkpoint.step)
    if not 0 <= step <= last:
        raise ExportError(f"step {step} is not in this run (it has steps 0 to {last})")
    if step == checkpoint.step:
        return dict(checkpoint.model_state), label
    if not timeline.has_timeline:
        raise ExportError(f"this run has no timeline (trained with --no-timeline, or a bare checkpoint): only its "
                          f"last step, {checkpoint.step}, can be exported")
    if step in timeline.anchors:
        return dict(timeline.load_anchor(step).model_state), f"the anchor at step {step}"
    if timeline.precision(step) == "float32":  # a float32 keyframe is a copy of the state_dict, bit for bit
        return _tensors(timeline.weights(step)), f"the float32 keyframe at step {step}"
    anchor = timeline.anchor_before(step)
    weights = exact_weights(timeline, step, progress=progress, cancel=cancel)
    return _tensors(weights), f"recomputed from the anchor at step {anchor}"


def _tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}


def onnx_bytes(model: nn.Module, mean: float, std: float, input_shape: tuple[int, ...], metadata: dict[str, str],
               doc: str = "") -> bytes:
    """`model` behind the normalisation ``(x - mean) / std`` as the bytes of a checked ONNX file with
    `metadata` as its metadata properties."""
    onnx, = need("the ONNX export", ("onnx", "onnx"))
    wrapped = PixelsToScores(model, mean, std).eval()
    example = torch.rand((2, *input_shape), generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        with torch.no_grad():
            torch.onnx.export(wrapped, (example,), buffer, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    proto = onnx.load_from_string(buffer.getvalue())
    proto.doc_string = doc
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.graph.input[0].doc_string = metadata.get("input", "")
    proto.graph.output[0].doc_string = metadata.get("output", "")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def run_name(run) -> str:
    """A short name for a run: its folder's name (a bare checkpoint file: its name without the suffix)."""
    path = Path(run).expanduser().absolute()
    if path.is_dir():
        return path.name or "run"
    return path.parent.name if path.stem == "checkpoint" and path.parent.name else path.stem
