"""What the operator pages share: the console's Kafka settings and the JSON API's errors."""

from __future__ import annotations

from datetime import datetime

from starlette.responses import JSONResponse

from services.console.state import Console
from services.runtime.config.settings import Settings
from services.runtime.text.terminal import format_time


def kafka_settings(console: Console) -> Settings:
    """The console's settings with the bootstrap address it was started with.

    The `services.runtime` and `services.dead_letters` readers take the broker
    from the settings; the console may have been given another (`ketenbus up`).
    """
    return console.settings.model_copy(update={"kafka_bootstrap": console.bootstrap})


def api_error(status: int, message: str) -> JSONResponse:
    """The JSON API's error: `{"error": "<one line>"}`."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def when(moment: datetime | str | None) -> str:
    """A time as the CLI prints it (`2026-11-29 09:00:00Z`); an ISO string is read first."""
    if moment is None:
        return "-"
    if isinstance(moment, datetime):
        return format_time(moment)
    try:
        return format_time(datetime.fromisoformat(moment))
    except ValueError:
        return moment
