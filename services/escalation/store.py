"""Load a workspace from the store and write it back: a fixed number of statements per batch.

Cases are locked (PostgreSQL: `FOR UPDATE`, in key order) before anything
else, by the consumer and by the timer loop alike, so the two never interleave
their changes to one case and never deadlock: whoever comes second waits and
then reads what the first committed. On SQLite the write transaction already
serialises writers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from services.escalation.model import CaseFile, Escalation
from services.escalation.rows import escalation_of, escalation_row, file_of, file_row
from services.escalation.workspace import Cancel, Workspace
from services.runtime.store.bulk import insert_new
from services.runtime.store.chunks import chunks
from services.runtime.store.tables import (
    escalation_cases,
    escalation_seen_events,
    escalation_timers,
    escalations,
)

OPEN = ("raised", "acknowledged")


async def load(
    connection: AsyncConnection,
    case_ids: Iterable[UUID],
    *,
    lock: bool,
    published: set[UUID] | None = None,
) -> Workspace:
    """The cases among `case_ids` the service knows, and their open escalations."""
    files: dict[UUID, CaseFile] = {}
    found: dict[UUID, Escalation] = {}
    known: set[UUID] = set()
    for chunk in chunks(sorted(set(case_ids))):
        query = (
            select(escalation_cases)
            .where(escalation_cases.c.case_id.in_(chunk))
            .order_by(escalation_cases.c.case_id)
        )
        if lock:
            query = query.with_for_update()
        for row in await connection.execute(query):
            files[row.case_id] = file_of(row)
        # Every escalation of the cases, closed ones too: the rules must know an id
        # was used (a replayed expiry must not raise again what was resolved).
        for row in await connection.execute(
            select(escalations).where(escalations.c.case_id.in_(chunk))
        ):
            known.add(row.escalation_id)
            if row.status in OPEN:
                found[row.escalation_id] = escalation_of(row)
    workspace = Workspace(files, found, published=published)
    workspace.known_escalations.update(known)
    return workspace


async def seen_ids(connection: AsyncConnection, event_ids: Sequence[UUID]) -> set[UUID]:
    seen: set[UUID] = set()
    for chunk in chunks(event_ids):
        query = select(escalation_seen_events.c.event_id).where(
            escalation_seen_events.c.event_id.in_(chunk)
        )
        seen.update(await connection.scalars(query))
    return seen


async def save(connection: AsyncConnection, ws: Workspace, seen: Sequence[UUID] = ()) -> None:
    """Write what `ws` changed: cases, escalations, cancelled, new and hastened timers,
    seen ids."""
    if seen:
        await connection.execute(insert(escalation_seen_events), [{"event_id": i} for i in seen])
    changed = [ws.files[key] for key in sorted(ws.changed_files)]
    await _upsert(
        connection,
        escalation_cases,
        escalation_cases.c.case_id,
        [file_row(f) for f in changed],
        ws.existing_files,
    )
    raised = [ws.escalations[key] for key in sorted(ws.changed_escalations)]
    await _upsert(
        connection,
        escalations,
        escalations.c.escalation_id,
        [escalation_row(e) for e in raised],
        ws.existing_escalations,
    )
    for condition in _cancel_conditions(ws.cancels):
        await connection.execute(delete(escalation_timers).where(condition))
    if ws.timers:
        rows = [
            {
                "id": t.id,
                "case_id": t.case_id,
                "kind": t.kind,
                "ref": t.ref,
                "due_at": t.due_at,
                "causation_id": t.causation_id,
            }
            for t in ws.timers.values()
        ]
        await connection.execute(_insert_new(connection), rows)
    # One statement each: a hastened deadline is rare (a request its receiver never got).
    timer = escalation_timers.c
    for hasten in ws.hastened:
        await connection.execute(
            update(escalation_timers)
            .where(
                timer.id == hasten.timer_id,
                timer.causation_id == hasten.causation_id,
                timer.fired_at.is_(None),
                timer.due_at > hasten.due_at,
            )
            .values(due_at=hasten.due_at)
        )


def _insert_new(connection: AsyncConnection) -> Any:
    """INSERT that skips a timer already set (the unique rule: set at most once)."""
    return insert_new(connection.dialect.name, escalation_timers)


async def _upsert(
    connection: AsyncConnection,
    table: Any,
    key: Any,
    rows: list[dict[str, Any]],
    existing: set[UUID],
) -> None:
    new = [row for row in rows if row[key.name] not in existing]
    if new:
        await connection.execute(insert(table), new)
    old = [{**row, "key": row[key.name]} for row in rows if row[key.name] in existing]
    for row in old:
        del row[key.name]
    if old:
        await connection.execute(update(table).where(key == bindparam("key")), old)


def _cancel_conditions(cancels: list[Cancel]) -> Iterator[ColumnElement[bool]]:
    """One DELETE condition per kind of cancellation and chunk of keys, not one per cancel."""
    grouped: dict[tuple[str, tuple[str, ...], bool], list[UUID]] = {}
    for cancel in cancels:
        field, value = ("case_id", cancel.case_id) if cancel.ref is None else ("ref", cancel.ref)
        assert value is not None
        grouped.setdefault((field, cancel.kinds, cancel.fired_too), []).append(value)
    t = escalation_timers.c
    for (field, kinds, fired_too), values in grouped.items():
        for chunk in chunks(dict.fromkeys(values)):
            condition: ColumnElement[bool] = t[field].in_(chunk)
            if kinds:
                condition = and_(condition, t.kind.in_(kinds))
            if not fired_too:
                condition = and_(condition, t.fired_at.is_(None))
            yield condition
