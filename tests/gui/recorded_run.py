"""A small recorded run for the views of a run's timeline (distributions, health)."""
from pathlib import Path

import pytest

from cnnviz.cli import main


def record_run(folder: Path, *more: str) -> Path:
    """Train `gorner` for 30 steps of 10 images into `folder` with its timeline, and return the folder.

    Layer statistics are normally taken at most 4 times a second and within 0.6% of the training time; here
    as often as the trainer allows (about one record every step or two), so that a run of a second holds enough
    of them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("cnnviz.timeline.recorder.STATS_INTERVAL", 0.0)
        patch.setattr("cnnviz.timeline.recorder.STATS_SHARE", 1.0)
        code = main(["train", "--preset", "gorner", "--subset", "200", "--batch-size", "10", "--max-steps", "30",
                     "--out", str(folder), "--json", *more])
    assert code == 0
    from cnnviz.timeline.reader import RunTimeline

    records = RunTimeline.open(folder).stats
    assert len(records) >= 4, f"only {len(records)} statistics records"
    return folder
