"""The audit chain in the store, on SQLite and PostgreSQL: append, verify, trace."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from uuid import uuid4

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.audit import GENESIS_HASH, AuditRecord, check_chain
from services.audit import append, trace, verify
from services.runtime.store.engine import migrate, write_transaction
from services.runtime.store.tables import audit_chain_head, audit_records
from tests.services.audit.entries import entries, entry

EngineMaker = Callable[[], AsyncEngine]


class Boom(Exception):
    """The caller's own failure after it appended."""


async def appended(engine: AsyncEngine, count: int) -> list[AuditRecord]:
    async with write_transaction(engine) as connection:
        return await append(connection, entries(count))


async def head(engine: AsyncEngine) -> tuple[int, str]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(select(audit_chain_head.c.seq, audit_chain_head.c.hash))
        ).one()
    return row.seq, row.hash


async def stored(engine: AsyncEngine) -> list[AuditRecord]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(audit_records).order_by(audit_records.c.seq))).all()
    return [AuditRecord.model_validate(row._asdict()) for row in rows]


async def test_a_new_store_has_the_head_at_genesis_and_verifies_empty(store: AsyncEngine) -> None:
    report = await verify(store)

    assert (0, GENESIS_HASH) == await head(store)
    assert (True, 0, None, 0, GENESIS_HASH) == (
        report.intact,
        report.records,
        report.broken,
        report.head_seq,
        report.head_hash,
    )


async def test_appended_records_chain_from_the_head_across_calls(store: AsyncEngine) -> None:
    first = await appended(store, 3)
    second = await appended(store, 2)

    records = [*first, *second]
    assert [1, 2, 3, 4, 5] == [record.seq for record in records]
    assert first[-1].hash == second[0].prev_hash
    assert None is check_chain(records)
    assert records == await stored(store)
    assert (5, records[-1].hash) == await head(store)


async def test_appending_nothing_writes_nothing(store: AsyncEngine) -> None:
    async with write_transaction(store) as connection:
        assert [] == await append(connection, [])

    assert (0, GENESIS_HASH) == await head(store)


async def test_a_rolled_back_transaction_leaves_no_record_and_the_head_unmoved(
    store: AsyncEngine,
) -> None:
    kept = await appended(store, 2)

    async def append_then_fail() -> None:
        async with write_transaction(store) as connection:
            await append(connection, entries(3))
            raise Boom

    with pytest.raises(Boom):
        await append_then_fail()

    assert kept == await stored(store)
    assert (2, kept[-1].hash) == await head(store)
    assert [3] == [record.seq for record in await appended(store, 1)]


async def test_an_append_that_fails_fails_the_callers_transaction_whole(
    store: AsyncEngine,
) -> None:
    """A record already at the next seq (written around `append`): nothing of the batch stays."""
    await appended(store, 1)
    async with store.begin() as connection:
        await connection.execute(update(audit_chain_head).values(seq=0, hash=GENESIS_HASH))

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await appended(store, 2)

    assert 1 == len(await stored(store))


async def test_two_concurrent_appends_queue_and_never_fork_the_chain(
    engines: EngineMaker, store: AsyncEngine
) -> None:
    """The first holds its transaction open after appending; the second waits for it."""
    second_engine = engines()
    first_appended = asyncio.Event()

    async def first() -> list[AuditRecord]:
        async with write_transaction(store) as connection:
            records = await append(connection, entries(3))
            first_appended.set()
            await asyncio.sleep(0.3)  # the second append is waiting for the head now
            return records

    async def second() -> list[AuditRecord]:
        await first_appended.wait()
        async with write_transaction(second_engine) as connection:
            return await append(connection, entries(2))

    one, two = await asyncio.gather(first(), second())

    assert [1, 2, 3, 4, 5] == [record.seq for record in [*one, *two]]
    assert one[-1].hash == two[0].prev_hash
    assert (True, 5) == ((report := await verify(store)).intact, report.records)


async def test_many_concurrent_writers_leave_one_intact_chain(
    engines: EngineMaker, store: AsyncEngine
) -> None:
    writers = [engines() for _ in range(4)]

    async def write(engine: AsyncEngine) -> None:
        for _ in range(5):
            await appended(engine, 3)

    await asyncio.gather(*(write(engine) for engine in writers))

    report = await verify(store)
    assert (True, 60, 60) == (report.intact, report.records, report.head_seq)


async def test_verify_names_the_record_whose_receiver_was_updated(store: AsyncEngine) -> None:
    records = await appended(store, 5)
    async with store.begin() as connection:
        await connection.execute(
            update(audit_records).where(audit_records.c.seq == 3).values(receiver="cjib")
        )

    report = await verify(store)

    assert report.broken is not None
    assert (False, 2, 3, "contents-changed", records[2].case_id, records[2].event_id) == (
        report.intact,
        report.records,
        report.broken.seq,
        report.broken.kind,
        report.broken.case_id,
        report.broken.event_id,
    )


async def test_verify_finds_a_change_beyond_its_first_page(store: AsyncEngine) -> None:
    await appended(store, 7)
    async with store.begin() as connection:
        await connection.execute(
            update(audit_records).where(audit_records.c.seq == 6).values(fields=["personal"])
        )

    report = await verify(store, page=2)

    assert report.broken is not None
    assert (5, 6, "contents-changed") == (report.records, report.broken.seq, report.broken.kind)


async def test_verify_reads_an_intact_chain_across_pages(store: AsyncEngine) -> None:
    records = await appended(store, 7)

    report = await verify(store, page=3)

    assert (True, 7, records[-1].hash) == (report.intact, report.records, report.head_hash)


async def test_verify_names_a_deleted_last_record_by_the_head(store: AsyncEngine) -> None:
    await appended(store, 5)
    async with store.begin() as connection:
        await connection.execute(delete(audit_records).where(audit_records.c.seq == 5))

    report = await verify(store)

    assert report.broken is not None
    assert (4, 5, "missing-at-end") == (report.records, report.broken.seq, report.broken.kind)
    assert "head is at record 5, so record 5 was removed" in report.broken.reason


async def test_verify_names_the_record_after_a_deleted_one(store: AsyncEngine) -> None:
    await appended(store, 5)
    async with store.begin() as connection:
        await connection.execute(delete(audit_records).where(audit_records.c.seq == 2))

    report = await verify(store)

    assert report.broken is not None
    assert (1, 3, "gap") == (report.records, report.broken.seq, report.broken.kind)


async def test_verify_names_a_record_added_past_the_head(store: AsyncEngine) -> None:
    records = await appended(store, 3)
    async with store.begin() as connection:
        await connection.execute(update(audit_chain_head).values(seq=2, hash=records[1].hash))

    report = await verify(store)

    assert report.broken is not None
    assert (2, 3, "beyond-head") == (report.records, report.broken.seq, report.broken.kind)


async def test_verify_names_a_record_the_head_disagrees_with(store: AsyncEngine) -> None:
    await appended(store, 3)
    async with store.begin() as connection:
        await connection.execute(update(audit_chain_head).values(hash="e" * 64))

    report = await verify(store)

    assert report.broken is not None
    assert (3, "head-mismatch") == (report.broken.seq, report.broken.kind)


async def test_verify_names_a_row_that_is_no_longer_a_valid_record(store: AsyncEngine) -> None:
    await appended(store, 3)
    async with store.begin() as connection:
        await connection.execute(
            update(audit_records).where(audit_records.c.seq == 2).values(receiver="Not An Agency")
        )

    report = await verify(store)

    assert report.broken is not None
    assert (1, 2, "contents-changed") == (report.records, report.broken.seq, report.broken.kind)


async def test_trace_returns_a_cases_deliveries_in_order(store: AsyncEngine) -> None:
    case_id, other = uuid4(), uuid4()
    async with write_transaction(store) as connection:
        first = await append(
            connection,
            [
                entry(case_id, receiver="svb", minute=0),
                entry(other, receiver="uwv", minute=1),
                entry(case_id, receiver="cak", minute=2, fields=()),
            ],
        )
    async with write_transaction(store) as connection:
        later = await append(connection, [entry(case_id, receiver="uwv", minute=3)])

    traced = await trace(store, case_id)

    assert [first[0], first[2], later[0]] == traced
    assert [] == await trace(store, uuid4())


async def test_the_migration_indexes_the_trail_by_case(store: AsyncEngine) -> None:
    """`trace` looks a case up by the index, not by reading the whole trail."""
    async with store.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(audit_chain_head))
        indexes = await connection.run_sync(
            lambda sync: [
                ix["column_names"]
                for ix in __import__("sqlalchemy").inspect(sync).get_indexes("audit_records")
            ]
        )
    assert (1, [["case_id"]]) == (count, indexes)


async def test_migrating_again_keeps_the_chain(store: AsyncEngine) -> None:
    records = await appended(store, 2)

    await migrate(store)

    assert (2, records[-1].hash) == await head(store)
