"""Autosave and the offer to reopen an interrupted run, with the crash simulated: a RUNNING marker and an
autosave left in the app's data folder (test_app_process.py does it with a real SIGKILL).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from cnnviz.data.prepare import load_data
from cnnviz.presets import get_preset
from cnnviz.training.callbacks import Callback
from cnnviz.training.checkpoint import from_trainer, save_checkpoint
from cnnviz.training.trainer import Trainer

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

TITLE = "Reopen the interrupted run?"


@pytest.fixture(scope="module")
def autosave_bytes(tmp_path_factory):
    """The autosave of a gorner run on the sample after 1 epoch (40 batches) and 5 more batches."""
    preset = get_preset("gorner")
    recipe = preset.recipe.replace(train__epochs=3)

    class StopAt45(Callback):  # as if the app died here: the recipe itself says 3 epochs
        def on_step_end(self, trainer, metrics):
            if metrics.step == 45:
                trainer.request_stop()

    trainer = Trainer(preset.spec, recipe, load_data(recipe.data), [StopAt45()])
    trainer.fit()
    path = save_checkpoint(tmp_path_factory.mktemp("auto") / "checkpoint.safetensors", from_trainer(trainer))
    return path.read_bytes(), list(trainer.history.step_loss)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _crash(app_dirs, autosave: bytes | None, marker: str | None) -> None:
    folder = app_dirs / "appdata" / "autosave"
    folder.mkdir(parents=True, exist_ok=True)
    if autosave is not None:
        (folder / "checkpoint.safetensors").write_bytes(autosave)
    if marker is not None:
        (folder / "RUNNING").write_text(marker)


def _asker(answer: bool, asked: list):
    def confirm(title, text):
        asked.append(title)
        return answer
    return confirm


def test_accepting_the_offer_restores_the_run_and_train_continues_it(make_window, qtbot, app_dirs, autosave_bytes):
    raw, losses = autosave_bytes
    _crash(app_dirs, raw, f"{_dead_pid()}\na run was in progress\n")
    asked = []
    window = make_window(confirm=_asker(True, asked))
    qtbot.waitUntil(lambda: window.trainer_state() == "stopped", timeout=10000)
    assert asked == [TITLE]
    assert window.session.history.step_loss == pytest.approx(losses)
    assert len(window.session.history.epochs) == 1 and window.session.weights_step == 45
    assert not (app_dirs / "appdata" / "autosave" / "RUNNING").exists()
    qtbot.waitUntil(lambda: not window.loader.busy and window.controls.train_button.isEnabled(), timeout=30000)
    assert window.controls.train_button.text() == "Continue"
    window.train()  # from step 46, not from scratch
    qtbot.waitUntil(lambda: len(window.session.history.step_loss) > 46, timeout=60000)
    assert window.session.history.step_loss[:45] == pytest.approx(losses)
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)


def test_declining_the_offer_forgets_it(make_window, qtbot, app_dirs, autosave_bytes):
    _crash(app_dirs, autosave_bytes[0], f"{_dead_pid()}\n")
    asked = []
    window = make_window(confirm=_asker(False, asked))
    qtbot.waitUntil(lambda: asked == [TITLE], timeout=5000)
    assert window.trainer_state() == "idle" and window.session.history.step_loss == []
    again = []
    make_window(confirm=_asker(True, again))
    qtbot.wait(50)
    assert again == []  # asked once, not at every start


@pytest.mark.parametrize("marker, offered", [
    ("a run was in progress; this file is removed when it ends cleanly\n", True),  # written by older versions
    ("", True),
    ("OWN", False),  # this very process: a window training right now, not a crash
    ("PARENT", False),  # another live process (a second cnnviz training now)
])
def test_only_a_marker_of_a_dead_process_is_an_interrupted_run(marker, offered, make_window, qtbot, app_dirs,
                                                               autosave_bytes):
    import os

    marker = {"OWN": f"{os.getpid()}\n", "PARENT": f"{os.getppid()}\n"}.get(marker, marker)
    _crash(app_dirs, autosave_bytes[0], marker)
    asked = []
    make_window(confirm=_asker(True, asked))
    qtbot.wait(50)
    assert asked == ([TITLE] if offered else [])
    assert (app_dirs / "appdata" / "autosave" / "RUNNING").exists() != offered


def test_a_damaged_autosave_gives_a_message_and_the_app_starts_normally(make_window, qtbot, app_dirs,
                                                                        autosave_bytes):
    raw = autosave_bytes[0]
    _crash(app_dirs, raw[: len(raw) // 3], f"{_dead_pid()}\n")  # cut short, as a power loss mid-copy could
    window = make_window()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=5000)
    text = window.banner.text()
    assert window.banner.level == "error" and "Could not open the run" in text and "checkpoint.safetensors" in text
    assert window.trainer_state() == "idle" and window.controls.train_button.isEnabled()


def test_a_marker_without_an_autosave_offers_nothing(make_window, qtbot, app_dirs):
    _crash(app_dirs, None, f"{_dead_pid()}\n")  # crashed before the first epoch ended
    asked = []
    window = make_window(confirm=_asker(True, asked))
    qtbot.wait(50)
    assert asked == [] and window.trainer_state() == "idle"


def _crash_in_slot(app_dirs, name: str, autosave: bytes, marker: str | None):
    folder = app_dirs / "appdata" / "autosave" / name
    folder.mkdir(parents=True)
    (folder / "checkpoint.safetensors").write_bytes(autosave)
    if marker is not None:
        (folder / "RUNNING").write_text(marker)
    return folder


def test_two_windows_autosave_apart_and_a_clean_close_removes_only_its_own(make_window, qtbot, app_dirs):
    first, second = make_window(), make_window()
    assert first.controller.autosave_path != second.controller.autosave_path
    assert first.controller.autosave_path.parent.parent == second.controller.autosave_path.parent.parent
    for window in (first, second):
        window.controller.autosave_path.parent.mkdir(parents=True, exist_ok=True)
        window.controller.autosave_path.write_bytes(b"x")
    first.close()
    assert not first.controller.autosave_path.parent.exists()
    assert second.controller.autosave_path.exists()  # the other window's autosave is left alone


def test_the_newest_autosave_of_a_dead_window_is_offered_not_one_of_a_live_one(make_window, qtbot, app_dirs,
                                                                              autosave_bytes):
    import os

    dead = _dead_pid()
    older = _crash_in_slot(app_dirs, f"window-{dead}-1", autosave_bytes[0], f"{dead}\n")
    newer = _crash_in_slot(app_dirs, f"window-{dead}-2", autosave_bytes[0], f"{dead}\n")
    live = _crash_in_slot(app_dirs, f"window-{os.getppid()}-1", autosave_bytes[0], f"{os.getppid()}\n")
    os.utime(older / "checkpoint.safetensors", (1, 1))
    asked = []
    window = make_window(confirm=_asker(True, asked))
    qtbot.waitUntil(lambda: window.trainer_state() == "stopped", timeout=10000)
    assert asked == [TITLE]
    assert window.controller.resume_from == newer / "checkpoint.safetensors"
    assert not (newer / "RUNNING").exists()  # offered once
    assert (older / "RUNNING").exists() and (live / "RUNNING").exists()


def test_old_autosaves_of_ended_windows_are_pruned(make_window, qtbot, app_dirs, autosave_bytes):
    import os
    import time

    from cnnviz.gui.training_controller import STALE_AUTOSAVE_DAYS

    dead = _dead_pid()
    old = _crash_in_slot(app_dirs, f"window-{dead}-1", autosave_bytes[0], None)  # offered long ago
    recent = _crash_in_slot(app_dirs, f"window-{dead}-2", autosave_bytes[0], None)
    stamp = time.time() - (STALE_AUTOSAVE_DAYS + 1) * 86400
    os.utime(old, (stamp, stamp))
    asked = []
    make_window(confirm=_asker(True, asked))
    qtbot.wait(50)
    assert asked == [] and not old.exists() and recent.exists()
