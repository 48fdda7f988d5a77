"""`POST /v1/events`: an agency's events, taken only once Kafka holds them.

In order: the token (401), the agency's rate (429), the body's size (413) and
media type (415), each event (400, 403), then the ids seen before: one taken
with the same content is answered again as accepted and not sent twice, one
with other content is a 409. The rest go to the agency's outbox, keyed by case
id, and the answer waits for every in-sync replica's acknowledgement.

Sent and then recorded: if the gateway dies between Kafka's ack and its own
record, the sender, never having had its 202, sends again, and the router
refuses the second copy as `duplicate-event-id` (telling the sender, in its
inbox). Nothing acknowledged is ever lost; an event is on the case log once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contracts import topics
from contracts.envelope import CONTENT_TYPE
from contracts.registry import AgencyRegistry
from services.gateway import tokens
from services.gateway.intake import MAX_BODY_BYTES, Taken, take, values_of
from services.gateway.problems import Problem
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import Outgoing, publish_all
from services.runtime.observability.logging import get_logger
from services.runtime.store.tables import gateway_events

log = get_logger("ketenbus.gateway")


class Ingress:
    """The ingress endpoint, with what it needs: the registry, the store, Kafka, a rate."""

    def __init__(
        self, settings: Settings, registry: AgencyRegistry, engine: AsyncEngine, broker: KafkaBroker
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.broker = broker
        # A moving window of `burst` events over burst/rate seconds: on average
        # `rate` per second, at most `burst` at once. Kept per gateway instance.
        window = max(1, math.ceil(settings.gateway_burst / settings.gateway_rate))
        self.rate = RateLimitItemPerSecond(settings.gateway_burst, window)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def endpoint(self, request: Request) -> Response:
        try:
            return await self._take(request)
        except Problem as problem:
            return problem.response()

    async def _take(self, request: Request) -> Response:
        agency = await agency_of_request(self.engine, request)
        body = await _body(request)
        values = values_of(request.headers, body)
        await self._within_rate(agency, len(values))
        found = self.registry.agency(agency)
        if found is None:
            raise Problem(
                403,
                "unknown-agency",
                "Unknown agency",
                f"the token's agency {agency} is not in the registry",
            )
        taken = take(values, agency, found.oin)
        fresh, repeated = await self._repeats(taken)
        if fresh:
            await publish_all(
                self.broker,
                [
                    Outgoing(
                        topics.outbox(agency),
                        str(t.case_id).encode(),
                        t.value,
                        headers={"content-type": CONTENT_TYPE},
                    )
                    for t in fresh
                ],
            )
            await self._record(agency, fresh)
        log.info(
            "events taken",
            agency=agency,
            sent=len(fresh),
            repeated=len(repeated),
            case_ids=sorted({str(t.case_id) for t in taken}),
        )
        return JSONResponse(
            {
                "accepted": [str(t.event_id) for t in taken],
                "repeated": [str(t.event_id) for t in repeated],
            },
            202,
        )

    async def _within_rate(self, agency: str, cost: int) -> None:
        if await self.limiter.hit(self.rate, agency, cost=cost):
            return
        stats = await self.limiter.get_window_stats(self.rate, agency)
        wait = max(1, math.ceil(stats.reset_time - datetime.now(UTC).timestamp()))
        raise Problem(
            429,
            "rate-exceeded",
            "Too many events",
            f"agency {agency} may send {self.rate.amount} events per {self.rate.multiples} s "
            "through the gateway; try again later",
            headers={"Retry-After": str(wait)},
        )

    async def _repeats(self, taken: Sequence[Taken]) -> tuple[list[Taken], list[Taken]]:
        ids = list({t.event_id for t in taken})
        query = select(gateway_events.c.event_id, gateway_events.c.digest).where(
            gateway_events.c.event_id.in_(ids)
        )
        async with self.engine.connect() as connection:
            seen = dict((await connection.execute(query)).all())
        fresh: list[Taken] = []
        repeated: list[Taken] = []
        conflicts: list[str] = []
        in_request: dict[object, str] = {}
        for t in taken:
            earlier = seen.get(t.event_id, in_request.get(t.event_id))
            if earlier is None:
                fresh.append(t)
                in_request[t.event_id] = t.digest
            elif earlier == t.digest:
                repeated.append(t)
            else:
                conflicts.append(str(t.event_id))
        if conflicts:
            raise Problem(
                409,
                "id-reused",
                "Event id reused",
                f"event id(s) {', '.join(conflicts)} were taken before with other content; "
                "a new event needs a new id",
            )
        return fresh, repeated

    async def _record(self, agency: str, fresh: Sequence[Taken]) -> None:
        now = datetime.now(UTC)
        rows = [
            {"event_id": t.event_id, "agency": agency, "digest": t.digest, "accepted_at": now}
            for t in fresh
        ]
        try:
            async with self.engine.begin() as connection:
                await connection.execute(insert(gateway_events), rows)
        except IntegrityError:
            # Another request took one of these ids at the same moment; both copies are on
            # the outbox and the router delivers one. Keep the rows that are not there yet.
            for row in rows:
                with contextlib.suppress(IntegrityError):
                    async with self.engine.begin() as connection:
                        await connection.execute(insert(gateway_events), [row])


async def agency_of_request(engine: AsyncEngine, request: Request) -> str:
    """The agency the request's bearer token speaks for; 401 without a valid one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    agency = await tokens.agency_of(engine, token.strip()) if scheme.lower() == "bearer" else None
    if agency is None:
        raise Problem(
            401,
            "unauthenticated",
            "Not authenticated",
            "send Authorization: Bearer <token>, a token `ketenbus gateway token new` made",
            headers={"WWW-Authenticate": 'Bearer realm="ketenbus"'},
        )
    return agency


async def _body(request: Request) -> bytes:
    """The body, read no further than the largest request the gateway takes (413)."""
    declared = request.headers.get("content-length")
    # ASCII digits only: "²" is a digit to str.isdigit, not to int().
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and int(declared) > MAX_BODY_BYTES
    ):
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> Problem:
    return Problem(
        413,
        "request-too-large",
        "Request too large",
        f"a request carries at most {MAX_BODY_BYTES} bytes (a batch of 100 events of 64 KB)",
    )
