"""Escalation teams' feed: the board page, its JSON API and its live stream.

- `GET /escalations`: the open escalations, highest level and oldest first;
  a team member acknowledges and resolves inline, an operator only looks.
- `GET /api/escalations?status=open|all`: the same as JSON (`_escalation_rows`).
- `GET /api/stream/escalations`: server-sent events: `snapshot` (the open
  escalations) on connect, then `escalation` (one object) per change, from one
  shared poller (`_escalation_feed`); the stream ends when the client goes away.
- `POST /api/escalations/{id}/acknowledge` and `.../resolve`: an event on the
  case log in the team's name (`_escalation_actions`).

A team member sees the escalations that alert its own team only (and, live,
the change that moves one of them on to a higher team); an operator sees all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from contracts.events import TeamRef
from services.console._escalation_actions import OUTCOMES, acknowledge, resolve
from services.console._escalation_feed import EscalationFeed, FeedClosed
from services.console._escalation_rows import (
    age_words,
    aged,
    board_order,
    is_open,
    listed,
    visible_to,
)
from services.console._templates import render
from services.console.access import principal_of
from services.console.state import console_of

WAIT_S = 5.0
"""How long a stream waits for a change before it checks on its client again."""


def _viewer(request: Request) -> TeamRef | None:
    """Whose escalations the caller sees: its team's, or all (None) for an operator."""
    principal = principal_of(request)
    if principal.role == "operator":
        return None
    if principal.team is None:
        raise HTTPException(403, "a team member without a team sees nothing")
    return principal.team


def feed_of(request: Request) -> EscalationFeed:
    """The console's one feed, made on first use and closed with the console."""
    console = console_of(request)
    return console.shared("escalation_feed", lambda: EscalationFeed(console.engine))


async def page(request: Request) -> Response:
    team = _viewer(request)
    items = [aged(item) for item in await listed(console_of(request).engine, team, "open")]
    registry = console_of(request).registry
    context = {
        "escalations": items,
        "acts": team is not None,
        "outcomes": OUTCOMES,
        "agencies": [agency.code for agency in registry.agencies],
        "age": age_words,
    }
    return render(request, "escalations.html", context)


async def api(request: Request) -> Response:
    team = _viewer(request)
    status = request.query_params.get("status", "open")
    if status not in ("open", "all"):
        raise HTTPException(400, "status must be open or all")
    items = await listed(console_of(request).engine, team, "open" if status == "open" else "all")
    return JSONResponse([aged(item) for item in items])


async def stream(request: Request) -> Response:
    """`snapshot` on connect, then `escalation` per change, until the client goes away."""
    team = _viewer(request)
    feed = feed_of(request)

    async def events() -> AsyncIterator[dict[str, Any]]:
        try:
            async with feed.follow() as follower:
                mine = [aged(i) for i in follower.snapshot if visible_to(team, i) and is_open(i)]
                shown = {item["escalation_id"] for item in mine}
                yield {"event": "snapshot", "data": json.dumps(board_order(mine))}
                # Bounded by the client: EventSourceResponse cancels this generator when
                # it disconnects; the check covers a feed with nothing to say.
                while not await request.is_disconnected():
                    try:
                        item = await asyncio.wait_for(follower.queue.get(), WAIT_S)
                    except TimeoutError:
                        continue
                    if item is None:
                        return  # dropped or shutting down: the client reconnects
                    if visible_to(team, item):
                        shown.add(item["escalation_id"])
                    elif item["escalation_id"] in shown:
                        # It climbed past this team: one last change says where it went.
                        shown.discard(item["escalation_id"])
                    else:
                        continue
                    yield {"event": "escalation", "data": json.dumps(aged(item))}
        except FeedClosed as exc:
            yield {"event": "error", "data": json.dumps({"error": str(exc)})}

    return EventSourceResponse(events(), ping=15)


routes: list[BaseRoute] = [
    Route("/escalations", page),
    Route("/api/escalations", api),
    Route("/api/stream/escalations", stream),
    Route("/api/escalations/{escalation_id}/acknowledge", acknowledge, methods=["POST"]),
    Route("/api/escalations/{escalation_id}/resolve", resolve, methods=["POST"]),
]
