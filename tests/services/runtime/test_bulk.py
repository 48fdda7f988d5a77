"""Rows written by `runtime.store.bulk` are stored as SQLAlchemy's `insert()` stores them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.bulk import insert_rows, update_rows
from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import case_custody, router_seen_events

COLUMNS = tuple(case_custody.c.keys())
AMSTERDAM = timezone(timedelta(hours=1))
T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def custody(case_id: UUID, **changes: Any) -> dict[str, Any]:
    row = {
        "case_id": case_id,
        "category": "schulden",
        "holder": "gm0363",
        "holders": ["belastingdienst", "gm0363"],
        "status": "open",
        "pending_handoff_id": uuid4(),
        "pending_from": "gm0363",
        "pending_to": "uwv",
        # Another offset, and a whole second (no fraction): stored in UTC with microseconds.
        "pending_deadline": datetime(2026, 12, 1, 10, 0, tzinfo=AMSTERDAM),
        "bounce_count": 2,
        "opened_at": T0,
        "last_event_at": T0 + timedelta(microseconds=7),
    }
    return {**row, **changes}


async def raw(engine: AsyncEngine, case_id: UUID) -> tuple[Any, ...]:
    """The row as the driver returns it, but for its key: what is stored, unconverted."""
    async with engine.connect() as connection:
        key = case_custody.c.case_id.type.bind_processor(connection.dialect)
        stored = key(case_id) if key else case_id
        names = ", ".join(f'"{name}"' for name in COLUMNS[1:])
        marker = "?" if connection.dialect.paramstyle == "qmark" else "$1"
        result = await connection.exec_driver_sql(
            f"SELECT {names} FROM case_custody WHERE case_id = {marker}",
            (stored,),
        )
        return tuple(result.one())


async def read(engine: AsyncEngine, case_id: UUID) -> dict[str, Any]:
    async with engine.connect() as connection:
        query = select(case_custody).where(case_custody.c.case_id == case_id)
        return dict((await connection.execute(query)).one()._mapping)


async def test_an_inserted_row_is_stored_as_sqlalchemy_stores_it(store: AsyncEngine) -> None:
    by_sqlalchemy, by_bulk = uuid4(), uuid4()
    handoff = uuid4()
    async with write_transaction(store) as connection:
        await connection.execute(
            insert(case_custody), [custody(by_sqlalchemy, pending_handoff_id=handoff)]
        )
        row = custody(by_bulk, pending_handoff_id=handoff)
        await insert_rows(connection, case_custody, COLUMNS, [tuple(row.values())])

    assert await raw(store, by_sqlalchemy) == await raw(store, by_bulk)
    expected = custody(by_bulk, pending_handoff_id=handoff)
    expected["pending_deadline"] = expected["pending_deadline"].astimezone(UTC)
    assert expected == await read(store, by_bulk)


async def test_an_updated_row_is_stored_as_sqlalchemy_stores_it(store: AsyncEngine) -> None:
    case_id = uuid4()
    async with write_transaction(store) as connection:
        await insert_rows(connection, case_custody, COLUMNS, [tuple(custody(case_id).values())])
    closed = custody(
        case_id,
        status="closed",
        holders=["gm0363"],
        pending_handoff_id=None,
        pending_from=None,
        pending_to=None,
        pending_deadline=None,
    )
    async with write_transaction(store) as connection:
        values = tuple(closed.values())
        await update_rows(
            connection, case_custody, COLUMNS[1:], "case_id", [(*values[1:], case_id)]
        )

    assert closed == await read(store, case_id)


async def test_a_duplicate_key_fails_as_through_sqlalchemy(store: AsyncEngine) -> None:
    event_id = uuid4()
    seen = (event_id, T0, "agency.uwv.outbox", 0, 41)
    columns = ("event_id", "seen_at", "topic", "partition", "offset")
    async with write_transaction(store) as connection:
        await insert_rows(connection, router_seen_events, columns, [seen])

    with pytest.raises(IntegrityError):
        async with write_transaction(store) as connection:
            await insert_rows(connection, router_seen_events, columns, [seen])


async def test_a_naive_time_is_refused(store: AsyncEngine) -> None:
    row = custody(uuid4(), opened_at=datetime(2026, 11, 29, 9, 0))
    async with write_transaction(store) as connection:
        with pytest.raises(ValueError, match="aware"):
            await insert_rows(connection, case_custody, COLUMNS, [tuple(row.values())])
