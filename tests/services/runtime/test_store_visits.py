"""Store visits: a write is committed when it returns, a failed one leaves nothing; off the loop."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.engine import make_engine, migrate, write_transaction
from services.runtime.store.tables import gateway_events
from services.runtime.store.visits import StoreVisits


def _row(event_id: uuid.UUID) -> dict[str, object]:
    return {
        "event_id": event_id,
        "agency": "uwv",
        "digest": "0" * 64,
        "accepted_at": datetime.now(UTC),
    }


@pytest.fixture
async def file_store(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite file, as the services use by default."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


def _count(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(gateway_events)).scalar_one()


async def test_a_write_is_committed_when_it_returns_and_the_next_read_sees_it(
    store: AsyncEngine,
) -> None:
    visits = StoreVisits(store)
    try:
        await visits.write(lambda c: c.execute(insert(gateway_events), [_row(uuid.uuid4())]))
        seen_by_visits = await visits.read(_count)
    finally:
        visits.close()
    async with store.connect() as connection:
        seen_by_engine = (
            await connection.execute(select(func.count()).select_from(gateway_events))
        ).scalar_one()

    assert (1, 1) == (seen_by_visits, seen_by_engine)


async def test_a_write_that_fails_leaves_none_of_its_rows(store: AsyncEngine) -> None:
    taken = uuid.uuid4()
    visits = StoreVisits(store)
    try:
        await visits.write(lambda c: c.execute(insert(gateway_events), [_row(taken)]))
        with pytest.raises(IntegrityError):
            await visits.write(
                lambda c: c.execute(insert(gateway_events), [_row(uuid.uuid4()), _row(taken)])
            )
        count = await visits.read(_count)
    finally:
        visits.close()

    assert 1 == count


async def test_on_a_sqlite_file_every_visit_runs_in_one_thread_other_than_the_loop(
    file_store: AsyncEngine,
) -> None:
    visits = StoreVisits(file_store)
    try:
        threads = [await visits.read(lambda _: threading.get_ident()) for _ in range(3)]
        threads.append(await visits.write(lambda _: threading.get_ident()))
    finally:
        visits.close()

    assert 1 == len(set(threads))
    assert threading.get_ident() != threads[0]


async def test_an_in_memory_sqlite_store_is_visited_through_its_own_engine() -> None:
    # Another connection to ":memory:" would be another, empty database.
    engine = make_engine("sqlite+aiosqlite:///:memory:")
    await migrate(engine)
    visits = StoreVisits(engine)
    try:
        await visits.write(lambda c: c.execute(insert(gateway_events), [_row(uuid.uuid4())]))
        count = await visits.read(_count)
    finally:
        visits.close()
        await engine.dispose()

    assert 1 == count


async def test_a_write_waits_for_another_writer_on_the_same_file_and_then_commits(
    file_store: AsyncEngine,
) -> None:
    visits = StoreVisits(file_store)
    try:
        async with write_transaction(file_store) as holder:
            await holder.execute(insert(gateway_events), [_row(uuid.uuid4())])
            waiting = asyncio.create_task(
                visits.write(lambda c: c.execute(insert(gateway_events), [_row(uuid.uuid4())]))
            )
            await asyncio.sleep(0.2)
            waited = not waiting.done()
        await asyncio.wait_for(waiting, 5)
        count = await visits.read(_count)
    finally:
        visits.close()

    assert waited
    assert 2 == count
