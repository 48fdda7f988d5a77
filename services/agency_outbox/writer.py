"""Add a signed event to the agency's outbox, inside the caller's own transaction."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.agency_client import AgencyKeys
from contracts.envelope import MAX_EVENT_BYTES, CaseEvent, oin_of_source
from contracts.topics import outbox
from services.agency_outbox.table import outbox_events

_clock = threading.Lock()
_last_stamp = datetime.min.replace(tzinfo=UTC)


def _created_at() -> datetime:
    """Now, but strictly later than the previous stamp of this process.

    The relay publishes a case's rows in `created_at` order; two events added
    within one clock tick (or across a clock step back) keep the order in which
    they were added.
    """
    global _last_stamp  # noqa: PLW0603 - one process-wide clock, guarded by `_clock`
    with _clock:
        _last_stamp = max(datetime.now(UTC), _last_stamp + timedelta(microseconds=1))
        return _last_stamp


async def add_event(
    connection: AsyncConnection,
    keys: AgencyKeys,
    event: CaseEvent[Any],
    *,
    oin: str | None = None,
    table: Table = outbox_events,
) -> None:
    """Sign `event` with the agency's key and add it to the outbox, in `connection`'s transaction.

    Call it in the transaction that makes the business change: the row commits
    or rolls back with it. The row goes to the agency's outbox topic
    (`agency.<keys.code>.outbox`), keyed by the case id. `oin`, the agency's
    OIN, is optional: given, an event whose `source` names another
    organisation is refused here rather than dead-lettered by the router.

    Raises ValueError for an event from another OIN or one larger than the
    bus accepts (64 KB signed); the database's IntegrityError for an event id
    that is in the outbox already.
    """
    if oin is not None and oin_of_source(event.source) != oin:
        raise ValueError(
            f"event {event.id} has source {event.source!r}, not an OIN {oin} source: "
            f"agency {keys.code!r} signs only its own events"
        )
    value = keys.sign(event)
    if len(value) > MAX_EVENT_BYTES:
        raise ValueError(
            f"event {event.id} is {len(value)} bytes signed, more than the bus's "
            f"{MAX_EVENT_BYTES}; send large documents by reference (`dataref`)"
        )
    await connection.execute(
        insert(table).values(
            id=event.id,
            case_id=event.case_id,
            topic=outbox(keys.code),
            value=value,
            created_at=_created_at(),
            sent_at=None,
            attempts=0,
            last_error=None,
        )
    )
