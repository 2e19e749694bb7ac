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


def format_bytes(count: int) -> str:
    """'512 B', '3.2 KB', '41.0 MB', '1.20 GB' (decimal units, as file managers show them)."""
    if count < 1000:
        return f"{count} B"
    for unit, size in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if count < size * 1000 or unit == "GB":
            value = count / size
            return f"{value:.2f} {unit}" if unit == "GB" else f"{value:.1f} {unit}"
    return f"{count} B"
