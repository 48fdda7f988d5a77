"""Deliveries done or given up, made pending again: one, a subscription's, or a time range's.

A replayed delivery starts a new retry horizon from now and goes in its
case's order with whatever is still pending. The receiver sees the same
`webhook-id` again and can tell it had the event. A subscription that ended
delivers nothing, replayed or not. Every replay is logged for the audit
(logger `ketenbus.webhooks`): what was asked, how many it made pending, and
who asked (`operator`).
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.errors import UserError
from services.runtime.observability.logging import get_logger
from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import webhook_deliveries, webhook_subscriptions

log = get_logger("ketenbus.webhooks")


def parse_moment(text: str | None, what: str) -> datetime | None:
    """An ISO 8601 time (`2026-11-29T09:00`), in UTC unless it names its offset; None if
    `text` is empty. UserError, naming `what`, if it is no time."""
    if text is None or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"{what} {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def replayed_message(count: int) -> str:
    """What the CLI prints, and the console says, after a replay."""
    return f"replaying {count} deliver{'y' if count == 1 else 'ies'}"


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


async def replay(
    engine: AsyncEngine,
    *,
    delivery_id: int | None = None,
    subscription_id: UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
) -> int:
    """Make the chosen finished deliveries of active subscriptions pending; how many.

    `since` and `until` choose by when a delivery was made (`since` included).
    `actor`: who replays, for the audit (None: the login running the process).
    """
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
    async with write_transaction(engine) as connection:
        done = await connection.execute(
            query.values(
                status="pending",
                retry_from=now,
                next_attempt_at=now,
                claimed_until=None,
                finished_at=None,
            )
        )
    count = int(done.rowcount)
    log.info(
        "webhook deliveries replayed",
        delivery_id=delivery_id,
        subscription_id=str(subscription_id) if subscription_id else None,
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        replayed=count,
        operator=actor or _operator(),
    )
    return count
