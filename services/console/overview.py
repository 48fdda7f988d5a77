"""Operator overview: topic rates, consumer lag, dead letters, open escalations, stuck handoffs.

`GET /` renders the latest snapshot; `GET /api/overview` answers it as JSON;
`GET /api/stream/overview` sends it as the server-sent event `overview` each
time the console's one sampler takes a new one (every 2 s, `live`).
Operators only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.console._pages import api_error, when
from services.console._templates import render
from services.console.access import require_operator
from services.console.live import NoSnapshot, sampler_of
from services.runtime.text.terminal import format_duration

FIRST_SNAPSHOT_S = 15.0
"""How long a page or the API waits for the sampler's first snapshot."""

STREAM_WAIT_S = 10.0
"""How long a stream waits for a snapshot before it checks on its client again."""


async def page(request: Request) -> Response:
    require_operator(request)
    helpers = {"duration": format_duration, "when": when}
    try:
        snapshot = await sampler_of(request).latest(FIRST_SNAPSHOT_S)
    except NoSnapshot as exc:
        context = {**helpers, "snapshot": None, "error": str(exc)}
        return render(request, "overview.html", context, 503)
    return render(request, "overview.html", {**helpers, "snapshot": snapshot, "error": None})


async def api(request: Request) -> Response:
    require_operator(request)
    try:
        snapshot = await sampler_of(request).latest(FIRST_SNAPSHOT_S)
    except NoSnapshot as exc:
        return api_error(503, str(exc))
    return JSONResponse(snapshot)


async def stream(request: Request) -> Response:
    """Each new snapshot as event `overview`, until the client goes away."""
    require_operator(request)
    sampler = sampler_of(request)

    async def events() -> AsyncIterator[dict[str, Any]]:
        version = 0
        async with sampler.subscribed():
            # Bounded by the client: EventSourceResponse cancels this generator
            # when the client disconnects; the check covers a stalled sampler.
            while not await request.is_disconnected():
                try:
                    version, snapshot = await sampler.next_after(version, STREAM_WAIT_S)
                except NoSnapshot:
                    continue
                yield {"event": "overview", "data": json.dumps(snapshot)}

    return EventSourceResponse(events(), ping=15)


routes: list[BaseRoute] = [
    Route("/", page),
    Route("/api/overview", api),
    Route("/api/stream/overview", stream),
]
