"""Timers survive a restart, a dead instance's lease runs out, two instances fire once.

Each test has a store of its own and its own consumer group; the services run
on the real broker with a clock 3600 times faster than real time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.parse import parse_event
from contracts.registry import AgencyRegistry
from services.escalation import EscalationService
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import EMBEDDED_FETCH_MAX_WAIT_MS
from services.runtime.process.clock import ScaledClock
from services.runtime.store.tables import escalation_timers, escalations
from services.simulation.buslog import end_offsets
from tests._testutil import EngineMaker, hardship, read_until
from tests.services.escalation.conftest import SPEED
from tests.services.escalation.script import Bus, Case, quick_path, read_all

pytestmark = pytest.mark.broker

HALF_HOUR = timedelta(minutes=30)
QUARTER = timedelta(minutes=15)
SETTLE_S = 1.2
"""Real seconds to wait for a late second firing: longer than a lease (1 s)."""
RACE_S = 0.5
"""Real seconds to wait for a second firing by a racing instance: it would come at once."""


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(SPEED)


@pytest.fixture
def bus(
    kafka: str, escalation_registry: AgencyRegistry, clock: ScaledClock, producer: AIOKafkaProducer
) -> Bus:
    return Bus(kafka, escalation_registry, clock, producer)


@pytest.fixture
async def launch(
    kafka: str,
    escalation_settings: Settings,
    escalation_registry: AgencyRegistry,
    engines: EngineMaker,
    clock: ScaledClock,
) -> Callable[..., Any]:
    """Run an instance (on an engine of its own, on the test's one store) while in the block.

    The instances' group starts at the case log's end: the session's broker holds the
    events of every test before (thousands after a simulation), and a consumer working
    through them would leave this test's expiries unapplied while the leases run out."""
    group = f"escalation-{uuid.uuid4()}"
    await _start_at_log_end(kafka, group)
    # The fetch wait `ketenbus up` gives the services on the embedded broker: the consumer
    # reads an expiry back within milliseconds, often before the round that produced it
    # has recorded it.
    settings = escalation_settings.model_copy(
        update={"kafka_fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS}
    )

    @asynccontextmanager
    async def instance(name: str) -> AsyncIterator[EscalationService]:
        service = EscalationService(
            settings,
            escalation_registry,
            engines(),
            kafka,
            clock=clock,
            group_id=group,
            instance_id=name,
        )
        await service.start()
        try:
            yield service
        finally:
            await service.stop()

    return instance


async def _start_at_log_end(bootstrap: str, group: str) -> None:
    ends = await end_offsets(bootstrap, [topics.CASES])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit(ends)
    finally:
        await consumer.stop()


async def _timer(engine: AsyncEngine, ref: UUID, *, fired: bool = False) -> Any:
    """The timer for `ref`, once it is stored (and, with `fired`, fired)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    select(escalation_timers).where(escalation_timers.c.ref == ref)
                )
            ).first()
        if row is not None and (row.fired_at is not None or not fired):
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {'fired ' if fired else ''}timer for {ref}")


Wanted = tuple[str, set[bytes], str, int]
"""A topic, the case keys, an event name and how many of those events to wait for."""


async def _settled(
    bootstrap: str, *wanted: Wanted, settle: float = SETTLE_S
) -> list[list[ConsumerRecord[bytes, bytes]]]:
    """Per `wanted`: every matching record, read once the count is there and a while after."""

    def matcher(keys: set[bytes], name: str) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
        marker = f"nl.overheid.ketenzaken.{name}".encode()
        return lambda record: record.key in keys and marker in (record.value or b"")

    for topic, keys, name, count in wanted:
        await read_until(bootstrap, topic, matcher(keys, name), count=count, timeout=15)
    await asyncio.sleep(settle)
    return [
        await read_all(bootstrap, topic, matcher(keys, name)) for topic, keys, name, _ in wanted
    ]


def _ids(records: list[ConsumerRecord[bytes, bytes]]) -> Counter[bytes]:
    return Counter(record.value.split(b'"id":"', 1)[1][:36] for record in records if record.value)


async def test_after_a_crash_between_producing_and_recording_the_case_log_completes_the_firing(
    bus: Bus,
    launch: Callable[..., Any],
    engines: EngineMaker,
    clock: ScaledClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first instance dies between producing and recording one timer's events, and a
    second timer falls due while no instance runs. The expiry that did go out comes back on
    the case log, which records its escalation under the ids and times of the lost raise;
    the next instance fires the other timer once, and the lost timer (its lease run out)
    without a second expiry."""
    lost, waiting = bus.case(), bus.case()
    async with launch("dies") as dying:

        async def crash(*_: Any) -> None:
            raise RuntimeError("killed between producing and recording")

        monkeypatch.setattr(dying.timers.rounds, "_record", crash)
        await lost.open("belastingdienst")
        lost_request = await lost.request("belastingdienst", "gm0363", within=HALF_HOUR)
        await bus.raised(lost.case_id)  # produced, never recorded by the round
        await dying.stop_timers()  # its timer loop is dead; its consumer still sets timers
        await waiting.open("belastingdienst")
        request = await waiting.request("belastingdienst", "gm0363", within=HALF_HOUR)
        await _timer(dying.engine, request.data.handoff_id)
    await asyncio.sleep(max(0.0, (request.data.deadline - clock.now()).total_seconds()) / SPEED)
    await asyncio.sleep(0.1)  # now it is due, and no instance runs

    async with launch("survivor"):
        lost_key, waiting_key = {str(lost.case_id).encode()}, {str(waiting.case_id).encode()}
        lost_raised, lost_expired, raised, expired = await _settled(
            bus.bootstrap,
            (topics.ESCALATIONS, lost_key, "escalation-raised", 1),
            (topics.CASES, lost_key, "handoff-expired", 1),
            (topics.ESCALATIONS, waiting_key, "escalation-raised", 1),
            (topics.CASES, waiting_key, "handoff-expired", 1),
        )
        rows = [
            await _timer(engines(), r.data.handoff_id, fired=True) for r in (lost_request, request)
        ]
    async with engines().connect() as connection:
        recorded = (
            await connection.execute(
                select(escalations.c.raises, escalations.c.acknowledge_by).where(
                    escalations.c.case_id == lost.case_id
                )
            )
        ).all()
    lost_raise = parse_event(lost_raised[0].value or b"")

    assert 1 == len(_ids(lost_raised))  # a copy from the case log is the same event
    # A lease that runs out before the case log's expiry is applied fires the timer again,
    # under the same derived id: the same event, which consumers deduplicate.
    assert 1 == len(_ids(lost_expired))
    assert [(1, lost_raise.data.acknowledge_by)] == [(r.raises, r.acknowledge_by) for r in recorded]
    assert 1 == len(raised) == len(expired)
    assert ["survivor", "survivor"] == [row.claimed_by for row in rows]
    for case in (lost, waiting):
        await case.close()


async def test_two_instances_fire_each_timer_exactly_once(
    bus: Bus, launch: Callable[..., Any], engines: EngineMaker
) -> None:
    stalled = [bus.case() for _ in range(20)]
    climbing = [bus.case() for _ in range(4)]
    async with AsyncExitStack() as stack:
        one, two = await asyncio.gather(
            stack.enter_async_context(launch("one")), stack.enter_async_context(launch("two"))
        )
        for case in stalled:
            await case.open("belastingdienst")
        for case in stalled:  # one deadline for all: both instances reach for them at once
            await case.request("belastingdienst", "gm0363", within=HALF_HOUR)
        for case in climbing:
            await case.open("belastingdienst", path=quick_path(QUARTER), flags=[hardship()])
        stalled_keys = {str(c.case_id).encode() for c in stalled}
        climbing_keys = {str(c.case_id).encode() for c in climbing}
        expired, raised = await _settled(
            bus.bootstrap,
            (topics.CASES, stalled_keys, "handoff-expired", 20),
            (topics.ESCALATIONS, stalled_keys | climbing_keys, "escalation-raised", 20 + 4 * 4),
            settle=RACE_S,
        )
        fired = one.timers.fired, two.timers.fired
    await _close_all([*stalled, *climbing])

    assert 20 == len(expired) == len(_ids(expired))
    assert {1} == set(_ids(raised).values())  # every raise once, on every level
    assert len(raised) >= 20 + 4 * 4
    assert sum(fired) >= 20 + 4 * 3


async def _close_all(cases: list[Case]) -> None:
    for case in cases:
        await case.close()
