"""Bad data in the window: corrupt IDX folders and failed downloads give a message and lose nothing.

Downloads go to a local server on 127.0.0.1 (tests/reliability/slow_server.py) standing in for the
dataset's mirrors; the download cache is a tmp folder (XDG_CACHE_HOME).
"""
from __future__ import annotations

import gzip
import shutil
import socket

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox

from cnnviz.data.catalog import STANDARD_FILES
from tests.reliability.conftest import write_dataset

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def _choose(window, key) -> None:
    """Pick a dataset in the Experiment panel's combo, as a user does."""
    combo = window.findChild(QComboBox, "datasetCombo")
    combo.setCurrentIndex(combo.findData(key))


def _open_folder(window, monkeypatch, folder) -> None:
    monkeypatch.setattr(window.experiment, "choose_folder", lambda: str(folder))
    _choose(window, "open-folder")


def _idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.loader.busy and window.controls.train_button.isEnabled(), timeout=30000)


# -- corrupt IDX folders ---------------------------------------------------------------------------------
def _break(folder, case):
    """Damage a good folder of four IDX files; returns (file named in the message, words of the message)."""
    images, labels = folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz"
    if case == "missing file":
        labels.unlink()
        return str(folder), ["missing 1 of the 4 IDX files", "train labels"]
    if case == "wrong magic":
        raw = bytearray(gzip.decompress(images.read_bytes()))
        raw[:2] = b"\x12\x34"
        images.write_bytes(gzip.compress(bytes(raw)))
        return images.name, ["not an IDX file", "12 34"]
    if case == "truncated gzip":
        data = images.read_bytes()
        images.write_bytes(data[: len(data) // 2])
        return images.name, ["truncated gzip"]
    if case == "corrupt gzip":
        data = bytearray(images.read_bytes())
        data[20:60] = b"\xff" * 40
        images.write_bytes(bytes(data))
        return images.name, ["gzip"]
    if case == "count mismatch":
        shutil.copy(folder / "t10k-labels-idx1-ubyte.gz", labels)  # 30 labels for 120 images
        return images.name, ["120 images", "30 labels"]
    if case == "random bytes":
        labels.write_bytes(bytes(range(256)) * 3)
        return labels.name, ["not an IDX file"]
    raise AssertionError(case)


CORRUPTIONS = ["missing file", "wrong magic", "truncated gzip", "corrupt gzip", "count mismatch", "random bytes"]


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_a_corrupt_idx_folder_shows_a_message_and_keeps_the_data(case, make_window, qtbot, tmp_path, monkeypatch):
    window = make_window()
    folder = tmp_path / "digits"
    write_dataset(folder, n_train=120, n_test=30)
    named, words = _break(folder, case)
    before = window.session.data
    _open_folder(window, monkeypatch, folder)
    _idle(qtbot, window)
    assert window.banner.isVisible() and window.banner.level == "error"
    message = window.banner.text()
    assert named in message, message
    for word in words:
        assert word in message, message
    assert "Traceback" not in message
    # still usable, with the data it had
    assert window.session.data is before and window.session.recipe.data.data_dir is None
    assert window.findChild(QComboBox, "datasetCombo").currentData() == "sample"
    assert window.controls.train_button.isEnabled() and window.trainer_state() == "idle"
    # and the user can fix the folder and open it
    write_dataset(folder, n_train=120, n_test=30)
    if case == "missing file":
        assert (folder / "train-labels-idx1-ubyte.gz").exists()
    _open_folder(window, monkeypatch, folder)
    qtbot.waitUntil(lambda: window.session.data is not before and len(window.session.data.test) == 30, timeout=30000)


# -- downloads -------------------------------------------------------------------------------------------
def _cache(app_dirs):
    return app_dirs / "cache" / "cnnviz" / "datasets" / "mnist"


def _refused(monkeypatch, local_mirror) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    local_mirror.serve_as(monkeypatch, "mnist", "ok")
    import dataclasses

    from cnnviz.data.catalog import DATASETS

    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"],
                                                              mirrors=(f"http://127.0.0.1:{port}/",)))


@pytest.mark.parametrize("mode, words", [
    ("bad", ["is not the expected file", "sha256", "The download was deleted"]),
    ("cut", ["cut off after"]),
    ("404", ["HTTP 404"]),
    ("refused", ["connection was refused", "offline"]),
])
def test_a_failed_download_falls_back_deletes_the_bad_file_and_can_be_retried(
        mode, words, make_window, qtbot, local_mirror, monkeypatch, app_dirs):
    cache = _cache(app_dirs)
    cache.mkdir(parents=True)
    # a good, verified file already in the cache must survive a failed download of the others
    kept = "t10k-labels-idx1-ubyte.gz"
    shutil.copy(local_mirror.folder / kept, cache / kept)
    if mode == "refused":
        _refused(monkeypatch, local_mirror)
    else:
        local_mirror.serve_as(monkeypatch, "mnist", mode)
    window = make_window()
    before = window.session.data
    _choose(window, "mnist")
    _idle(qtbot, window)
    message = window.banner.text()
    assert window.banner.isVisible() and window.banner.level == "warning"
    assert "Could not download MNIST" in message or "train-images-idx3-ubyte.gz" in message, message
    for word in words:
        assert word in message, message
    assert "Using the embedded MNIST sample" in message
    assert window.session.recipe.data.dataset == "sample"
    assert window.findChild(QComboBox, "datasetCombo").currentData() == "sample"
    assert len(window.session.data.train) == len(before.train)  # the sample again, usable
    assert sorted(p.name for p in cache.iterdir()) == [kept]  # nothing bad or partial kept, the good file kept
    assert (cache / kept).read_bytes() == (local_mirror.folder / kept).read_bytes()
    # retry once the mirror is good
    local_mirror.serve_as(monkeypatch, "mnist", "ok")
    _choose(window, "mnist")
    qtbot.waitUntil(lambda: window.session.data.name == "MNIST", timeout=30000)
    _idle(qtbot, window)
    assert sorted(p.name for p in cache.iterdir()) == sorted(STANDARD_FILES.values())
    assert len(window.session.data.test) == 200


@pytest.mark.parametrize("how", ["Esc", "Stop"])
def test_a_download_can_be_cancelled_as_the_status_bar_says(how, make_window, qtbot, local_mirror, monkeypatch,
                                                            app_dirs):
    local_mirror.serve_as(monkeypatch, "mnist", "slow")
    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    before = window.session.data
    progress = []
    window.loader.progress.connect(lambda done, total, text: progress.append(done))
    _choose(window, "mnist")
    qtbot.waitUntil(lambda: any(progress), timeout=30000)
    assert "press Esc or Stop to cancel" in window.statusBar().currentMessage()
    if how == "Esc":
        window.activateWindow()
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    else:
        assert window.controls.stop_button.isEnabled()
        qtbot.mouseClick(window.controls.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.loader.busy, timeout=5000)
    assert window.session.data is before and window.session.recipe.data.dataset == "sample"
    assert window.findChild(QComboBox, "datasetCombo").currentData() == "sample"
    assert window.banner.level != "error"  # a cancel the user asked for is not an error
    assert "cancelled" in window.statusBar().currentMessage().lower()
    assert not _cache(app_dirs).exists() or list(_cache(app_dirs).iterdir()) == []
    assert window.controls.train_button.isEnabled() and not window.controls.stop_button.isEnabled()


def test_switching_datasets_during_a_download_then_closing_starts_nothing(make_window, qtbot, local_mirror,
                                                                          monkeypatch):
    local_mirror.serve_as(monkeypatch, "mnist", "slow")
    local_mirror.serve_as(monkeypatch, "fashion", "slow")
    window = make_window()
    progress = []
    window.loader.progress.connect(lambda done, total, text: progress.append(done))
    _choose(window, "mnist")
    qtbot.waitUntil(lambda: any(progress), timeout=30000)
    _choose(window, "fashion")  # cancels the first download and asks again a moment later
    window.close()
    qtbot.wait(400)  # longer than the window's retry delay: nothing may start after the close
    assert not window.loader.busy


def test_the_epochs_spin_box_cannot_reach_zero(make_window):
    window = make_window()
    spin = window.experiment.epochs_spin
    spin.setValue(0)
    assert spin.value() == 1 and spin.minimum() == 1


def test_editing_a_training_setting_neither_reloads_the_data_nor_clears_the_evaluation(make_window, qtbot):
    from cnnviz.training.trainer import evaluate

    window = make_window()
    data = window.session.data
    evaluation = evaluate(window.session.model, data.test, "test", 1)
    window.session.set_evaluation(evaluation)
    loads = []
    window.loader.busy_changed.connect(loads.append)
    window.experiment.epochs_spin.setValue(7)
    qtbot.waitUntil(lambda: window.session.recipe.train.epochs == 7, timeout=5000)
    qtbot.wait(50)
    assert loads == [] and window.session.data is data and window.session.evaluation is evaluation
