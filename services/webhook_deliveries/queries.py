"""What the gateway has delivered, is delivering and gave up: for operators to read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.tables import (
    webhook_attempts,
    webhook_deliveries,
    webhook_subscriptions,
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one subscription, without its body."""

    id: int
    subscription_id: UUID
    event_id: UUID
    case_id: UUID
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a delivery: when, what the receiver answered (None: no answer), how long."""

    attempt: int
    at: datetime
    status: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Tally:
    """A subscription's deliveries by status; `failing` are pending ones that failed before."""

    pending: int = 0
    failing: int = 0
    delivered: int = 0
    dead: int = 0
    dropped: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.delivered + self.dead + self.dropped


@dataclass(frozen=True, slots=True)
class Overview:
    """A subscription as an operator sees it: never its Authorization value or signing secret."""

    subscription_id: UUID
    agency: str
    callback: str
    """The callback URL as `shown_callback` shows it."""
    status: str
    event_types: list[str]
    created_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    tally: Tally = field(default_factory=Tally)
    last_error: str | None = None
    last_error_at: datetime | None = None
    """The most recent failed attempt of any of its deliveries: what it said, and when."""


_DELIVERY_COLUMNS = [webhook_deliveries.c[name] for name in Delivery.__dataclass_fields__]
_ATTEMPT_COLUMNS = [webhook_attempts.c[name] for name in Attempt.__dataclass_fields__]
_SUBSCRIPTION_COLUMNS = [
    webhook_subscriptions.c[name]
    for name in (
        "subscription_id",
        "agency",
        "callback_url",
        "status",
        "event_types",
        "created_at",
        "ended_at",
        "end_reason",
    )
]


def shown_callback(url: str) -> str:
    """`url` without its user info, query and fragment, which may carry a credential."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "(not a URL)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _failed(a: Any) -> ColumnElement[bool]:
    """An attempt the receiver did not answer 2xx (or did not answer at all)."""
    return or_(a.status.is_(None), a.status < 200, a.status >= 300)


async def recent(
    engine: AsyncEngine, subscription_id: UUID | None, status: str | None, limit: int
) -> list[Delivery]:
    """The `limit` most recent deliveries, newest first, of one subscription or status."""
    t = webhook_deliveries.c
    query = select(*_DELIVERY_COLUMNS).order_by(t.id.desc()).limit(limit)
    if subscription_id is not None:
        query = query.where(t.subscription_id == subscription_id)
    if status is not None:
        query = query.where(t.status == status)
    async with engine.connect() as connection:
        return [Delivery(*row) for row in await connection.execute(query)]


async def delivery(engine: AsyncEngine, delivery_id: int) -> Delivery | None:
    """The delivery with this id, None if there is none."""
    query = select(*_DELIVERY_COLUMNS).where(webhook_deliveries.c.id == delivery_id)
    async with engine.connect() as connection:
        row = (await connection.execute(query)).first()
    return Delivery(*row) if row is not None else None


async def attempts(engine: AsyncEngine, delivery_id: int) -> list[Attempt]:
    """Every attempt of one delivery, the first first."""
    a = webhook_attempts.c
    query = select(*_ATTEMPT_COLUMNS).where(a.delivery_id == delivery_id).order_by(a.attempt)
    async with engine.connect() as connection:
        return [Attempt(*row) for row in await connection.execute(query)]


async def counts(engine: AsyncEngine) -> dict[tuple[UUID, str], int]:
    """Deliveries per subscription and status."""
    t = webhook_deliveries.c
    query = select(t.subscription_id, t.status, func.count()).group_by(t.subscription_id, t.status)
    async with engine.connect() as connection:
        return {(sub, status): n for sub, status, n in await connection.execute(query)}


def _only(query: Select[Any], subscription_id: UUID | None) -> Select[Any]:
    if subscription_id is None:
        return query
    return query.where(webhook_deliveries.c.subscription_id == subscription_id)


async def overviews(engine: AsyncEngine, subscription_id: UUID | None = None) -> list[Overview]:
    """Every subscription (or the one named), oldest first, with its tally and last error."""
    t, a, s = webhook_deliveries.c, webhook_attempts.c, webhook_subscriptions.c
    subscriptions = select(*_SUBSCRIPTION_COLUMNS).order_by(s.created_at, s.subscription_id)
    if subscription_id is not None:
        subscriptions = subscriptions.where(s.subscription_id == subscription_id)
    by_status = _only(
        select(t.subscription_id, t.status, func.count()).group_by(t.subscription_id, t.status),
        subscription_id,
    )
    # Failing: pending, and failed at least once since its retry horizon began, so a
    # replayed delivery is not failing for what it went through before the replay.
    failed_since = exists().where(
        a.delivery_id == t.id, a.at >= t.retry_from, _failed(webhook_attempts.c)
    )
    failing = _only(
        select(t.subscription_id, func.count())
        .where(t.status == "pending", failed_since)
        .group_by(t.subscription_id),
        subscription_id,
    )
    newest = (
        func.row_number()
        .over(partition_by=t.subscription_id, order_by=(a.at.desc(), a.delivery_id.desc()))
        .label("newest")
    )
    failures = _only(
        select(t.subscription_id, a.error, a.status, a.at, newest)
        .join(webhook_attempts, and_(a.delivery_id == t.id, _failed(webhook_attempts.c)))
        .select_from(webhook_deliveries),
        subscription_id,
    ).subquery()
    last_errors = select(
        failures.c.subscription_id, failures.c.error, failures.c.status, failures.c.at
    ).where(failures.c.newest == 1)
    async with engine.connect() as connection:
        found = list(await connection.execute(subscriptions))
        tallies: dict[UUID, dict[str, int]] = {}
        for sub, status, n in await connection.execute(by_status):
            tallies.setdefault(sub, {})[status] = n
        for sub, n in await connection.execute(failing):
            tallies.setdefault(sub, {})["failing"] = n
        errors = {row.subscription_id: row for row in await connection.execute(last_errors)}
    return [
        _overview(row, tallies.get(row.subscription_id, {}), errors.get(row.subscription_id))
        for row in found
    ]


def _overview(row: Any, tally: dict[str, int], error: Any | None) -> Overview:
    return Overview(
        subscription_id=row.subscription_id,
        agency=row.agency,
        callback=shown_callback(row.callback_url),
        status=row.status,
        event_types=list(row.event_types),
        created_at=row.created_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        tally=Tally(**{name: tally.get(name, 0) for name in Tally.__dataclass_fields__}),
        last_error=None if error is None else error.error or f"HTTP {error.status}",
        last_error_at=None if error is None else error.at,
    )


async def overview(engine: AsyncEngine, subscription_id: UUID) -> Overview | None:
    """The subscription with this id, as `overviews` has it; None if there is none."""
    found = await overviews(engine, subscription_id)
    return found[0] if found else None
