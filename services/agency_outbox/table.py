"""The outbox table in the AGENCY's own database, and how to create it.

The agency owns this schema, not the bus: the table lives beside the agency's
business tables so that one transaction covers both. `create_outbox_table` is
for development, tests and the example; in production put the table in the
agency's own migrations (with Alembic: add `define_outbox_table(your_metadata)`
to the metadata your migrations are generated from). Nothing here touches the
bus's store or its migrations.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.tables import UtcDateTime

TOPIC = 249
"""Kafka's longest topic name."""


def define_outbox_table(metadata: MetaData, name: str = "outbox_events") -> Table:
    """The outbox table, defined in `metadata` (the agency's own, for its migrations)."""
    sent_at: Column[datetime] = Column(
        "sent_at", UtcDateTime(), nullable=True, comment="When Kafka acknowledged it; NULL: unsent."
    )
    created_at: Column[datetime] = Column("created_at", UtcDateTime(), nullable=False)
    case_id: Column[UUID] = Column(
        "case_id", Uuid(), nullable=False, comment="The event's subject: the key."
    )
    unsent = sent_at.is_(None)
    return Table(
        name,
        metadata,
        Column("id", Uuid(), primary_key=True, comment="The event id."),
        case_id,
        Column("topic", String(TOPIC), nullable=False),
        Column("value", LargeBinary(), nullable=False, comment="The signed wire JSON."),
        created_at,
        sent_at,
        Column("attempts", Integer, nullable=False, default=0, comment="Produce attempts so far."),
        Column("last_error", Text, nullable=True, comment="Why the latest attempt failed."),
        # Partial indexes: only unsent rows are ever looked up, and they are few;
        # the sent ones may pile up until the agency prunes them.
        Index(
            f"ix_{name}_unsent",
            created_at,
            sqlite_where=unsent,
            postgresql_where=unsent,
        ),
        Index(
            f"ix_{name}_unsent_case",
            case_id,
            created_at,
            sqlite_where=unsent,
            postgresql_where=unsent,
        ),
    )


metadata = MetaData()
"""The metadata of the default `outbox_events` table (for agencies without their own)."""

outbox_events = define_outbox_table(metadata)
"""The default outbox table: one row per event, from `add_event` until the relay sends it."""


async def create_outbox_table(engine: AsyncEngine, table: Table = outbox_events) -> None:
    """Create the outbox table and its indexes if they do not exist yet.

    For development, tests and examples: in production the table belongs in
    the agency's own schema migrations.
    """
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: table.create(sync, checkfirst=True))
