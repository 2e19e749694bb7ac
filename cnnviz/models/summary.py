"""A Keras ``model.summary()``-like table of a spec: shapes, parameters and memory per layer."""
from __future__ import annotations

from dataclasses import dataclass

from cnnviz.models.shapes import LayerShape, infer_shapes
from cnnviz.models.spec import ModelSpec


@dataclass(frozen=True)
class ModelSummary:
    """Per-layer shapes and totals of a spec.

    Attributes
    ----------
    rows : tuple of LayerShape
        One row per layer.
    trainable, non_trainable : int
        Parameter totals, Keras-style.
    activation_bytes : int
        float32 bytes of all layer outputs for one image.
    """

    rows: tuple[LayerShape, ...]
    trainable: int
    non_trainable: int
    activation_bytes: int

    @property
    def total(self) -> int:
        """All parameters, trainable or not."""
        return self.trainable + self.non_trainable


def summarize(spec: ModelSpec) -> ModelSummary:
    """Shapes and totals of ``spec``; raises :class:`~cnnviz.errors.SpecError` if it is impossible."""
    rows = tuple(infer_shapes(spec))
    return ModelSummary(
        rows=rows,
        trainable=sum(r.trainable for r in rows),
        non_trainable=sum(r.non_trainable for r in rows),
        activation_bytes=sum(r.activation_bytes for r in rows),
    )


def format_summary(summary: ModelSummary) -> str:
    """A fixed-width text table of ``summary`` with a totals line, like Keras' ``model.summary()``."""
    header = ("Layer", "Type", "Output shape", "Trainable", "Non-trainable", "Memory/image")
    body = [
        (
            row.name,
            row.kind,
            "x".join(str(v) for v in row.output_shape),
            f"{row.trainable:,}",
            f"{row.non_trainable:,}",
            _kb(row.activation_bytes),
        )
        for row in summary.rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    # Text columns left-aligned, numbers right-aligned so digits line up.
    align = ("<", "<", "<", ">", ">", ">")

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    rule = "-" * len(fmt(tuple("-" * w for w in widths)))
    lines = [fmt(header), rule, *(fmt(line) for line in body), rule]
    lines.append(
        f"Total params: {summary.total:,} (trainable {summary.trainable:,}, "
        f"non-trainable {summary.non_trainable:,}); activations {_kb(summary.activation_bytes)} per image"
    )
    return "\n".join(lines)


def _kb(n_bytes: int) -> str:
    kb = n_bytes / 1024
    # Two decimals below 1 KB so a 10-unit output does not read as "0.0 KB".
    return f"{kb:,.2f} KB" if kb < 1 else f"{kb:,.1f} KB"
