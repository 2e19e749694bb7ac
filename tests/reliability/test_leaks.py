"""A closed and deleted window must leave nothing alive behind it."""
from __future__ import annotations

import gc

import pytest
import shiboken6


def _alive(name: str) -> int:
    gc.collect()
    return sum(type(o).__name__ == name for o in gc.get_objects())


@pytest.mark.xfail(strict=True, reason="cnnviz/gui/widgets/curves_view.py: pg.SignalProxy(..., slot=lambda ...: "
                   "self._on_hover(...)) has no parent and is never disconnected, so it keeps the CurvesView "
                   "and through it the Session, data and model alive after the window is deleted (~20-60 MB "
                   "per window; one window per process in the app, so it only bites tests and embedders)")
def test_a_deleted_window_frees_its_views_and_session(make_window, qtbot):
    before = _alive("Session"), _alive("CurvesView")  # other tests' windows may be alive still
    window = make_window()
    qtbot.wait(10)
    window.close()
    window.deleteLater()
    qtbot.waitUntil(lambda: not shiboken6.isValid(window), timeout=5000)
    del window
    assert (_alive("Session"), _alive("CurvesView")) == before
