"""Which step of run B stands beside a step of run A, when two runs are compared side by side.

The same step when their epochs are as long (the usual case: two variants on the same data); otherwise the
same fraction of the same epoch, so that "half-way through epoch 3" faces "half-way through epoch 3".
"""
from __future__ import annotations


def map_step(step: int, a_epoch_length: int | None, b_epoch_length: int | None) -> int:
    """A's `step` as a step of B, given the two runs' batches per epoch (None: unknown, the same step)."""
    if not a_epoch_length or not b_epoch_length or a_epoch_length == b_epoch_length:
        return step
    epoch, into = divmod(step, a_epoch_length)
    return epoch * b_epoch_length + round(into * b_epoch_length / a_epoch_length)


def epoch_length(timeline) -> int | None:
    """A recorded run's batches per epoch: its header's, else its first epoch's end (None when unknown)."""
    header = timeline.header if isinstance(timeline.header, dict) else {}
    per_epoch = header.get("batches_per_epoch")
    if isinstance(per_epoch, int) and per_epoch >= 1:
        return per_epoch
    ends = [e.step for e in timeline.history.epochs if e.step]
    return ends[0] if ends else None
