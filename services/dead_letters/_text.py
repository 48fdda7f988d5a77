"""Printing what a record holds safely: escaped text, times, tables, and its value as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


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


NOT_JSON = object()


def json_value(value: bytes) -> Any:
    try:
        return json.loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return NOT_JSON
