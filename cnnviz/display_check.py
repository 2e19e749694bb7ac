"""Can Qt open a window here? Checked before the QApplication exists, because Qt aborts the process
("Could not load the Qt platform plugin xcb") when its X11 platform cannot load, with no way to catch it.

On Linux under X11, Qt's xcb platform plugin needs a set of system X libraries that a fresh Debian or
Ubuntu machine often lacks (Ubuntu desktops commonly miss ``libxcb-cursor0``). We try to load the plugin
the way Qt will; when that fails, each library it needs is tried in turn so that one message can name
every missing package and the one ``apt-get install`` line that fixes it.
"""
from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# The system libraries Qt 6's xcb platform needs (the plugin, libQt6XcbQpa and libQt6Gui, as linked in the
# PySide6 wheels), and the Debian/Ubuntu package of each.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}
# Every package above: what the README tells a Debian/Ubuntu user to install once.
APT_LINE = "sudo apt-get install " + " ".join(dict.fromkeys(XCB_LIBRARIES.values()))

Loader = Callable[[str], object]


def missing_display_support(env: Mapping[str, str] | None = None, platform: str | None = None,
                            loader: Loader | None = None, plugin: Path | None = None) -> str | None:
    """None when Qt can open a window here (or we cannot tell: then Qt's own message stands); else one
    sentence that says what is missing and what to do.

    Only Linux under X11 is checked: another platform plugin (``QT_QPA_PLATFORM=offscreen``, Wayland) or
    another system needs none of it."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    loader = ctypes.CDLL if loader is None else loader
    if not platform.startswith("linux"):
        return None
    qpa = env.get("QT_QPA_PLATFORM", "")
    if qpa and not qpa.startswith("xcb"):
        return None
    if not qpa and env.get("WAYLAND_DISPLAY"):
        return None  # Qt uses its Wayland plugin in a Wayland session
    plugin = _xcb_plugin() if plugin is None else plugin
    if plugin is None:
        return None
    try:
        loader(str(plugin))
    except OSError as exc:
        missing = [name for name in XCB_LIBRARIES if not _loads(loader, name)]
        named = _library_in(str(exc))
        if named and named not in missing:
            missing.append(named)
        if not missing:
            return f"Qt's X11 platform plugin cannot be loaded: {exc}"
        packages = [XCB_LIBRARIES.get(name, name) for name in missing]
        return (f"the window needs X11 libraries that this system lacks ({', '.join(missing)}). On Debian or "
                f"Ubuntu install them with: sudo apt-get install {' '.join(dict.fromkeys(packages))} "
                f"(the headless commands, e.g. `cnnviz train`, work without them)")
    if not env.get("DISPLAY"):
        return ("no display to open the window on (DISPLAY is not set): start cnnviz from a desktop session "
                "or `ssh -X`, or use the headless commands such as `cnnviz train`")
    return None


def _xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin of the installed PySide6, if there is one."""
    try:
        import PySide6
    except ImportError:
        return None
    path = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return path if path.is_file() else None


def _loads(loader: Loader, name: str) -> bool:
    try:
        loader(name)
    except OSError:
        return False
    return True


def _library_in(message: str) -> str | None:
    """The library named by a dlopen error ("libxcb-cursor.so.0: cannot open shared object file ...")."""
    match = re.search(r"(lib[\w.+-]+\.so(?:\.\d+)*)", message)
    return match.group(1) if match and "cannot open" in message else None
