"""Text for a terminal: the one way every verb aligns columns, dates lines and escapes
what it did not write itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime


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
