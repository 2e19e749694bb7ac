"""Where the files shipped in the top-level ``resources/`` folder live."""
from __future__ import annotations

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("mnist-sample")``."""
    return RESOURCES_DIR.joinpath(*parts)
