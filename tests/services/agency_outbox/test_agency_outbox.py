"""The transactional outbox against the real embedded broker and a real agency database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import CaseContextUpdated, CaseOpened, source_urn
from contracts.agency_client import AgencyKeys
from contracts.case import CaseContext
from contracts.envelope import CaseEvent
from contracts.events import CaseOpening, ContextUpdate
from contracts.registry import AgencyRegistry
from contracts.signing import verify_signature
from contracts.topics import outbox
from services.agency_outbox import OutboxRelay, add_event, outbox_events
from tests._testutil import event_id, keyed, read_to_end
from tests.services.agency_outbox.conftest import EngineMaker, files

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

UWV = outbox("uwv")


class Crash(Exception):
    """A process dying part-way: in a business transaction, or between producing and marking."""


@pytest.fixture
def uwv(agency_keys: dict[str, AgencyKeys]) -> AgencyKeys:
    return agency_keys["uwv"]


@pytest.fixture
def uwv_oin(registry: AgencyRegistry) -> str:
    agency = registry.agency("uwv")
    assert agency is not None
    return agency.oin


@pytest.fixture
async def relay(engine: AsyncEngine, kafka: str) -> AsyncIterator[OutboxRelay]:
    async with OutboxRelay(engine, kafka) as started:
        yield started


def opened(oin: str, case_id: UUID) -> CaseOpened:
    return CaseOpened.new(
        source=source_urn(oin, "uitkeringen"),
        case_id=case_id,
        data=CaseOpening(category="schulden", summary="Meerdere schulden"),
    )


SMALL_REQUESTS = {"max_request_size": 1_500}
"""A producer that refuses any message over 1.5 kB: `too_big` fails, the others go."""


def too_big(oin: str, case_id: UUID) -> CaseOpened:
    """An event the SMALL_REQUESTS producer cannot produce (well within the bus's 64 kB)."""
    return CaseOpened.new(
        source=source_urn(oin, "uitkeringen"),
        case_id=case_id,
        data=CaseOpening(category="schulden", summary="x" * 1_800),
    )


def updated(oin: str, case_id: UUID, sequence: int) -> CaseContextUpdated:
    return CaseContextUpdated.new(
        source=source_urn(oin, "uitkeringen"),
        case_id=case_id,
        sequence=sequence,
        data=ContextUpdate(context=CaseContext()),
    )


async def hand_on(
    connection: AsyncConnection, keys: AgencyKeys, event: CaseEvent[Any], **options: Any
) -> None:
    """The agency's business change and its event, in the caller's transaction."""
    await connection.execute(insert(files).values(case_id=event.case_id, status="handed-on"))
    await add_event(connection, keys, event, **options)


async def outbox_rows(engine: AsyncEngine) -> dict[UUID, Any]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(outbox_events))
        return {row.id: row for row in rows}


async def test_rolled_back_business_transaction_leaves_no_outbox_row_and_publishes_nothing(
    engine: AsyncEngine, relay: OutboxRelay, kafka: str, uwv: AgencyKeys, uwv_oin: str
) -> None:
    case_id = uuid.uuid4()

    async def change_then_fail() -> None:
        async with engine.begin() as connection:
            await hand_on(connection, uwv, opened(uwv_oin, case_id), oin=uwv_oin)
            raise Crash

    with pytest.raises(Crash):
        await change_then_fail()

    assert {} == await outbox_rows(engine)
    async with engine.connect() as connection:
        assert 0 == await connection.scalar(select(func.count()).select_from(files))
    assert 0 == await relay.run_once()
    assert [] == await read_to_end(kafka, [UWV], keyed(case_id))


async def test_committed_event_is_published_once_signed_keyed_by_case_and_marked_sent(
    engine: AsyncEngine,
    relay: OutboxRelay,
    kafka: str,
    uwv: AgencyKeys,
    uwv_oin: str,
    signed_registry: AgencyRegistry,
) -> None:
    case_id = uuid.uuid4()
    event = opened(uwv_oin, case_id)
    async with engine.begin() as connection:
        await hand_on(connection, uwv, event, oin=uwv_oin)

    assert 1 == await relay.run_once()
    assert 0 == await relay.run_once()

    records = await read_to_end(kafka, [UWV], keyed(case_id))
    assert 1 == len(records)
    record = records[0]
    assert str(case_id).encode() == record.key
    assert "uwv" == verify_signature(json.loads(record.value), signed_registry).code
    assert str(event.id) == event_id(record)
    row = (await outbox_rows(engine))[event.id]
    assert record.value == row.value
    assert row.sent_at is not None
    assert (1, None) == (row.attempts, row.last_error)


async def test_add_event_refuses_an_event_from_another_organisations_oin(
    engine: AsyncEngine, uwv: AgencyKeys, uwv_oin: str
) -> None:
    other_oin = "00000099000000000011"

    async def add_foreign() -> None:
        async with engine.begin() as connection:
            await add_event(connection, uwv, opened(other_oin, uuid.uuid4()), oin=uwv_oin)

    with pytest.raises(ValueError, match="not an OIN 00000099000000000013 source"):
        await add_foreign()
    assert {} == await outbox_rows(engine)


async def test_crash_between_publishing_and_marking_republishes_same_bytes_with_same_event_id(
    engine: AsyncEngine,
    relay: OutboxRelay,
    kafka: str,
    uwv: AgencyKeys,
    uwv_oin: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case_id = uuid.uuid4()
    event = opened(uwv_oin, case_id)
    async with engine.begin() as connection:
        await hand_on(connection, uwv, event)
    mark = relay._mark
    crashes = [Crash()]

    async def crash_once(*args: Any) -> None:
        if crashes:
            raise crashes.pop()
        await mark(*args)

    monkeypatch.setattr(relay, "_mark", crash_once)

    with pytest.raises(Crash):
        await relay.run_once()
    assert None is (await outbox_rows(engine))[event.id].sent_at
    assert 1 == await relay.run_once()

    records = await read_to_end(kafka, [UWV], keyed(case_id))
    assert [str(event.id)] * 2 == [event_id(record) for record in records]
    assert records[0].value == records[1].value
    assert (await outbox_rows(engine))[event.id].sent_at is not None


async def test_failed_produce_counts_an_attempt_and_holds_back_only_its_cases_later_rows(
    engine: AsyncEngine, relay: OutboxRelay, kafka: str, uwv: AgencyKeys, uwv_oin: str
) -> None:
    held, other = uuid.uuid4(), uuid.uuid4()
    first, second = too_big(uwv_oin, held), updated(uwv_oin, held, 2)
    going = opened(uwv_oin, other)
    async with engine.begin() as connection:
        await hand_on(connection, uwv, first)
        await add_event(connection, uwv, second)
        await hand_on(connection, uwv, going)

    async with OutboxRelay(engine, kafka, client_options=SMALL_REQUESTS) as limited:
        assert 1 == await limited.run_once()

    rows = await outbox_rows(engine)
    assert (1, None) == (rows[first.id].attempts, rows[first.id].sent_at)
    assert "MessageSizeTooLargeError" in rows[first.id].last_error
    assert (0, None) == (rows[second.id].attempts, rows[second.id].sent_at)
    assert rows[going.id].sent_at is not None
    assert [] == await read_to_end(kafka, [UWV], keyed(held))
    assert [str(going.id)] == [event_id(r) for r in await read_to_end(kafka, [UWV], keyed(other))]

    # The failed row first, once the cause is gone; then the row it held back.
    assert [1, 1] == [await relay.run_once(), await relay.run_once()]
    records = await read_to_end(kafka, [UWV], keyed(held))
    assert [str(first.id), str(second.id)] == [event_id(record) for record in records]
    rows = await outbox_rows(engine)
    assert (2, None) == (rows[first.id].attempts, rows[first.id].last_error)


async def test_rows_held_behind_a_failed_row_do_not_take_other_cases_places_in_a_batch(
    engine: AsyncEngine, kafka: str, uwv: AgencyKeys, uwv_oin: str
) -> None:
    held, other = uuid.uuid4(), uuid.uuid4()
    waiting = opened(uwv_oin, other)
    async with engine.begin() as connection:
        await hand_on(connection, uwv, too_big(uwv_oin, held))
        for sequence in (2, 3):
            await add_event(connection, uwv, updated(uwv_oin, held, sequence))
        await hand_on(connection, uwv, waiting)

    async with OutboxRelay(engine, kafka, batch_size=2, client_options=SMALL_REQUESTS) as relay:
        # Pass 1 fills its batch with the failing case; pass 2 skips its waiting rows.
        assert [0, 1] == [await relay.run_once(), await relay.run_once()]
    assert (await outbox_rows(engine))[waiting.id].sent_at is not None


async def test_run_publishes_what_is_added_while_it_runs_and_stops_when_asked(
    engine: AsyncEngine, relay: OutboxRelay, kafka: str, uwv: AgencyKeys, uwv_oin: str
) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop, interval=0.1))
    try:
        case_id = uuid.uuid4()
        event = opened(uwv_oin, case_id)
        async with engine.begin() as connection:
            await hand_on(connection, uwv, event)
        for _ in range(100):
            if (await outbox_rows(engine))[event.id].sent_at is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert (await outbox_rows(engine))[event.id].sent_at is not None
    assert [str(event.id)] == [event_id(r) for r in await read_to_end(kafka, [UWV], keyed(case_id))]


@pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_two_relays_on_one_postgres_database_never_publish_a_row_twice(
    engines: EngineMaker,
    kafka: str,
    uwv: AgencyKeys,
    uwv_oin: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = engines()
    cases = [uuid.uuid4() for _ in range(8)]
    events: dict[UUID, list[CaseEvent[Any]]] = {
        case_id: [opened(uwv_oin, case_id), *(updated(uwv_oin, case_id, n) for n in (2, 3))]
        for case_id in cases
    }
    async with engine.begin() as connection:
        for case_events in events.values():
            await hand_on(connection, uwv, case_events[0])
            for event in case_events[1:]:
                await add_event(connection, uwv, event)

    # Batches of 5 rows end inside a case's 3 rows: rows 1-5 are the first relay's,
    # 6-10 the second's, whose first (case 2's third) must wait for case 2's others.
    first = OutboxRelay(engines(), kafka, batch_size=5)
    second = OutboxRelay(engines(), kafka, batch_size=5)
    first_claimed, second_done = asyncio.Event(), asyncio.Event()
    publish = first._publish

    async def publish_after_second(rows: Any) -> Any:
        # The first relay holds its row locks until the second has made its whole pass.
        first_claimed.set()
        await asyncio.wait_for(second_done.wait(), 30)
        return await publish(rows)

    async def second_pass() -> int:
        await asyncio.wait_for(first_claimed.wait(), 30)
        try:
            return await second.run_once()
        finally:
            second_done.set()

    async with first, second:
        monkeypatch.setattr(first, "_publish", publish_after_second)
        assert [5, 4] == list(await asyncio.gather(first.run_once(), second_pass()))
        monkeypatch.undo()
        sent = 9
        for _ in range(10):
            if sent == 24:
                break
            sent += sum(await asyncio.gather(first.run_once(), second.run_once()))
    assert 24 == sent

    case_keys = {str(case_id).encode() for case_id in cases}
    records = await read_to_end(kafka, [UWV], lambda record: record.key in case_keys)
    assert 24 == len(records)
    for case_id, case_events in events.items():
        published = [event_id(r) for r in records if r.key == str(case_id).encode()]
        assert [str(event.id) for event in case_events] == published
