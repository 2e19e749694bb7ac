"""A closed and deleted window must leave nothing alive behind it."""
from __future__ import annotations

import gc

import shiboken6


def _alive(name: str) -> int:
    gc.collect()
    return sum(type(o).__name__ == name for o in gc.get_objects())


def test_a_deleted_window_frees_its_views_and_session(make_window, qtbot):
    before = _alive("Session"), _alive("CurvesView")  # other tests' windows may be alive still
    window = make_window()
    qtbot.wait(10)
    window.close()
    window.deleteLater()
    qtbot.waitUntil(lambda: not shiboken6.isValid(window), timeout=5000)
    del window
    assert (_alive("Session"), _alive("CurvesView")) == before
