"""Text for a terminal: the one way every verb aligns columns, dates lines, says how long
something took, reads a day it is given and escapes what it did not write itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from services.runtime.errors import UserError


def clean(text: str) -> str:
    """`text` with every non-printable character escaped (no terminal control from a record)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def parse_since(text: str | None) -> date | None:
    """The `--since` day; anything but an ISO date is a one-line user error."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--since {text!r} is not a date; give it as YYYY-MM-DD") from None


def format_duration(seconds: float | None) -> str:
    """A duration as a person reads it: `42s`, `12m`, `3h 05m`, `2d 04h`; None is `-`."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m" if minutes else f"{secs}s"
