"""The model editor's Load: a FIFO, a device, a huge or deeply nested file is one message, never a frozen
window or an exception in a slot."""
import os
import signal

import pytest
from PySide6.QtWidgets import QLabel

from cnnviz import limits
from cnnviz.gui.widgets.model_editor import ModelEditor


@pytest.fixture(autouse=True)
def no_hang():
    """Opening a FIFO used to block the window for good: fail after 20 s instead of hanging the suite."""
    def fail(*_):
        raise TimeoutError("blocked opening the model file")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def editor(qtbot, session):
    w = ModelEditor(session)
    qtbot.addWidget(w)
    return w


@pytest.mark.parametrize("case", ["fifo", "device", "too large", "nested 200,000 deep", "2**40 classes"])
def test_a_hostile_model_file_is_one_message(tmp_path, editor, case, monkeypatch):
    path = tmp_path / "model.json"
    if case == "fifo":
        os.mkfifo(path)
        needle = "could not read " + str(path) + ": is a named pipe (FIFO), not a regular file"
    elif case == "device":
        path, needle = "/dev/zero", "could not read /dev/zero: is a device, not a regular file"
    elif case == "too large":
        monkeypatch.setattr(limits, "MAX_MODEL_FILE_BYTES", 100)
        path.write_text('{"layers": []}' + " " * 200)
        needle = "is 214 bytes, more than cnnviz reads from a model file (at most 100 bytes)"
    elif case == "nested 200,000 deep":
        path.write_text("[" * 200_000 + "]" * 200_000)
        needle = "is not a model file: it is nested more than 32 levels deep"
    else:
        path.write_text('{"layers": [{"kind": "dense", "size": 10}], "num_classes": 1099511627776}')
        needle = "num_classes must be at most 1,000, got 1,099,511,627,776"
    before = editor.draft_spec()
    assert not editor.load_model(str(path))
    message = editor.findChild(QLabel, "modelMessage").text()
    assert needle.lower() in message.lower(), message
    assert editor.draft_spec() == before
