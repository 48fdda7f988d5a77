"""From the agencies' inboxes to webhook deliveries: one row per event per subscription.

The gateway reads every agency's inbox as consumer group `ketenbus-gateway`,
at least once (offsets committed after the rows are), and keeps each record
as a pending delivery for every active subscription of that agency that wants
its type and channel, in the form it asks for (`services.gateway.subscriptions`).
Retrying a receiver for a day cannot hold a Kafka partition that
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
from contracts.events import ZgwNotificatie
from contracts.parse import EventRejected, parse_event
from services.gateway.subscriptions import BUS_CHANNEL, NOTIFICATIES
from services.runtime.observability.logging import get_logger
from services.runtime.store.engine import write_transaction
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
        self._subscriptions: dict[str, list[Any]] = {}
        self._read_at = float("-inf")

    async def _active(self) -> dict[str, list[Any]]:
        if time.monotonic() - self._read_at > CACHE_S:
            t = webhook_subscriptions.c
            query = select(
                t.subscription_id, t.agency, t.event_types, t.channels, t.delivery_format
            ).where(t.status == "active")
            found: dict[str, list[Any]] = {}
            async with self.engine.connect() as connection:
                for row in await connection.execute(query):
                    found.setdefault(row.agency, []).append(row)
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
            for subscription in wanted:
                body = _body(subscription, event, record.value or b"")
                if body is None:
                    continue
                rows.append(
                    {
                        "subscription_id": subscription.subscription_id,
                        "event_id": event.id,
                        "case_id": event.subject,
                        "event_type": event.name,
                        "body": body,
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
        async with write_transaction(self.engine) as connection:
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


def channel_of(event: CaseEvent[Any]) -> str:
    """The Notificaties channel an event is on: its message's, else the bus's own."""
    return event.data.kanaal if isinstance(event, ZgwNotificatie) else BUS_CHANNEL


def _body(subscription: Any, event: CaseEvent[Any], value: bytes) -> str | None:
    """What the subscription is sent of `event`; None: it does not want it."""
    if subscription.event_types and event.name not in subscription.event_types:
        return None
    if subscription.channels and channel_of(event) not in subscription.channels:
        return None
    if subscription.delivery_format == NOTIFICATIES and not isinstance(event, ZgwNotificatie):
        return None  # only a zgw-notificatie has a Notificaties form (`dispatch.sent_form`)
    return value.decode()


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
