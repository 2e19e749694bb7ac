"""Views behind another tab do no work (Qt keeps such a dock "visible" with an empty region) and catch up when
their tab is raised."""
from __future__ import annotations


from cnnviz.gui.visibility import on_screen


def test_a_view_behind_a_tab_waits_and_catches_up_when_raised(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    cf = window.counterfactual
    window.session.select_test_image(3)
    qtbot.wait(600)  # longer than its throttle: it would have started by now if it worked behind the tab
    assert window.docks["curves"].widget().isVisible() and not on_screen(cf)
    assert all(cf.result(t) is None for t in range(10)) and not cf.runner.busy
    window.docks["counterfactual"].raise_()
    qtbot.waitUntil(lambda: on_screen(cf) and sum(cf.result(t) is not None for t in range(10)) == 9, timeout=30000)
