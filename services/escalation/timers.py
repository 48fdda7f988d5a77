"""Claiming due timers in the database, so that one instance fires each.

A claim is a lease: `claimed_by` names the instance, `claimed_until` (real
time, since it measures how long an instance may take, not simulated time)
says until when the others leave it alone. On PostgreSQL the claiming UPDATE
picks its rows with `FOR UPDATE SKIP LOCKED`, so instances claiming at the same
moment take different timers instead of waiting on each other; on SQLite the
write transaction serialises the claims. A lease that runs out (the instance
died between producing and recording) makes the timer claimable again: it is
fired again with the same derived event ids, and consumers deduplicate.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from services.escalation.model import Timer
from services.escalation.writes import writing
from services.runtime.store.chunks import chunks
from services.runtime.store.tables import escalation_timers

t = escalation_timers.c

Marked = Literal["mine", "taken", "gone"]
"""mine: this instance fired it; taken: another did or holds it; gone: it was cancelled."""


@dataclass(frozen=True, slots=True)
class Claim:
    timers: list[Timer]
    """The timers this claim leased, earliest first."""
    next_due: datetime | None
    """The earliest due time of the unfired timers left that no lease holds and no busy case has."""


async def claim(
    engine: AsyncEngine,
    instance: str,
    *,
    now: datetime,
    wall_now: datetime,
    lease_until: datetime,
    limit: int,
    busy: Collection[UUID] = (),
) -> Claim:
    """Lease up to `limit` timers due at clock time `now`, earliest first, of cases not `busy`.

    One transaction also finds when the next timer falls due, so the loop needs
    one round trip per wake-up, not two.
    """
    async with writing(engine) as connection:
        due = (
            select(t.id)
            .where(_unleased(wall_now, busy), t.due_at <= now)
            .order_by(t.due_at)
            .limit(limit)
        )
        if connection.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        # A CTE runs once; a subquery in IN (...) may be re-run per row, each run
        # locking a fresh LIMIT of rows, and so claim more than `limit`.
        chosen = due.cte("due")
        claimed = (
            update(escalation_timers)
            .where(t.id == chosen.c.id)
            .values(claimed_by=instance, claimed_until=lease_until)
            .returning(t.id, t.case_id, t.kind, t.ref, t.due_at, t.causation_id)
        )
        rows = (await connection.execute(claimed)).all()
        following = await connection.scalar(
            select(func.min(t.due_at)).where(_unleased(wall_now, busy))
        )
    found = [Timer(r.id, r.case_id, r.kind, r.ref, r.due_at, r.causation_id) for r in rows]
    return Claim(sorted(found, key=lambda timer: (timer.due_at, str(timer.id))), following)


def _unleased(wall_now: datetime, busy: Collection[UUID]) -> ColumnElement[bool]:
    """Unfired, no live lease, and not of a case a round of this instance works on."""
    condition = t.fired_at.is_(None) & or_(t.claimed_until.is_(None), t.claimed_until < wall_now)
    return condition & t.case_id.not_in(list(busy)) if busy else condition


async def mark_fired(
    connection: AsyncConnection, claimed: Sequence[Timer], instance: str, fired_at: datetime
) -> dict[UUID, Marked]:
    """Record that `instance` fired these timers, except those another instance got first."""
    ids = [timer.id for timer in claimed]
    mine: set[UUID] = set()
    present: set[UUID] = set()
    for chunk in chunks(ids):
        marked = await connection.execute(
            update(escalation_timers)
            .where(t.id.in_(chunk), t.fired_at.is_(None), t.claimed_by == instance)
            .values(fired_at=fired_at, claimed_until=None)
            .returning(t.id)
        )
        mine.update(marked.scalars())
        rest = [i for i in chunk if i not in mine]
        if rest:
            present.update(await connection.scalars(select(t.id).where(t.id.in_(rest))))
    return {i: "mine" if i in mine else "taken" if i in present else "gone" for i in ids}


async def release(engine: AsyncEngine, timer_ids: Sequence[UUID], instance: str) -> None:
    """Give back leases this instance cannot use now (producing failed), for a retry soon."""
    if not timer_ids:
        return
    async with writing(engine) as connection:
        await connection.execute(
            update(escalation_timers)
            .where(t.id.in_(timer_ids), t.claimed_by == instance, t.fired_at.is_(None))
            .values(claimed_by=None, claimed_until=None)
        )


async def mark_produced(
    connection: AsyncConnection, timer_ids: Sequence[UUID], at: datetime | None
) -> None:
    """Set (or, with None, clear) when a round's expiries reached Kafka.

    A round marks its expiring timers before it produces, which locks their rows
    until it commits, and clears the mark of those whose events did not go out:
    a consumer reading the mark (`produced`) waits for that commit.
    """
    for chunk in chunks(timer_ids):
        await connection.execute(
            update(escalation_timers).where(t.id.in_(chunk)).values(produced_at=at)
        )


async def produced(connection: AsyncConnection, timer_ids: Sequence[UUID]) -> set[UUID]:
    """Which of these timers a round has produced the events of, committed.

    On PostgreSQL `FOR SHARE` waits for a round that is producing them now, and
    then reads the row as that round left it (the mark is tested here, not in
    the WHERE, which would be judged on the row before the round's change).
    """
    found: set[UUID] = set()
    for chunk in chunks(timer_ids):
        query = select(t.id, t.produced_at).where(t.id.in_(chunk)).with_for_update(read=True)
        found.update(row.id for row in await connection.execute(query) if row.produced_at)
    return found
