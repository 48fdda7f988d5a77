"""Apply a batch of case events to the store: one transaction, each event id at most once.

The consumer commits its Kafka offsets only after `apply_batch` returns, so a
crash in between replays the batch; the replay finds the event ids on the
timeline and skips them. The unique `event_id` column is the last guard: if two
consumers ever apply the same events at once (a rebalance), one transaction
fails whole and its batch is replayed.

Throughput: a batch costs a fixed number of statements whatever its size: load
the cases it touches, find the ids already seen, insert the timeline rows,
insert the new cases, update the changed ones. On PostgreSQL they take arrays,
COPY and asyncpg's executemany (`ledger_pg`); elsewhere (SQLite) SQLAlchemy
Core statements, with the ids in chunks (`runtime.store.chunks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import CaseEvent
from contracts.events import EscalationAcknowledged, EscalationResolved
from contracts.handoff import (
    Applied,
    CaseState,
    Decision,
    Refused,
    actor_of,
    decide,
    emitter_of,
    escalation_agencies,
)
from contracts.registry import AgencyRegistry
from services.casefile.timeline import facts_of
from services.custody.state_rows import state_of, state_values
from services.runtime.store.chunks import chunks
from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import case_timeline, cases
from services.tracker import ledger_pg
from services.tracker.ledger_pg import CASE_COLUMNS, TIMELINE_COLUMNS


class Recorded(NamedTuple):
    """One event written to the timeline, with who sent it and what it did (one per event)."""

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
        postgres = connection.dialect.name == "postgresql"
        # Lock the cases first: a concurrent writer of the same cases finishes
        # before we look for the ids it may have recorded.
        case_ids = {event.subject for event in fresh}
        states: dict[UUID, CaseState | None] = dict.fromkeys(case_ids)
        rows = await (ledger_pg.load_cases if postgres else _load_cases)(connection, case_ids)
        for row in rows:
            states[row.case_id] = state_of(row)
        existing = {case_id for case_id, state in states.items() if state is not None}
        ids = [event.id for event in fresh]
        seen = await (ledger_pg.seen_ids if postgres else _seen_ids)(connection, ids)
        recorded: list[Recorded] = []
        changed: set[UUID] = set()
        actors = _Actors(registry)
        for event in fresh:
            if event.id in seen:
                duplicates.append(event)
                continue
            emitter = actors.of(event)
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
        # In key order, as the locks were taken: two writers of new cases queue, not deadlock.
        changed_states = [state for key in sorted(changed) if (state := states[key]) is not None]
        timeline = [timeline_row(r) for r in recorded]
        new = [case_row(s, now) for s in changed_states if s.case_id not in existing]
        updated = [case_row(s, now) for s in changed_states if s.case_id in existing]
        if postgres:
            await ledger_pg.write(connection, timeline, new, updated)
        else:
            await _write(connection, timeline, new, updated)
    return BatchResult(recorded, duplicates)


class _Actors:
    """`actor_of`, remembering the emitter of each `source` within a batch.

    A batch holds the events of a few systems; looking each one's OIN up once
    is enough. A team's act from the console depends on the event, not only its
    source, so those go to `actor_of` every time.
    """

    def __init__(self, registry: AgencyRegistry) -> None:
        self.registry = registry
        self.by_source: dict[str, str | None] = {}

    def of(self, event: CaseEvent[Any]) -> str | None:
        if isinstance(event, _TEAM_ACTS):
            return actor_of(event, self.registry)
        source = event.source
        if source not in self.by_source:
            self.by_source[source] = emitter_of(source, self.registry)
        return self.by_source[source]


_TEAM_ACTS = (EscalationAcknowledged, EscalationResolved)


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


async def _load_cases(connection: AsyncConnection, case_ids: set[UUID]) -> list[Row[Any]]:
    found: list[Row[Any]] = []
    for chunk in chunks(sorted(case_ids)):
        # In key order, so two writers lock rows in the same order (no deadlock).
        query = (
            select(cases)
            .where(cases.c.case_id.in_(chunk))
            .order_by(cases.c.case_id)
            .with_for_update()
        )
        found.extend(await connection.execute(query))
    return found


async def _seen_ids(connection: AsyncConnection, event_ids: list[UUID]) -> set[UUID]:
    seen: set[UUID] = set()
    for chunk in chunks(event_ids):
        query = select(case_timeline.c.event_id).where(case_timeline.c.event_id.in_(chunk))
        seen.update(await connection.scalars(query))
    return seen


async def _write(
    connection: AsyncConnection,
    timeline: list[tuple[Any, ...]],
    new: list[tuple[Any, ...]],
    updated: list[tuple[Any, ...]],
) -> None:
    """Executemany statements: one round trip each, whatever the batch size."""
    if timeline:
        rows = [dict(zip(TIMELINE_COLUMNS, row, strict=True)) for row in timeline]
        await connection.execute(insert(case_timeline), rows)
    if new:
        await connection.execute(
            insert(cases), [dict(zip(CASE_COLUMNS, row, strict=True)) for row in new]
        )
    if updated:
        # SET every column but the key, found by `key`.
        keyed = [
            {"key": row[0], **dict(zip(CASE_COLUMNS[1:], row[1:], strict=True))} for row in updated
        ]
        by_key = update(cases).where(cases.c.case_id == bindparam("key"))
        await connection.execute(by_key, keyed)


def timeline_row(recorded: Recorded) -> tuple[Any, ...]:
    """The timeline row of `recorded`, in `TIMELINE_COLUMNS` order."""
    event, decision = recorded.event, recorded.decision
    facts = facts_of(event)
    return (
        event.id,
        event.subject,
        event.time,
        event.name,
        recorded.emitter,
        event.sequence,
        facts.summary,
        isinstance(decision, Applied),
        decision.reason if isinstance(decision, Refused) else None,
        facts.handoff_id,
        facts.escalation_id,
        facts.escalation_level,
        facts.escalation_trigger,
        facts.escalation_outcome,
        facts.rule_reference,
        facts.agency_pair,
    )


def case_row(state: CaseState, now: datetime) -> tuple[Any, ...]:
    """The `cases` row of `state`, written at `now`, in `CASE_COLUMNS` order."""
    return (*state_values(state), now)
