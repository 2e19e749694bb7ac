"""Before Qt can abort for want of X11 libraries or a display, cnnviz says what is missing and how to fix it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cnnviz.display_check import APT_LINE, XCB_LIBRARIES, missing_display_support

PLUGIN = Path("/qt/plugins/platforms/libqxcb.so")


def loader_missing(*names):
    def load(name):
        if name == str(PLUGIN):
            raise OSError(f"{names[0]}: cannot open shared object file: No such file or directory")
        if name in names:
            raise OSError(f"{name}: cannot open shared object file")
    return load


def test_missing_libraries_are_named_with_the_apt_line():
    message = missing_display_support({"DISPLAY": ":0"}, "linux", loader_missing("libxcb-cursor.so.0",
                                                                                 "libxcb-icccm.so.4"), PLUGIN)
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4" in message
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in message


def test_a_library_outside_the_table_is_still_named():
    message = missing_display_support({"DISPLAY": ":0"}, "linux", loader_missing("libfoo-bar.so.3"), PLUGIN)
    assert "libfoo-bar.so.3" in message


def test_no_display_is_said_plainly_when_the_libraries_are_there():
    message = missing_display_support({}, "linux", lambda name: None, PLUGIN)
    assert "DISPLAY is not set" in message
    assert missing_display_support({"DISPLAY": ":1"}, "linux", lambda name: None, PLUGIN) is None


def test_other_platforms_and_plugins_are_not_checked():
    broken = loader_missing("libxcb.so.1")
    for env, platform in (({"QT_QPA_PLATFORM": "offscreen"}, "linux"), ({"WAYLAND_DISPLAY": "wayland-0"}, "linux"),
                          ({}, "darwin"), ({}, "win32")):
        assert missing_display_support(env, platform, broken, PLUGIN) is None


def test_the_readme_names_every_package():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert APT_LINE in readme
    assert len(set(XCB_LIBRARIES.values())) == len(XCB_LIBRARIES)


def test_the_app_without_a_display_exits_with_one_line_not_an_abort(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="xcb", CNNVIZ_NO_SETTINGS="1", CNNVIZ_DATA_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "cnnviz"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "apt-get install" in lines[0] or "DISPLAY is not set" in lines[0]
