"""`ketenbus alerts` talks to the console's escalation API over HTTP: this is that client.

Every failure a user can act on (the console down, a refused token, an unknown
or closed escalation) becomes a UserError with one line: what the console said
and its status. Lines for a terminal are built here too (`line`, `listing`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from services.console._escalation_rows import age_words
from services.runtime.errors import UserError
from services.runtime.text.terminal import clean, format_time, table

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 15.0
IDLE_READ_S = 60.0
"""The console pings a stream every 15 s; this long without a byte means it is gone."""

HEADERS = ("LEVEL", "AGE", "STATUS", "ESCALATION", "CASE", "TRIGGER", "CAUSE")


def _cells(item: dict[str, Any]) -> list[str]:
    status = item["status"] + (f": {item['outcome']}" if item.get("outcome") else "")
    return [
        f"L{item['level']}",
        age_words(item.get("age_s", 0)),
        clean(status),
        clean(item["escalation_id"]),
        clean(item["case_id"]),
        clean(item["trigger"]),
        clean(item["cause"]),
    ]


def listing(items: list[dict[str, Any]]) -> list[str]:
    """The open escalations as a table, or one line saying there are none."""
    if not items:
        return ["no open escalations"]
    return table(HEADERS, [_cells(item) for item in items])


def line(item: dict[str, Any], now: datetime) -> str:
    """One change: when it was seen, then the row's cells."""
    return "  ".join([format_time(now), *_cells(item)])


def _error(response: httpx.Response) -> UserError:
    try:
        said = response.json().get("error")
    except (ValueError, AttributeError):
        said = None
    reason = " ".join(str(said or response.reason_phrase).split())
    return UserError(f"the console refused ({response.status_code}): {reason}")


@dataclass(frozen=True)
class ConsoleClient:
    """The console at `url`, with a bearer `token`."""

    url: str
    token: str

    def _client(self, read: float = REQUEST_TIMEOUT_S) -> httpx.Client:
        # httpx logs every request at INFO: on a terminal that is noise before each line.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        return httpx.Client(
            base_url=self.url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S, read=read),
        )

    def _unreachable(self, exc: httpx.HTTPError) -> UserError:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return UserError(f"the console at {self.url} does not answer: {reason}")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON reply of one request; a UserError for any refusal or failure."""
        try:
            with self._client() as client:
                response = client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise _error(response)
        try:
            return response.json()
        except ValueError:
            raise UserError(f"the console at {self.url} did not answer in JSON") from None

    def stream(self, deadline: float | None) -> Generator[tuple[str, Any], None, None]:
        """(event, data) from the escalation stream until `deadline` (monotonic) or its end."""
        read = IDLE_READ_S if deadline is None else max(0.1, deadline - time.monotonic())
        try:
            with (
                self._client(read=min(read, IDLE_READ_S)) as client,
                client.stream("GET", "/api/stream/escalations") as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                yield from _events(response.iter_lines())
        except httpx.ReadTimeout:
            if deadline is None or time.monotonic() < deadline:
                raise UserError(f"the console at {self.url} stopped answering") from None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None


def _events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    name, data = "message", ""
    for text in lines:
        if text.startswith("event:"):
            name = text[6:].strip()
        elif text.startswith("data:"):
            data += text[5:].strip()
        elif not text and data:
            yield name, json.loads(data)
            name, data = "message", ""
