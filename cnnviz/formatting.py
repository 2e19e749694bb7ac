"""Numbers as a person reads them, shared by the CLI and the window."""
from __future__ import annotations


def format_seconds(seconds: float | None) -> str:
    """'1:05', '2h03' or '?' (for None, NaN or a negative time)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"
