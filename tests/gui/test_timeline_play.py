"""Play on the timeline bar: keyframe after keyframe to the end, Pause stops it, and frames are paced to what the
views can paint, so the window stays idle at least half the time while playing."""
from __future__ import annotations

import time

from cnnviz.gui.widgets.timeline_bar import PLAY_FPS, TimelineBar


def _bar(qtbot, keyframes):
    bar = TimelineBar()
    qtbot.addWidget(bar)
    bar.set_run(keyframes[-1], keyframes, [], live=False, exact_available=False)
    bar.slider.setValue(0)
    return bar


def _seeks(bar, work_s: float) -> list[tuple[float, int]]:
    seen = []

    def view(step: int) -> None:  # a view that takes `work_s` to show a step
        seen.append((time.perf_counter(), step))
        time.sleep(work_s)

    bar.seek_requested.connect(view)
    return seen


def test_play_goes_through_every_keyframe_to_the_end_and_stops(qtbot):
    keyframes = [0, 1, 2, 4, 8, 16, 32]
    bar = _bar(qtbot, keyframes)
    seen = _seeks(bar, 0.0)
    bar.play_button.setChecked(True)
    assert bar.playing
    qtbot.waitUntil(lambda: not bar.play_button.isChecked(), timeout=5000)
    assert [s for _, s in seen] == keyframes[1:] and not bar.playing
    gaps = [b - a for (a, _), (b, _) in zip(seen, seen[1:])]
    assert min(gaps) >= 0.8 / PLAY_FPS  # no faster than the frame rate


def test_a_slow_frame_is_followed_by_as_much_idle_time(qtbot):
    bar = _bar(qtbot, list(range(0, 40)))
    seen = _seeks(bar, 0.06)  # two frames' time at 30 fps
    bar.play_button.setChecked(True)
    qtbot.waitUntil(lambda: len(seen) >= 6, timeout=10000)
    bar.play_button.setChecked(False)
    gaps = [b - a for (a, _), (b, _) in zip(seen, seen[1:])]
    assert min(gaps) >= 2 * 0.06 * 0.9, gaps  # the work, then at least as long idle
    count = len(seen)
    qtbot.wait(300)
    assert len(seen) == count  # paused: no more frames
