"""Durable timers in the store, on SQLite and PostgreSQL: set once, claimed by one, leased."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import select

from services.escalation import store, timers
from services.escalation.model import Timer
from services.escalation.workspace import Cancel, Workspace
from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import escalation_timers
from tests._testutil import EngineMaker

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def _idle_timers(count: int, *, due: datetime = NOW) -> list[Timer]:
    made = []
    for n in range(count):
        case_id = uuid.uuid4()
        made.append(Timer.new("idle", case_id, case_id, due - timedelta(seconds=n)))
    return made


async def _set(engines: EngineMaker, made: list[Timer], cancels: Sequence[Cancel] = ()) -> None:
    ws = Workspace({}, {})
    for cancel in cancels:
        ws.cancel(cancel)
    for timer in made:
        ws.schedule(timer)
    async with write_transaction(engines()) as connection:
        await store.save(connection, ws)


async def _claim(
    engines: EngineMaker, who: str, limit: int, wall: datetime = NOW, busy: Sequence[UUID] = ()
) -> timers.Claim:
    return await timers.claim(
        engines(), who, now=NOW, wall_now=wall, lease_until=wall + LEASE, limit=limit, busy=busy
    )


async def test_a_timer_is_set_once_however_often_it_is_scheduled(engines: EngineMaker) -> None:
    made = _idle_timers(3)

    await _set(engines, made)
    await _set(engines, made)  # a replay: the unique rule skips them

    async with engines().connect() as connection:
        stored = (await connection.execute(select(escalation_timers.c.id))).scalars().all()
    assert sorted(t.id for t in made) == sorted(stored)


async def test_concurrent_claims_take_disjoint_timers_and_no_more_than_asked(
    engines: EngineMaker,
) -> None:
    await _set(engines, _idle_timers(300))

    claims = await asyncio.gather(*(_claim(engines, f"i{n}", 40) for n in range(10)))

    ids = [t.id for claim in claims for t in claim.timers]
    assert all(len(claim.timers) <= 40 for claim in claims)
    assert len(ids) == len(set(ids)) == 300
    assert [] == (await _claim(engines, "late", 40)).timers


async def test_a_lease_keeps_others_off_until_it_runs_out(engines: EngineMaker) -> None:
    [timer] = _idle_timers(1)
    await _set(engines, [timer])
    assert [timer.id] == [t.id for t in (await _claim(engines, "first", 10)).timers]

    during = await _claim(engines, "second", 10, wall=NOW + LEASE - timedelta(seconds=1))
    after = await _claim(engines, "second", 10, wall=NOW + LEASE + timedelta(seconds=1))

    assert ([], None) == (during.timers, during.next_due)  # leased: not even next
    assert [timer.id] == [t.id for t in after.timers]


async def test_only_the_lease_holder_marks_a_timer_fired_and_a_cancelled_one_is_gone(
    engines: EngineMaker,
) -> None:
    kept, cancelled = _idle_timers(2)
    await _set(engines, [kept, cancelled])
    await _claim(engines, "holder", 10)
    await _set(engines, [], [Cancel(ref=cancelled.ref, kinds=("idle",))])

    async with write_transaction(engines()) as connection:
        by_other = await timers.mark_fired(connection, [kept, cancelled], "other", NOW)
        by_holder = await timers.mark_fired(connection, [kept, cancelled], "holder", NOW)
        again = await timers.mark_fired(connection, [kept], "holder", NOW)

    assert {kept.id: "taken", cancelled.id: "gone"} == by_other
    assert {kept.id: "mine", cancelled.id: "gone"} == by_holder
    assert {kept.id: "taken"} == again


async def test_a_claim_tells_the_next_due_time_and_leaves_busy_cases_alone(
    engines: EngineMaker,
) -> None:
    busy, early, late = (
        Timer.new("idle", case, case, NOW + timedelta(hours=h))
        for h, case in ((-1, uuid.uuid4()), (1, uuid.uuid4()), (2, uuid.uuid4()))
    )
    await _set(engines, [late, early, busy])

    claim = await _claim(engines, "one", 10, busy=[busy.case_id])

    assert ([], early.due_at) == (claim.timers, claim.next_due)
