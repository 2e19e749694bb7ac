"""Two runs' frames side by side (`cnnviz export RUN_A --compare RUN_B`): A at each frame's step on the left, B
at the same point of training on the right (the same step, or the same fraction of the same epoch when their
epochs differ in length; see :mod:`cnnviz.timeline.pairing`), each under its own caption. Qt-free."""
from __future__ import annotations

import numpy as np

from cnnviz.exports.animation import PAIR_GAP as GAP
from cnnviz.exports.drawing import MUTED
from cnnviz.exports.plan import FrameStep
from cnnviz.timeline.pairing import epoch_length, map_step


def half_widths(width: int) -> tuple[int, int]:
    """The widths of the left and right views of a frame `width` pixels wide."""
    left = (width - GAP) // 2
    return left, width - GAP - left


class PairFrames:
    """Renders A's view and B's view of one frame and puts them side by side."""

    def __init__(self, left, right, a_timeline, b_timeline) -> None:
        self.left, self.right = left, right
        self.b_timeline = b_timeline
        self._lengths = epoch_length(a_timeline), epoch_length(b_timeline)
        self._b_frames: dict[FrameStep, FrameStep] = {}

    def b_frame(self, frame: FrameStep) -> FrameStep:
        """The frame of B that stands beside A's `frame`: B's stored step at or before the mapped step."""
        found = self._b_frames.get(frame)
        if found is None:
            step = min(map_step(frame.step, *self._lengths), max(self.b_timeline.last_step, 0))
            stored = self.b_timeline.nearest_keyframe(step)
            found = self._b_frames[frame] = FrameStep(step, step if stored is None else stored)
        return found

    def prepare(self, frames: list[FrameStep]) -> None:
        self.left.prepare(frames)
        self.right.prepare([self.b_frame(f) for f in frames])

    def render(self, frame: FrameStep) -> np.ndarray:
        a = self.left.render(frame)
        b = self.right.render(self.b_frame(frame))
        divider = np.empty((a.shape[0], GAP, 3), np.uint8)
        divider[:] = MUTED
        return np.ascontiguousarray(np.hstack([a, divider, b]))
