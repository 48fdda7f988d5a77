"""From the agencies' inboxes to webhook deliveries: one row per event per subscription.

The gateway reads every agency's inbox as consumer group `ketenbus-gateway`,
at least once (offsets committed after the rows are), and keeps each record
as a pending delivery for every active subscription of that agency that wants
its type. Retrying a receiver for a day cannot hold a Kafka partition that
long, so the deliveries wait in the store, not on the topic. The same record
again finds its rows there (unique on subscription and event id) and adds
nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.envelope import CaseEvent
from contracts.parse import EventRejected, parse_event
from services.runtime.observability.logging import get_logger
from services.runtime.store.tables import webhook_deliveries, webhook_subscriptions

log = get_logger("ketenbus.gateway")

GROUP = "ketenbus-gateway"
CACHE_S = 2.0
"""How long a read of the active subscriptions serves: a new one delivers within it."""


def agency_of_inbox(topic: str) -> str | None:
    prefix, suffix = "agency.", ".inbox"
    if topic.startswith(prefix) and topic.endswith(suffix):
        return topic[len(prefix) : -len(suffix)]
    return None


class InboxIntake:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._subscriptions: dict[str, list[tuple[Any, list[str]]]] = {}
        self._read_at = float("-inf")

    async def _active(self) -> dict[str, list[tuple[Any, list[str]]]]:
        if time.monotonic() - self._read_at > CACHE_S:
            t = webhook_subscriptions.c
            query = select(t.subscription_id, t.agency, t.event_types).where(t.status == "active")
            found: dict[str, list[tuple[Any, list[str]]]] = {}
            async with self.engine.connect() as connection:
                for row in await connection.execute(query):
                    found.setdefault(row.agency, []).append((row.subscription_id, row.event_types))
            self._subscriptions, self._read_at = found, time.monotonic()
        return self._subscriptions

    async def take(self, records: Sequence[Any]) -> int:
        """Keep `records` (aiokafka ConsumerRecords of inboxes) as deliveries; how many new."""
        active = await self._active()
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        for record in records:
            agency = agency_of_inbox(record.topic)
            wanted = active.get(agency or "", [])
            if not wanted:
                continue
            event = _event(record)
            if event is None:
                continue
            for subscription_id, types in wanted:
                if types and event.name not in types:
                    continue
                rows.append(
                    {
                        "subscription_id": subscription_id,
                        "event_id": event.id,
                        "case_id": event.subject,
                        "event_type": event.name,
                        "body": (record.value or b"").decode(),
                        "origin_partition": record.partition,
                        "origin_offset": record.offset,
                        "status": "pending",
                        "attempts": 0,
                        "created_at": now,
                        "retry_from": now,
                        "next_attempt_at": now,
                    }
                )
        if not rows:
            return 0
        t = webhook_deliveries.c
        async with self.engine.begin() as connection:
            seen = {
                (row.subscription_id, row.event_id)
                for row in await connection.execute(
                    select(t.subscription_id, t.event_id).where(
                        t.event_id.in_({row["event_id"] for row in rows})
                    )
                )
            }
            new = [r for r in rows if (r["subscription_id"], r["event_id"]) not in seen]
            if new:
                await connection.execute(insert(webhook_deliveries), new)
        return len(new)


def _event(record: Any) -> CaseEvent[Any] | None:
    try:
        return parse_event(record.value or b"")
    except EventRejected as exc:
        rejected = exc
    # The router wrote it; a record that is no event is nobody's to deliver.
    log.error(
        "unreadable inbox record skipped",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason_code=rejected.code,
    )
    return None


def inboxes(codes: Sequence[str]) -> list[str]:
    return [topics.inbox(code) for code in codes]
