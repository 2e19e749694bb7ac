"""The project's error types.

Every error a user can cause (a bad file, an impossible layer spec, a bad option, a diverging run)
is raised as a :class:`CnnvizError` subclass whose message is written for the user and shown as-is by
the CLI (``error: ...``) and the window (a message box or status line). Anything else that escapes is a
bug.
"""
from __future__ import annotations


class CnnvizError(Exception):
    """Base class of user-facing errors; ``str(err)`` is the message shown to the user."""


class DataError(CnnvizError):
    """A dataset file is missing, corrupt, truncated or inconsistent."""


class DownloadError(DataError):
    """A dataset could not be downloaded (offline, cut off, checksum mismatch)."""


class SpecError(CnnvizError):
    """A model spec is impossible (shapes, channels, class count); names the layer and the numbers."""


class CheckpointError(CnnvizError):
    """A checkpoint or run file cannot be read or does not match its model."""


class TrainingError(CnnvizError):
    """Training cannot start or had to stop (NaN loss, empty data, out of memory)."""


class ConfigError(CnnvizError):
    """A recipe or option value is out of range."""
