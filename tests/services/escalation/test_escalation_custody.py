"""An expiry and an answer that cross are decided once, on the case's custody, on SQLite
and PostgreSQL: the expiry goes out only for a handoff still pending there, ends it there
under the row lock while it is produced, and gives it back if producing fails. The round
marks the expiry's timer produced in the same transaction, for the case-log consumer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from contracts.handoff import CaseState, PendingHandoff
from contracts.registry import AgencyRegistry
from services import custody
from services.escalation import store, timers
from services.escalation.levels import Context
from services.escalation.model import Timer
from services.escalation.round import Planned, Rounds
from services.escalation.workspace import Workspace
from services.escalation.writes import writing
from services.runtime.kafka.clients import Outgoing
from services.runtime.store.engine import write_transaction
from tests._testutil import EngineMaker

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def _custody(case_id: UUID, handoff_id: UUID | None) -> custody.Custody:
    pending = PendingHandoff(handoff_id, "uwv", "svb", NOW) if handoff_id is not None else None
    state = CaseState(case_id, "schulden", "uwv", "open", NOW, NOW, pending)
    return custody.Custody(state, ["uwv"])


async def _store(engines: EngineMaker, *cases: custody.Custody) -> None:
    ledger = custody.Ledger({})
    for case in cases:
        ledger.put(case)
    async with write_transaction(engines()) as connection:
        await custody.save(connection, ledger)


async def _pending(engines: EngineMaker, case_id: UUID) -> UUID | None:
    async with write_transaction(engines()) as connection:
        ledger = await custody.load(connection, [case_id])
    pending = ledger.cases[case_id].state.pending
    return pending.handoff_id if pending is not None else None


def _expiry(case_id: UUID, handoff_id: UUID) -> Planned:
    timer = Timer.new("handoff-deadline", case_id, handoff_id, NOW - timedelta(seconds=1))
    message = Outgoing("ketenbus.cases", str(case_id).encode(), b"{}")
    return Planned(timer, [message], [uuid.uuid4()])


class Producer:
    def __init__(self, fail: bool = False, *, hold: bool = False) -> None:
        self.fail = fail
        self.produced: list[Outgoing] = []
        self.producing = asyncio.Event()
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, messages: Sequence[Outgoing]) -> None:
        self.producing.set()
        await self.release.wait()
        if self.fail and messages:
            raise ConnectionError("broker gone")
        self.produced.extend(messages)


async def _expire(
    engines: EngineMaker, registry: AgencyRegistry, producer: Producer, *planned: Planned
) -> None:
    rounds = Rounds(engines(), producer, "test")
    context = Context(registry, "urn:nld:oin:00000099000000000001:systeem:test", NOW, 3, None)
    await rounds._produce(context, list(planned), {})


async def _set_timers(engines: EngineMaker, *planned: Planned) -> None:
    ws = Workspace({}, {})
    for plan in planned:
        ws.schedule(plan.timer)
    async with write_transaction(engines()) as connection:
        await store.save(connection, ws)


async def _produced(engines: EngineMaker, *planned: Planned) -> set[UUID]:
    """What the consumer reads, in a write transaction as the consumer's."""
    async with writing(engines()) as connection:
        return await timers.produced(connection, [plan.timer.id for plan in planned])


async def test_an_expiry_of_a_pending_handoff_goes_out_and_ends_it_in_custody(
    engines: EngineMaker, registry: AgencyRegistry
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    await _store(engines, _custody(case_id, handoff_id))
    producer = Producer()

    await _expire(engines, registry, producer, _expiry(case_id, handoff_id))

    assert 1 == len(producer.produced)
    assert await _pending(engines, case_id) is None


async def test_an_expiry_of_a_handoff_answered_meanwhile_does_not_go_out(
    engines: EngineMaker, registry: AgencyRegistry
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    await _store(engines, _custody(case_id, None))  # the router let the answer through first
    producer = Producer()

    await _expire(engines, registry, producer, _expiry(case_id, handoff_id))

    assert [] == producer.produced


async def test_an_expiry_that_cannot_be_produced_leaves_the_handoff_pending(
    engines: EngineMaker, registry: AgencyRegistry
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    await _store(engines, _custody(case_id, handoff_id))

    await _expire(engines, registry, Producer(fail=True), _expiry(case_id, handoff_id))

    assert handoff_id == await _pending(engines, case_id)


async def test_a_case_with_no_custody_is_expired_as_its_case_log_says(
    engines: EngineMaker, registry: AgencyRegistry
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()  # its log was written past the router
    producer = Producer()

    await _expire(engines, registry, producer, _expiry(case_id, handoff_id))

    assert 1 == len(producer.produced)


async def test_an_expiry_that_went_out_marks_its_timer_produced_and_others_stay_unmarked(
    engines: EngineMaker, registry: AgencyRegistry
) -> None:
    out, answered = uuid.uuid4(), uuid.uuid4()
    handoff_id = uuid.uuid4()
    await _store(engines, _custody(out, handoff_id), _custody(answered, None))
    planned = [_expiry(out, handoff_id), _expiry(answered, uuid.uuid4())]
    await _set_timers(engines, *planned)

    await _expire(engines, registry, Producer(), *planned)

    assert {planned[0].timer.id} == await _produced(engines, *planned)


async def test_an_expiry_that_could_not_be_produced_leaves_its_timer_unmarked(
    engines: EngineMaker, registry: AgencyRegistry
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    await _store(engines, _custody(case_id, handoff_id))
    planned = _expiry(case_id, handoff_id)
    await _set_timers(engines, planned)

    await _expire(engines, registry, Producer(fail=True), planned)

    assert set() == await _produced(engines, planned)


async def test_reading_the_mark_while_the_round_produces_waits_for_its_commit(
    engines: EngineMaker, registry: AgencyRegistry
) -> None:
    """The consumer can read the expiry back before the round commits: it must not read
    the timer as not produced then."""
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    await _store(engines, _custody(case_id, handoff_id))
    planned = _expiry(case_id, handoff_id)
    await _set_timers(engines, planned)
    producer = Producer(hold=True)
    expiring = asyncio.create_task(_expire(engines, registry, producer, planned))
    await asyncio.wait_for(producer.producing.wait(), 10)

    reading = asyncio.create_task(_produced(engines, planned))
    await asyncio.sleep(0.3)
    waited = not reading.done()
    producer.release.set()
    await asyncio.wait_for(expiring, 10)

    assert waited
    assert {planned.timer.id} == await asyncio.wait_for(reading, 10)
