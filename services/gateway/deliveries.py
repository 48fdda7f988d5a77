"""What the gateway has delivered, is delivering and gave up: for operators to read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.tables import webhook_deliveries


@dataclass(frozen=True, slots=True)
class Delivery:
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


_COLUMNS = [webhook_deliveries.c[name] for name in Delivery.__dataclass_fields__]


async def recent(
    engine: AsyncEngine, subscription_id: UUID | None, status: str | None, limit: int
) -> list[Delivery]:
    """The `limit` most recent deliveries, newest first, of one subscription or status."""
    t = webhook_deliveries.c
    query = select(*_COLUMNS).order_by(t.id.desc()).limit(limit)
    if subscription_id is not None:
        query = query.where(t.subscription_id == subscription_id)
    if status is not None:
        query = query.where(t.status == status)
    async with engine.connect() as connection:
        return [Delivery(*row) for row in await connection.execute(query)]


async def counts(engine: AsyncEngine) -> dict[tuple[UUID, str], int]:
    """Deliveries per subscription and status."""
    t = webhook_deliveries.c
    query = select(t.subscription_id, t.status, func.count()).group_by(t.subscription_id, t.status)
    async with engine.connect() as connection:
        return {(sub, status): n for sub, status, n in await connection.execute(query)}
