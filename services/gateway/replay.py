"""Deliveries done or given up, made pending again: one, a subscription's, or a time range's.

A replayed delivery starts a new retry horizon from now and goes in its
case's order with whatever is still pending. The receiver sees the same
`webhook-id` again and can tell it had the event. A subscription that ended
delivers nothing, replayed or not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.tables import webhook_deliveries, webhook_subscriptions


async def replay(
    engine: AsyncEngine,
    *,
    delivery_id: int | None = None,
    subscription_id: UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Make the chosen finished deliveries of active subscriptions pending; how many."""
    t = webhook_deliveries.c
    active = (
        webhook_subscriptions.select()
        .with_only_columns(webhook_subscriptions.c.subscription_id)
        .where(webhook_subscriptions.c.status == "active")
    )
    query = update(webhook_deliveries).where(
        t.status.in_(("delivered", "dead")), t.subscription_id.in_(active)
    )
    if delivery_id is not None:
        query = query.where(t.id == delivery_id)
    if subscription_id is not None:
        query = query.where(t.subscription_id == subscription_id)
    if since is not None:
        query = query.where(t.created_at >= since)
    if until is not None:
        query = query.where(t.created_at < until)
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        done = await connection.execute(
            query.values(
                status="pending",
                retry_from=now,
                next_attempt_at=now,
                claimed_until=None,
                finished_at=None,
            )
        )
    return int(done.rowcount)
