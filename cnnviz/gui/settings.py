"""Remembered settings (window layout, preset, recipe, dataset) through QSettings.

Set CNNVIZ_NO_SETTINGS=1 to neither read nor write them (the tests do).

What is read back is checked like any other outside data: a value of the wrong type, or a recipe that
does not pass :meth:`Recipe.from_json` (types and ranges), is removed from the settings (so the next
launch is clean), the default is used instead, and :func:`take_problems` says so once, for the window
to show.
"""
from __future__ import annotations

import json
import os

from PySide6.QtCore import QByteArray, QSettings

from cnnviz.config import Recipe
from cnnviz.errors import CnnvizError
from cnnviz.validation import MAX_TEXT, describe

_problems: list[str] = []  # damaged entries found since the last take_problems()


def enabled() -> bool:
    return not os.environ.get("CNNVIZ_NO_SETTINGS")


def _settings() -> QSettings:
    return QSettings("cnnviz", "cnnviz")


def save_window(geometry: QByteArray, state: QByteArray) -> None:
    if enabled():
        s = _settings()
        s.setValue("window/geometry", geometry)
        s.setValue("window/state", state)


def load_window() -> tuple[QByteArray | None, QByteArray | None]:
    """The remembered window geometry and dock state; an entry that is not binary data is dropped."""
    if not enabled():
        return None, None
    s = _settings()
    values = []
    for key in ("window/geometry", "window/state"):
        value = s.value(key)
        if value is not None and not isinstance(value, QByteArray):
            _drop(s, key, f"expected binary window data, got {describe(value)}")
            value = None
        values.append(value)
    return values[0], values[1]


def save_experiment(preset: str, recipe: Recipe) -> None:
    if enabled():
        s = _settings()
        s.setValue("experiment/preset", preset)
        s.setValue("experiment/recipe", json.dumps(recipe.to_dict()))


def load_experiment() -> tuple[str | None, Recipe | None]:
    """The last preset and recipe, or None for each; a damaged entry is dropped, never fatal."""
    if not enabled():
        return None, None
    s = _settings()
    preset = s.value("experiment/preset")
    if preset is not None and not (isinstance(preset, str) and len(preset) <= MAX_TEXT):
        _drop(s, "experiment/preset", f"expected a preset name, got {describe(preset)}")
        preset = None
    recipe = None
    text = s.value("experiment/recipe")
    if text is not None:
        try:
            recipe = Recipe.from_json(text)
        except CnnvizError as exc:
            _drop(s, "experiment/recipe", str(exc))  # the preset's own recipe is used instead
    return (preset or None), recipe


def save_animation(choices: dict) -> None:
    """The last animation export's choices (File -> Export -> Animation)."""
    if enabled():
        s = _settings()
        s.setValue("export/animation", json.dumps({**choices, "size": list(choices["size"])}))


def load_animation() -> dict:
    """The last animation export's choices, each checked; {} (and the entry dropped) when damaged."""
    if not enabled():
        return {}
    s = _settings()
    text = s.value("export/animation")
    if text is None:
        return {}
    from cnnviz.exports.animation import AnimationOptions, check_options

    try:
        raw = json.loads(text) if isinstance(text, str) and len(text) <= MAX_TEXT else None
        if not isinstance(raw, dict):
            raise CnnvizError(f"expected the choices of an animation export, got {describe(text)}")
        size = raw.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size)):
            raise CnnvizError(f"expected a size [width, height], got {describe(size)}")
        for key in ("fps", "frames"):
            if type(raw.get(key)) is not int:
                raise CnnvizError(f"expected a whole number of {key}, got {describe(raw.get(key))}")
        for key in ("kind", "view"):
            if not isinstance(raw.get(key), str):
                raise CnnvizError(f"expected a {key} name, got {describe(raw.get(key))}")
        if raw.get("scale") is not None and not isinstance(raw["scale"], str):
            raise CnnvizError(f"expected a colour scale name, got {describe(raw['scale'])}")
        choices = {"kind": raw["kind"], "view": raw["view"], "size": tuple(size), "fps": raw["fps"],
                   "frames": raw["frames"], "scale": raw.get("scale")}
        check_options(AnimationOptions(run="", out="", **choices))
    except (CnnvizError, ValueError) as exc:
        _drop(s, "export/animation", str(exc))
        return {}
    return choices


def take_problems() -> str | None:
    """One line about the damaged settings found and reset since the last call, or None."""
    if not _problems:
        return None
    text = "Some remembered settings were damaged and have been reset to their defaults: " + "; ".join(_problems)
    _problems.clear()
    return text


def _drop(s: QSettings, key: str, why: str) -> None:
    s.remove(key)
    s.sync()  # the next launch starts clean even if this one ends abruptly
    _problems.append(f"{key} ({why})")
