"""Remembered settings (window layout, preset, recipe, dataset) through QSettings.

Set CNNVIZ_NO_SETTINGS=1 to neither read nor write them (the tests do).
"""
from __future__ import annotations

import json
import os

from PySide6.QtCore import QByteArray, QSettings

from cnnviz.config import Recipe
from cnnviz.errors import CnnvizError


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
    if not enabled():
        return None, None
    s = _settings()
    return s.value("window/geometry"), s.value("window/state")


def save_experiment(preset: str, recipe: Recipe) -> None:
    if enabled():
        s = _settings()
        s.setValue("experiment/preset", preset)
        s.setValue("experiment/recipe", json.dumps(recipe.to_dict()))


def load_experiment() -> tuple[str | None, Recipe | None]:
    """The last preset and recipe, or (None, None); a damaged entry is ignored, never fatal."""
    if not enabled():
        return None, None
    s = _settings()
    preset = s.value("experiment/preset")
    try:
        recipe = Recipe.from_dict(json.loads(s.value("experiment/recipe", "null") or "null")).validate()
    except (CnnvizError, TypeError, ValueError):
        recipe = None
    return (str(preset) if preset else None), recipe
