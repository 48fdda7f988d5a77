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

The store's visits are shared by the requests in hand at the same moment
(`Coalesced`): one read for the tokens and the ids seen before, one write for
the records. A visit costs more than the rows it carries (on SQLite one call
into the store's thread, `StoreVisits`; docs/performance.md).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar
from uuid import UUID

from faststream.kafka import KafkaBroker
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy import Connection, select
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
from services.runtime.store.bulk import insert_new
from services.runtime.store.chunks import chunks
from services.runtime.store.tables import gateway_events, gateway_tokens
from services.runtime.store.visits import StoreVisits

log = get_logger("ketenbus.gateway")

T = TypeVar("T")
R = TypeVar("R")


class Coalesced(Generic[T, R]):
    """Calls made while a visit to the store runs, answered together by the next visit.

    `work` takes the items of every call of one visit and gives each call's result,
    in order. A call that finds no visit running starts one at once, so a lone
    request waits for nobody; calls made meanwhile go together in the next visit.
    Each call still sees the store as it is after the call was made (a token
    revoked before is refused, a record is committed before its call returns). A
    visit that fails fails each of its calls; the next visit is tried afresh.
    """

    def __init__(self, work: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._work = work
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._visiting: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._visiting is None:
            self._visiting = asyncio.create_task(self._visits())
        return await future

    async def _visits(self) -> None:
        calls: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                calls, self._waiting = self._waiting, []
                try:
                    results = await self._work([item for item, _ in calls])
                except Exception as exc:  # noqa: BLE001 - handed to each call, which raises it
                    for _, future in calls:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), result in zip(calls, results, strict=True):
                        if not future.done():
                            future.set_result(result)
                calls = []
        finally:
            self._visiting = None
            # Cancelled (the gateway stopping): no call waits for a visit that never comes.
            for _, future in [*calls, *self._waiting]:
                future.cancel()
            self._waiting = []


@dataclass(frozen=True, slots=True)
class _Lookup:
    """What a request asks of the store before it sends: its token's agency, or its ids."""

    token: str | None = None
    ids: frozenset[UUID] = frozenset()


@dataclass(frozen=True, slots=True)
class _Found:
    agency: str | None
    seen: dict[UUID, str]


class Ingress:
    """The ingress endpoint, with what it needs: the registry, the store, Kafka, a rate."""

    def __init__(
        self,
        settings: Settings,
        registry: AgencyRegistry,
        visits: StoreVisits,
        broker: KafkaBroker,
    ) -> None:
        self.registry = registry
        self.visits = visits
        self.broker = broker
        # A moving window of `burst` events over burst/rate seconds: on average
        # `rate` per second, at most `burst` at once. Kept per gateway instance.
        window = max(1, math.ceil(settings.gateway_burst / settings.gateway_rate))
        self.rate = RateLimitItemPerSecond(settings.gateway_burst, window)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self._lookups = Coalesced(self._look_up)
        self._inserted = Coalesced(self._insert)

    async def endpoint(self, request: Request) -> Response:
        try:
            return await self._take(request)
        except Problem as problem:
            return problem.response()

    async def _take(self, request: Request) -> Response:
        token = _bearer(request)
        agency = _known(await self._agency_of(token) if token is not None else None)
        body = await _body(request)
        values = values_of(request.headers, body)
        await self.within_rate(agency, len(values))
        found = self.registry.agency(agency)
        if found is None:
            raise Problem(
                403,
                "unknown-agency",
                "Unknown agency",
                f"the token's agency {agency} is not in the registry",
            )
        taken = take(values, agency, found.oin)
        fresh, repeated = await self.repeats(taken)
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
            await self.record(agency, fresh)
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

    async def within_rate(self, agency: str, cost: int) -> None:
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

    async def _agency_of(self, token: str) -> str | None:
        return (await self._lookups(_Lookup(token=token))).agency

    async def _seen(self, ids: set[UUID]) -> dict[UUID, str]:
        return (await self._lookups(_Lookup(ids=frozenset(ids)))).seen

    async def _look_up(self, lookups: list[_Lookup]) -> list[_Found]:
        """Every lookup of one visit in one read: the tokens' agencies (valid and unrevoked,
        as `tokens.agency_of` finds them) and the digests of the ids taken before.

        One read for both, since a request's token and another's ids are mostly in hand
        at the same moment: a visit costs more than the rows it reads.
        """
        presented = {lookup.token for lookup in lookups if lookup.token is not None}
        digests = {
            token: tokens.digest(token) for token in presented if token.startswith(tokens.PREFIX)
        }
        wanted = list(set(digests.values()))
        ids = list(set().union(*(lookup.ids for lookup in lookups)))
        agencies: dict[str, str] = {}
        seen: dict[UUID, str] = {}
        if wanted or ids:
            agencies, seen = await self.visits.read(partial(_known_before, wanted, ids))
        return [
            _Found(agencies.get(digests.get(lookup.token or "", "")), seen) for lookup in lookups
        ]

    async def repeats(self, taken: Sequence[Taken]) -> tuple[list[Taken], list[Taken]]:
        seen = await self._seen({t.event_id for t in taken})
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

    async def record(self, agency: str, fresh: Sequence[Taken]) -> None:
        now = datetime.now(UTC)
        rows = [
            {"event_id": t.event_id, "agency": agency, "digest": t.digest, "accepted_at": now}
            for t in fresh
        ]
        await self._inserted(rows)

    async def _insert(self, calls: list[list[dict[str, Any]]]) -> list[None]:
        """Every call's rows in one transaction; committed when each call returns.

        An id already there was taken by another request at the same moment: both
        copies are on the outbox and the router delivers one, so its row is kept.
        """
        await self.visits.write(partial(_record, [row for call in calls for row in call]))
        return [None] * len(calls)


def _known_before(
    digests: list[str], ids: list[UUID], connection: Connection
) -> tuple[dict[str, str], dict[UUID, str]]:
    """The agencies of the unrevoked tokens with these digests, the digests of these ids."""
    t, e = gateway_tokens.c, gateway_events.c
    agencies: dict[str, str] = {}
    seen: dict[UUID, str] = {}
    for some_digests in chunks(digests):
        query = select(t.token_sha256, t.agency).where(
            t.token_sha256.in_(some_digests), t.revoked_at.is_(None)
        )
        agencies.update(connection.execute(query).all())
    for some_ids in chunks(ids):
        query = select(e.event_id, e.digest).where(e.event_id.in_(some_ids))
        seen.update(connection.execute(query).all())
    return agencies, seen


def _record(rows: list[dict[str, Any]], connection: Connection) -> None:
    connection.execute(insert_new(connection.dialect.name, gateway_events), rows)


async def agency_of_request(engine: AsyncEngine, request: Request) -> str:
    """The agency the request's bearer token speaks for; 401 without a valid one."""
    token = _bearer(request)
    return _known(await tokens.agency_of(engine, token) if token is not None else None)


def _bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header; None without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _known(agency: str | None) -> str:
    """The agency a token was found for; 401 if none was."""
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
