"""A record's value as JSON, if it is (escaping and tables: `services.runtime.text.terminal`)."""

from __future__ import annotations

import json
from typing import Any

NOT_JSON = object()


def json_value(value: bytes) -> Any:
    try:
        return json.loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return NOT_JSON
