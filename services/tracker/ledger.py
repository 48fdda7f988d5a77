"""Apply a batch of case events to the store: one transaction, each event id at most once.

The consumer commits its Kafka offsets only after `apply_batch` returns, so a
crash in between replays the batch; the replay finds the event ids on the
timeline and skips them. The unique `event_id` column is the last guard: if two
consumers ever apply the same events at once (a rebalance), one transaction
fails whole and its batch is replayed.

Throughput: a batch costs a fixed number of statements whatever its size: load
the cases it touches, find the ids already seen, insert the timeline rows,
insert the new cases, update the changed ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import CaseEvent
from contracts.events import EscalationResolved
from contracts.registry import AgencyRegistry
from services.runtime.store import write_transaction
from services.runtime.tables import case_timeline, cases
from services.tracker.state import (
    Applied,
    CaseState,
    Decision,
    PendingHandoff,
    Refused,
    actor_of,
    decide,
    escalation_agencies,
)
from services.tracker.timeline import facts_of

CHUNK = 1000
"""Ids per IN (...) list: far below SQLite's and asyncpg's bound-parameter limits."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One event written to the timeline, with who sent it and what it did."""

    event: CaseEvent[Any]
    emitter: str | None
    decision: Decision


@dataclass(frozen=True, slots=True)
class BatchResult:
    recorded: list[Recorded] = field(default_factory=list)
    duplicates: list[CaseEvent[Any]] = field(default_factory=list)
    """Events skipped because their id was seen before (earlier, or in this batch)."""

    @property
    def applied(self) -> int:
        return sum(isinstance(r.decision, Applied) for r in self.recorded)

    @property
    def refused(self) -> int:
        return sum(isinstance(r.decision, Refused) for r in self.recorded)


async def apply_batch(
    engine: AsyncEngine, registry: AgencyRegistry, events: Sequence[CaseEvent[Any]]
) -> BatchResult:
    """Record `events` in order and apply those the state machine allows, atomically."""
    fresh, duplicates = _first_of_each_id(events)
    if not fresh:
        return BatchResult(duplicates=duplicates)
    now = datetime.now(UTC)
    async with write_transaction(engine) as connection:
        # Lock the cases first: a concurrent writer of the same cases finishes
        # before we look for the ids it may have recorded.
        states: dict[UUID, CaseState | None] = dict(
            await _load_cases(connection, {event.subject for event in fresh})
        )
        existing = {case_id for case_id, state in states.items() if state is not None}
        seen = await _seen_ids(connection, [event.id for event in fresh])
        recorded: list[Recorded] = []
        changed: set[UUID] = set()
        for event in fresh:
            if event.id in seen:
                duplicates.append(event)
                continue
            emitter = actor_of(event, registry)
            state = states.get(event.subject)
            path = (
                escalation_agencies(registry, state.category)
                if state is not None and isinstance(event, EscalationResolved)
                else frozenset()
            )
            decision = decide(state, event, emitter, path=path)
            if isinstance(decision, Applied):
                states[event.subject] = decision.state
                changed.add(event.subject)
            recorded.append(Recorded(event, emitter, decision))
        changed_states = [state for key in changed if (state := states[key]) is not None]
        await _write(connection, recorded, changed_states, existing, now)
    return BatchResult(recorded, duplicates)


def _first_of_each_id(
    events: Sequence[CaseEvent[Any]],
) -> tuple[list[CaseEvent[Any]], list[CaseEvent[Any]]]:
    seen: set[UUID] = set()
    fresh: list[CaseEvent[Any]] = []
    duplicates: list[CaseEvent[Any]] = []
    for event in events:
        (duplicates if event.id in seen else fresh).append(event)
        seen.add(event.id)
    return fresh, duplicates


def _chunks(items: Iterable[T]) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


async def _load_cases(
    connection: AsyncConnection, case_ids: set[UUID]
) -> dict[UUID, CaseState | None]:
    found: dict[UUID, CaseState | None] = dict.fromkeys(case_ids)
    for chunk in _chunks(sorted(case_ids)):
        # In key order, so two writers lock rows in the same order (no deadlock).
        query = (
            select(cases)
            .where(cases.c.case_id.in_(chunk))
            .order_by(cases.c.case_id)
            .with_for_update()
        )
        for row in await connection.execute(query):
            found[row.case_id] = state_of(row)
    return found


async def _seen_ids(connection: AsyncConnection, event_ids: list[UUID]) -> set[UUID]:
    seen: set[UUID] = set()
    for chunk in _chunks(event_ids):
        query = select(case_timeline.c.event_id).where(case_timeline.c.event_id.in_(chunk))
        seen.update(await connection.scalars(query))
    return seen


async def _write(
    connection: AsyncConnection,
    recorded: list[Recorded],
    changed: list[CaseState],
    existing: set[UUID],
    now: datetime,
) -> None:
    """Executemany statements: one round trip each, whatever the batch size."""
    if recorded:
        await connection.execute(insert(case_timeline), [_timeline_row(r) for r in recorded])
    new = [_case_row(state, now) for state in changed if state.case_id not in existing]
    if new:
        await connection.execute(insert(cases), new)
    updated = []
    for state in changed:
        if state.case_id in existing:
            row = _case_row(state, now)
            row["key"] = row.pop("case_id")  # SET every column but the key
            updated.append(row)
    if updated:
        by_key = update(cases).where(cases.c.case_id == bindparam("key"))
        await connection.execute(by_key, updated)


def _timeline_row(recorded: Recorded) -> dict[str, Any]:
    event, decision = recorded.event, recorded.decision
    facts = facts_of(event)
    return {
        "event_id": event.id,
        "case_id": event.subject,
        "time": event.time,
        "event_type": event.name,
        "agency": recorded.emitter,
        "sequence": event.sequence,
        "summary": facts.summary,
        "applied": isinstance(decision, Applied),
        "refusal": decision.reason if isinstance(decision, Refused) else None,
        "handoff_id": facts.handoff_id,
        "escalation_id": facts.escalation_id,
        "escalation_level": facts.escalation_level,
        "escalation_trigger": facts.escalation_trigger,
        "escalation_outcome": facts.escalation_outcome,
        "rule_reference": facts.rule_reference,
        "agency_pair": facts.agency_pair,
    }


def _case_row(state: CaseState, now: datetime) -> dict[str, Any]:
    pending = state.pending
    return {
        "case_id": state.case_id,
        "category": state.category,
        "holder": state.holder,
        "status": state.status,
        "pending_handoff_id": pending.handoff_id if pending else None,
        "pending_from": pending.from_agency if pending else None,
        "pending_to": pending.to_agency if pending else None,
        "pending_deadline": pending.deadline if pending else None,
        "bounce_count": state.bounce_count,
        "opened_at": state.opened_at,
        "updated_at": now,
        "last_event_at": state.last_event_at,
    }


def state_of(row: Row[Any]) -> CaseState:
    """The state machine's view of a `cases` row."""
    pending = None
    if row.pending_handoff_id is not None:
        pending = PendingHandoff(
            row.pending_handoff_id, row.pending_from, row.pending_to, row.pending_deadline
        )
    return CaseState(
        case_id=row.case_id,
        category=row.category,
        holder=row.holder,
        status=row.status,
        opened_at=row.opened_at,
        last_event_at=row.last_event_at,
        pending=pending,
        bounce_count=row.bounce_count,
    )
