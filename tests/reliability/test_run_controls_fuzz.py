"""Pause, resume, step, stop and train pressed in random orders, quickly, during real training.

A seeded random sequence of button clicks and keyboard shortcuts, each followed by a wait on a condition
(the event loop turned, a new step arrived, or the run settled), never a sleep. Throughout: the state is
one of the six, the window answers within 5 s, no error appears, and the steps reach the window in order
with none lost or repeated, across every stop and continue. At the end the run is stopped or finished.
"""
from __future__ import annotations

import random
import time

import pytest
from PySide6.QtCore import Qt
from pytestqt.exceptions import TimeoutError

from tests.reliability.conftest import SIX_STATES, log_counts, short_run

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

CTRL, NONE = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.NoModifier
KEYS = {"Space": (Qt.Key.Key_Space, NONE), "Esc": (Qt.Key.Key_Escape, NONE),
        "Ctrl+.": (Qt.Key.Key_Period, CTRL), "Ctrl+Return": (Qt.Key.Key_Return, CTRL)}
WEIGHTS = {"pause": 3, "step": 3, "Space": 2, "Ctrl+.": 1, "stop": 1, "Esc": 1, "train": 1, "Ctrl+Return": 1}
WAITS = ("turn", "change", "change", "settle")


class Watch:
    """Everything the window reports, checked as it arrives."""

    def __init__(self, window) -> None:
        self.states: list[str] = []
        self.next_step = 1
        self.problems: list[str] = []
        window.session.state_changed.connect(self.on_state)
        window.session.steps_added.connect(self.on_steps)
        window.session.history_reset.connect(self.on_reset)
        self.window = window

    def on_state(self, state: str) -> None:
        self.states.append(state)
        if state not in SIX_STATES:
            self.problems.append(f"state {state!r}")

    def on_steps(self, batch) -> None:
        if batch.first_step != self.next_step:
            self.problems.append(f"steps from {batch.first_step}, expected {self.next_step}")
        self.next_step = batch.first_step + len(batch.losses)

    def on_reset(self, history) -> None:
        self.next_step = len(history.step_loss) + 1


def _press(window, qtbot, action: str) -> bool:
    c = window.controls
    buttons = {"pause": c.pause_button, "step": c.step_button, "stop": c.stop_button, "train": c.train_button}
    if action in buttons:
        if not buttons[action].isEnabled():
            return False
        before = window.session.state
        qtbot.mouseClick(buttons[action], Qt.MouseButton.LeftButton)
        if action == "train" or (action == "step" and before not in ("running", "paused")):
            assert window.controller.active, f"{action} was enabled, clicked, and started nothing"
        return True
    key, modifier = KEYS[action]
    qtbot.keyClick(window, key, modifier)
    return True


def _wait(window, qtbot, kind: str, patience_ms: int = 3000) -> float:
    """Wait on a condition; returns how long the event loop took to answer."""
    started = time.monotonic()
    fired = []
    from PySide6.QtCore import QTimer

    QTimer.singleShot(0, lambda: fired.append(time.monotonic() - started))
    qtbot.waitUntil(lambda: bool(fired), timeout=5000)
    s, steps, state = window.session, len(window.session.history.step_loss), window.session.state
    if kind == "change" and window.controller.active:  # a new step or another state, if one comes soon
        try:
            qtbot.waitUntil(lambda: len(s.history.step_loss) != steps or s.state != state, timeout=patience_ms)
        except TimeoutError:
            pass  # paused, or a process still starting: go on pressing
    elif kind == "settle":  # the run's thread agrees with the state the window shows
        qtbot.waitUntil(lambda: window.controller.active == (s.state in ("running", "paused")), timeout=30000)
    return fired[0]


def _fuzz(seed: int, actions: int, make_window, qtbot, patience_ms: int = 3000) -> dict:
    rng = random.Random(seed)
    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    short_run(window, train__epochs=1000)
    watch = Watch(window)
    _press(window, qtbot, "train")
    qtbot.waitUntil(lambda: len(window.session.history.step_loss) > 0, timeout=60000)
    names, weights = list(WEIGHTS), list(WEIGHTS.values())
    pressed, slowest, starts = 0, 0.0, 1
    for _ in range(actions):
        action = rng.choices(names, weights)[0]
        was_active = window.controller.active
        pressed += _press(window, qtbot, action)
        starts += window.controller.active and not was_active
        slowest = max(slowest, _wait(window, qtbot, rng.choice(WAITS), patience_ms))
        assert window.trainer_state() in SIX_STATES
        assert window.banner.level != "error", window.banner.text()
        assert watch.problems == [], watch.problems
    # end: stop whatever runs, as a user would
    if window.controller.active:
        window.activateWindow()
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
    assert window.trainer_state() in ("stopped", "finished")
    assert watch.problems == [] and set(watch.states) <= SIX_STATES
    steps = len(window.session.history.step_loss)
    assert watch.next_step == steps + 1 and window.curves.point_count() == steps
    _wait(window, qtbot, "turn")
    counts = dict(seed=seed, actions=actions, pressed=pressed, runs_started=starts, steps=steps,
                  states=len(watch.states), slowest_turn_s=round(slowest, 3), crashes=0)
    log_counts("run_controls_fuzz", **counts)
    return counts


@pytest.mark.slow  # ~21 s; the quick continue-after-stop fuzz stays in the default run
def test_random_presses_during_training(make_window, qtbot):
    _fuzz(seed=0, actions=25, make_window=make_window, qtbot=qtbot, patience_ms=1500)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 6))
def test_random_presses_during_training_long(seed, make_window, qtbot):
    _fuzz(seed=seed, actions=150, make_window=make_window, qtbot=qtbot)


def test_continue_right_after_stop_is_never_a_lost_click(make_window, qtbot):
    """The run reports "stopped" about a second before its process is gone: until then Train and Step,
    which could not start anything yet, must not look clickable."""
    window = make_window()
    short_run(window, train__epochs=1000)
    window.train()
    qtbot.waitUntil(lambda: len(window.session.history.step_loss) > 0, timeout=60000)
    seen = []

    def on_state(state: str) -> None:  # runs after the window's own handler: sees the buttons as set
        c = window.controls
        seen.append((state, window.controller.active, c.train_button.isEnabled(), c.step_button.isEnabled()))

    window.session.state_changed.connect(on_state)
    window.stop()
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
    assert seen[0][:2] == ("stopped", True)  # stopped while its process was still ending
    assert all(not (active and (train or step)) for _, active, train, step in seen), seen
    assert window.controls.train_button.isEnabled() and window.controls.train_button.text() == "Continue"
    qtbot.mouseClick(window.controls.train_button, Qt.MouseButton.LeftButton)
    assert window.controller.active
    window.stop()
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
