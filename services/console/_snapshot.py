"""One overview snapshot: topic sizes, rates, lag, dead letters, open escalations, stuck handoffs.

The Kafka figures come from fetch high-watermarks (`services.runtime.kafka.lag`),
because the embedded broker's `end_offsets` is wrong under producer batching.
A topic's rate is the change of the sum of its partitions' high-watermarks
since the previous snapshot, divided by the time between them. The store
figures come from the escalation service's `escalations` table and the
tracker's `cases` table. A part that cannot be read is left empty and named in
`errors`, so the rest of the page keeps updating when the broker is down.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.registry import AgencyRegistry
from services.dead_letters import counts, read_dead_letters
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.lag import GroupLag, bus_groups, group_lags, high_watermarks
from services.runtime.kafka.topics import bus_topics
from services.runtime.store.tables import cases, escalations

KAFKA_TIMEOUT = 5.0
"""Seconds to connect to the broker, and then to read, per snapshot."""

STUCK_LIMIT = 20
"""How many stuck handoffs a snapshot lists, the most overdue first."""

OPEN = ("raised", "acknowledged")
"""The statuses of an escalation nobody has resolved yet (withdrawn: its case closed)."""


@dataclass(frozen=True, slots=True)
class _Sample:
    monotonic: float
    messages: dict[str, int]


class OverviewSource:
    """Takes snapshots; keeps the previous one's topic sizes (for rates) and the DLQ's tally.

    The dead-letter topic is read whole only when its size changed since the
    last read: it is the one part of a snapshot that grows with the bus's history.
    """

    def __init__(self, settings: Settings, engine: AsyncEngine, registry: AgencyRegistry) -> None:
        self.settings = settings
        self.engine = engine
        self.topics = bus_topics(registry)
        self.groups = bus_groups(registry)
        self._previous: _Sample | None = None
        self._dlq: tuple[int, list[dict[str, Any]]] | None = None

    async def take(self) -> dict[str, Any]:
        """The snapshot as `GET /api/overview` answers it."""
        now = datetime.now(UTC)
        errors: list[str] = []
        ends, lags = await asyncio.gather(self._ends(errors), self._lags(errors))
        messages = dict.fromkeys(self.topics, 0)
        for (topic, _), end in ends.items():
            messages[topic] = messages.get(topic, 0) + end
        sample = _Sample(time.monotonic(), messages) if ends else None
        if sample is None and self._previous is not None:
            messages = dict(self._previous.messages)  # the broker did not answer: the last known
        rows = self._topic_rows(messages, sample)
        if sample is not None:
            self._previous = sample
        return {
            "topics": rows,
            "lag": lag_rows(lags),
            "dead_letters": await self._dead_letters(sample, errors),
            "open_escalations": await self._store(open_escalations(self.engine, now), errors),
            "stuck_handoffs": await self._store(stuck_handoffs(self.engine, now), errors),
            "at": now.isoformat().replace("+00:00", "Z"),
            "errors": errors,
        }

    def _topic_rows(self, messages: dict[str, int], sample: _Sample | None) -> list[dict[str, Any]]:
        previous = self._previous
        elapsed = sample.monotonic - previous.monotonic if sample and previous else 0.0
        rows = []
        for name in sorted(messages):
            rate = 0.0
            if sample is not None and previous is not None and elapsed > 0:
                grown = messages[name] - previous.messages.get(name, messages[name])
                rate = round(max(0, grown) / elapsed, 3)
            rows.append({"topic": name, "messages": messages[name], "rate_per_s": rate})
        return rows

    async def _ends(self, errors: list[str]) -> dict[tuple[str, int], int]:
        try:
            return await high_watermarks(self.settings, self.topics, timeout=KAFKA_TIMEOUT)
        except UserError as exc:
            errors.append(str(exc))
            return {}

    async def _lags(self, errors: list[str]) -> list[GroupLag]:
        try:
            return await group_lags(self.settings, self.groups, timeout=KAFKA_TIMEOUT)
        except UserError as exc:
            errors.append(str(exc))
            return []

    async def _dead_letters(
        self, sample: _Sample | None, errors: list[str]
    ) -> list[dict[str, Any]]:
        size = sample.messages.get(topics.DLQ) if sample is not None else None
        if size is None:  # the topic's size is unknown: the broker did not answer
            return self._dlq[1] if self._dlq else []
        if self._dlq is not None and self._dlq[0] == size:
            return self._dlq[1]
        try:
            letters = await read_dead_letters(self.settings)
        except UserError as exc:
            errors.append(str(exc))
            return self._dlq[1] if self._dlq else []
        tally = [{"reason": code, "count": count} for code, count in counts(letters)]
        self._dlq = (size, tally)
        return tally

    @staticmethod
    async def _store(query: Any, errors: list[str]) -> list[dict[str, Any]]:
        try:
            rows: list[dict[str, Any]] = await query
        except (SQLAlchemyError, OSError) as exc:
            errors.append(f"cannot read the store: {type(exc).__name__}")
            return []
        return rows


def lag_rows(lags: list[GroupLag]) -> list[dict[str, Any]]:
    """One row per group and topic: the lag summed over the topic's partitions."""
    summed: dict[tuple[str, str], int] = defaultdict(int)
    for group in lags:
        for partition in group.partitions:
            summed[group.group, partition.topic] += partition.lag
    return [
        {"group": group, "topic": topic, "lag": lag}
        for (group, topic), lag in sorted(summed.items())
    ]


async def open_escalations(engine: AsyncEngine, now: datetime) -> list[dict[str, Any]]:
    """Unresolved escalations by level: how many, and the age of the oldest (since first raised)."""
    query = (
        select(
            escalations.c.level,
            func.count().label("count"),
            func.min(escalations.c.raised_at).label("oldest"),
        )
        .where(escalations.c.status.in_(OPEN))
        .group_by(escalations.c.level)
        .order_by(escalations.c.level)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        {
            "level": row.level,
            "count": row.count,
            "oldest_age_s": round(max(0.0, (now - row.oldest).total_seconds()), 1),
        }
        for row in rows
    ]


async def stuck_handoffs(
    engine: AsyncEngine, now: datetime, limit: int = STUCK_LIMIT
) -> list[dict[str, Any]]:
    """Open cases whose pending handoff is past its deadline, the most overdue first."""
    query = (
        select(cases.c.case_id, cases.c.pending_from, cases.c.pending_to, cases.c.pending_deadline)
        .where(
            cases.c.status == "open",
            cases.c.pending_handoff_id.is_not(None),
            cases.c.pending_deadline < now,
        )
        .order_by(cases.c.pending_deadline, cases.c.case_id)
        .limit(limit)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        {
            "case_id": str(row.case_id),
            "from": row.pending_from,
            "to": row.pending_to,
            "deadline": row.pending_deadline.isoformat().replace("+00:00", "Z"),
            "overdue_s": round((now - row.pending_deadline).total_seconds(), 1),
        }
        for row in rows
    ]
