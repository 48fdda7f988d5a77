"""Read the case store: one case with its escalations and timeline, or the most recent cases.

Used by the CLI (`ketenbus case`, `ketenbus cases`) and the console. The
results are pydantic models so callers can print them or dump them as JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.casefile.escalations import EscalationView, escalations_of
from services.runtime.store.tables import case_timeline, cases

_MODEL = ConfigDict(frozen=True)


class PendingHandoffView(BaseModel):
    model_config = _MODEL
    handoff_id: UUID
    from_agency: str
    to_agency: str
    deadline: datetime


class CaseSummary(BaseModel):
    """A case's current state: who holds it, whether it is open, what is in flight."""

    model_config = _MODEL
    case_id: UUID
    category: str
    holder: str
    status: Literal["open", "closed"]
    pending_handoff: PendingHandoffView | None
    bounce_count: int
    opened_at: datetime
    updated_at: datetime
    last_event_at: datetime


class TimelineEntry(BaseModel):
    """One event the tracker saw for the case, and whether it was applied."""

    model_config = _MODEL
    event_id: UUID
    time: datetime
    type: str = Field(description="The event name: handoff-accepted.")
    agency: str | None
    sequence: int
    summary: str
    applied: bool
    refusal: str | None
    handoff_id: UUID | None
    escalation_id: UUID | None
    escalation_level: int | None
    escalation_trigger: str | None
    escalation_outcome: str | None
    rule_reference: str | None
    agency_pair: str | None


class CaseView(CaseSummary):
    """A case, its escalations and its timeline, oldest first."""

    escalations: list[EscalationView]
    timeline: list[TimelineEntry]


def _summary_fields(row: Row[Any]) -> dict[str, Any]:
    pending = None
    if row.pending_handoff_id is not None:
        pending = PendingHandoffView(
            handoff_id=row.pending_handoff_id,
            from_agency=row.pending_from,
            to_agency=row.pending_to,
            deadline=row.pending_deadline,
        )
    return {
        "case_id": row.case_id,
        "category": row.category,
        "holder": row.holder,
        "status": row.status,
        "pending_handoff": pending,
        "bounce_count": row.bounce_count,
        "opened_at": row.opened_at,
        "updated_at": row.updated_at,
        "last_event_at": row.last_event_at,
    }


async def case_view(engine: AsyncEngine, case_id: UUID) -> CaseView | None:
    """The case and its timeline in the order the tracker met the events; None if never opened.

    Both from one snapshot: the tracker commits a case's state and its timeline
    together, and a view must not show the one before and the other after.
    """
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Read committed would take each statement's own snapshot.
            await connection.execution_options(isolation_level="REPEATABLE READ")
        row = (await connection.execute(select(cases).where(cases.c.case_id == case_id))).first()
        if row is None:
            return None
        rows = (await connection.execute(_timeline_query(case_id))).all()
    entries = [_entry(entry) for entry in rows]
    return CaseView(**_summary_fields(row), escalations=escalations_of(entries), timeline=entries)


async def timeline(engine: AsyncEngine, case_id: UUID) -> list[TimelineEntry]:
    """Every event seen for `case_id`, in order; for a case never opened, the refused ones."""
    async with engine.connect() as connection:
        return [_entry(row) for row in await connection.execute(_timeline_query(case_id))]


def _timeline_query(case_id: UUID) -> Select[Any]:
    return (
        select(case_timeline).where(case_timeline.c.case_id == case_id).order_by(case_timeline.c.id)
    )


def _entry(row: Row[Any]) -> TimelineEntry:
    return TimelineEntry.model_validate({**row._mapping, "type": row.event_type})


async def recent_cases(engine: AsyncEngine, limit: int = 20) -> list[CaseSummary]:
    """The `limit` cases with the most recent activity, newest first."""
    query = (
        select(cases).order_by(cases.c.last_event_at.desc(), cases.c.case_id).limit(max(0, limit))
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [CaseSummary(**_summary_fields(row)) for row in rows]
