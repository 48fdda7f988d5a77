"""The audit chains in the store, on SQLite and PostgreSQL: append, verify, trace."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest
from alembic import command
from sqlalchemy import column, delete, func, insert, select, table, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.audit import GENESIS_HASH, LEGACY_CHAIN, AuditRecord, check_chain, link
from services.audit import append, trace, verify
from services.runtime.store.engine import alembic_config, migrate, write_transaction
from services.runtime.store.tables import audit_chain_head, audit_chains, audit_records
from tests.services.audit.entries import entries, entry

EngineMaker = Callable[[], AsyncEngine]

CHAIN = "router/one"
OTHER = "router/two"


class Boom(Exception):
    """The caller's own failure after it appended."""


async def appended(engine: AsyncEngine, count: int, chain: str = CHAIN) -> list[AuditRecord]:
    async with write_transaction(engine) as connection:
        return await append(connection, entries(count), chain=chain)


async def head(engine: AsyncEngine, chain: str = CHAIN) -> tuple[int, str]:
    """Where `chain` ends, as its head row says; (0, genesis) when it was never opened."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(audit_chains.c.seq, audit_chains.c.hash).where(audit_chains.c.chain == chain)
            )
        ).first()
    return (0, GENESIS_HASH) if row is None else (row.seq, row.hash)


async def openings(engine: AsyncEngine) -> tuple[int, str]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(select(audit_chain_head.c.seq, audit_chain_head.c.hash))
        ).one()
    return row.seq, row.hash


async def stored(engine: AsyncEngine) -> list[AuditRecord]:
    async with engine.connect() as connection:
        query = select(audit_records).order_by(audit_records.c.chain, audit_records.c.seq)
        rows = (await connection.execute(query)).all()
    return [AuditRecord.model_validate(row._asdict()) for row in rows]


async def test_a_new_store_has_no_chain_and_verifies_empty(store: AsyncEngine) -> None:
    report = await verify(store)

    assert (0, GENESIS_HASH) == await openings(store)
    assert (True, 0, 0, None, 0, GENESIS_HASH) == (
        report.intact,
        report.records,
        report.chains,
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
        assert [] == await append(connection, [], chain=CHAIN)

    assert ((0, GENESIS_HASH), (0, GENESIS_HASH)) == (await head(store), await openings(store))


async def test_a_rolled_back_transaction_leaves_no_record_and_the_head_unmoved(
    store: AsyncEngine,
) -> None:
    kept = await appended(store, 2)

    async def append_then_fail() -> None:
        async with write_transaction(store) as connection:
            await append(connection, entries(3), chain=CHAIN)
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
        await connection.execute(update(audit_chains).values(seq=0, hash=GENESIS_HASH))

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
            records = await append(connection, entries(3), chain=CHAIN)
            first_appended.set()
            await asyncio.sleep(0.3)  # the second append is waiting for the head now
            return records

    async def second() -> list[AuditRecord]:
        await first_appended.wait()
        async with write_transaction(second_engine) as connection:
            return await append(connection, entries(2), chain=CHAIN)

    one, two = await asyncio.gather(first(), second())

    assert [1, 2, 3, 4, 5] == [record.seq for record in [*one, *two]]
    assert one[-1].hash == two[0].prev_hash
    assert (True, 5) == ((report := await verify(store)).intact, report.records)


async def test_many_concurrent_writers_each_on_its_chain_leave_an_intact_trail(
    engines: EngineMaker, store: AsyncEngine
) -> None:
    """Four writers opening their chains at once: four openings, 60 records, all linked."""
    writers = [engines() for _ in range(4)]

    async def write(number: int, engine: AsyncEngine) -> None:
        for _ in range(5):
            await appended(engine, 3, chain=f"router/{number}")

    await asyncio.gather(*(write(n, engine) for n, engine in enumerate(writers)))

    report = await verify(store)
    assert (True, 60, 4, 4) == (report.intact, report.records, report.chains, report.head_seq)
    assert [15] * 4 == [(await head(store, f"router/{n}"))[0] for n in range(4)]


async def test_a_writer_on_its_own_chain_does_not_wait_for_another_s_transaction(
    engines: EngineMaker, store: AsyncEngine, backend: str
) -> None:
    """PostgreSQL: while one router's transaction holds its chain's head (waiting for Kafka's
    acks), another router appends to its own chain and commits."""
    if backend.startswith("sqlite"):
        pytest.skip("SQLite has one write lock for the whole file: its writers always queue")
    await appended(store, 1, chain=OTHER)  # both chains opened before the race
    await appended(store, 1, chain=CHAIN)
    second_engine = engines()
    held = asyncio.Event()
    release = asyncio.Event()

    async def holding() -> None:
        async with write_transaction(store) as connection:
            await append(connection, entries(2), chain=CHAIN)
            held.set()
            await asyncio.wait_for(release.wait(), 10)

    async def other() -> list[AuditRecord]:
        await held.wait()
        async with write_transaction(second_engine) as connection:
            return await append(connection, entries(2), chain=OTHER)

    holder = asyncio.create_task(holding())
    done = await asyncio.wait_for(other(), 5)  # would time out queued behind the holder
    release.set()
    await holder

    assert [2, 3] == [record.seq for record in done]
    assert (True, 6) == ((report := await verify(store)).intact, report.records)


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

    assert (True, 7) == (report.intact, report.records)
    assert (7, records[-1].hash) == await head(store)


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
        await connection.execute(update(audit_chains).values(seq=2, hash=records[1].hash))

    report = await verify(store)

    assert report.broken is not None
    assert (2, 3, "beyond-head") == (report.records, report.broken.seq, report.broken.kind)


async def test_verify_names_a_record_the_head_disagrees_with(store: AsyncEngine) -> None:
    await appended(store, 3)
    async with store.begin() as connection:
        await connection.execute(update(audit_chains).values(hash="e" * 64))

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
            chain=CHAIN,
        )
    async with write_transaction(store) as connection:
        later = await append(connection, [entry(case_id, receiver="uwv", minute=3)], chain=OTHER)

    traced = await trace(store, case_id)

    assert [first[0], first[2], later[0]] == traced
    assert [CHAIN, CHAIN, OTHER] == [record.chain for record in traced]
    assert [] == await trace(store, uuid4())


async def test_verify_names_a_chain_removed_whole_by_the_openings_head(store: AsyncEngine) -> None:
    """Its head and records deleted: the openings' head still counts it."""
    await appended(store, 2, chain=CHAIN)
    await appended(store, 3, chain=OTHER)
    async with store.begin() as connection:
        await connection.execute(delete(audit_records).where(audit_records.c.chain == OTHER))
        await connection.execute(delete(audit_chains).where(audit_chains.c.chain == OTHER))

    report = await verify(store)

    assert report.broken is not None
    assert (2, "missing-at-end", None) == (
        report.broken.seq,
        report.broken.kind,
        report.broken.chain,
    )
    assert "a chain was removed whole" in report.broken.reason


async def test_verify_names_records_on_a_chain_that_was_never_opened(store: AsyncEngine) -> None:
    records = await appended(store, 2)
    forged = link(1, GENESIS_HASH, entry(uuid4(), receiver="uwv"), "router/forged")
    async with store.begin() as connection:
        row = forged.model_dump()
        await connection.execute(audit_records.insert().values(**row))

    report = await verify(store)

    assert report.broken is not None
    assert ("beyond-head", "router/forged") == (report.broken.kind, report.broken.chain)
    assert 2 == len(records)


async def test_verify_names_an_opening_that_was_rewritten(store: AsyncEngine) -> None:
    await appended(store, 1, chain=CHAIN)
    await appended(store, 1, chain=OTHER)
    async with store.begin() as connection:
        await connection.execute(
            update(audit_chains).where(audit_chains.c.chain == OTHER).values(chain="router/x")
        )
        await connection.execute(
            update(audit_records).where(audit_records.c.chain == OTHER).values(chain="router/x")
        )

    report = await verify(store)

    assert report.broken is not None
    assert (2, "contents-changed") == (report.broken.seq, report.broken.kind)


async def test_a_one_chain_trail_from_before_is_the_first_chain_after_the_migration(
    engines: EngineMaker,
) -> None:
    """Records written when the bus had one chain verify after the upgrade, as `ketenbus`."""
    engine = engines()

    def to_0009(sync: Any) -> None:
        config = alembic_config(sync)
        command.upgrade(config, "0009")

    async with engine.begin() as connection:
        await connection.run_sync(to_0009)
    old, previous = [], GENESIS_HASH
    for seq, one in enumerate(entries(3), start=1):
        old.append(link(seq, previous, one))
        previous = old[-1].hash
    async with engine.begin() as connection:
        for record in old:
            row = record.model_dump(exclude={"chain"})
            await connection.execute(sa_text_insert(row))
        await connection.execute(update(audit_chain_head).values(seq=3, hash=previous))

    await migrate(engine)
    await appended(engine, 2, chain=CHAIN)

    report = await verify(engine)
    assert (True, 5, 2) == (report.intact, report.records, report.chains)
    assert (3, previous) == await head(engine, LEGACY_CHAIN)


def sa_text_insert(row: dict[str, Any]) -> Any:
    """An insert into the one-chain `audit_records` of before (no chain column yet)."""
    old = table(
        "audit_records",
        *(column(c.name, c.type) for c in audit_records.columns if c.name != "chain"),
    )
    return insert(old).values(**row)


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
