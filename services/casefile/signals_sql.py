"""The SQL behind the policy signals: portable GROUP BY queries over the timeline.

Everything starts from `escalations()`: one row per escalation id, built from
its first applied raise (the smallest timeline id: the order the tracker met
the events), its highest level, its first applied resolution and its case's
status. The queries group that derived table rather than the raw timeline, so
an escalation that climbed three levels still counts once. Only standard SQL
(MIN/MAX/COUNT, outer joins, UNION ALL, LIMIT) is used, so SQLite and
PostgreSQL give the same answers; time arithmetic is left to Python because
the two backends disagree on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Row, Subquery, and_, case, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.handoff import OPERATOR
from services.casefile.timeline import pair
from services.runtime.store.tables import case_timeline, cases

t = case_timeline


def _applied(event_type: str) -> ColumnElement[bool]:
    return and_(t.c.event_type == event_type, t.c.applied, t.c.escalation_id.is_not(None))


def escalations(start: datetime | None) -> Subquery:
    """One row per escalation first raised at or after `start` (None: all of them).

    Columns: escalation_id, case_id, raised_at, cause, rule_reference,
    agency_pair, level (the highest raised), resolved_at (NULL: unresolved),
    withdrawn (resolved by the bus itself as `no-action-needed`: the handoff's
    answer was ahead of its expiry), status (of the case).
    """
    raises = (
        select(
            t.c.escalation_id,
            func.min(t.c.id).label("first_id"),
            func.max(t.c.escalation_level).label("level"),
        )
        .where(_applied("escalation-raised"))
        .group_by(t.c.escalation_id)
        .subquery("raises")
    )
    resolutions = (
        select(t.c.escalation_id, func.min(t.c.time).label("resolved_at"))
        .where(_applied("escalation-resolved"))
        .group_by(t.c.escalation_id)
        .subquery("resolutions")
    )
    withdrawals = (
        select(t.c.escalation_id)
        .where(
            _applied("escalation-resolved"),
            t.c.agency == OPERATOR,
            t.c.escalation_outcome == "no-action-needed",
        )
        .group_by(t.c.escalation_id)
        .subquery("withdrawals")
    )
    first = t.alias("first_raise")
    query = select(
        raises.c.escalation_id,
        first.c.case_id,
        first.c.time.label("raised_at"),
        first.c.escalation_trigger.label("cause"),
        first.c.rule_reference,
        first.c.agency_pair,
        raises.c.level,
        resolutions.c.resolved_at,
        withdrawals.c.escalation_id.is_not(None).label("withdrawn"),
        cases.c.status,
    ).select_from(
        raises.join(first, first.c.id == raises.c.first_id)
        .outerjoin(resolutions, resolutions.c.escalation_id == raises.c.escalation_id)
        .outerjoin(withdrawals, withdrawals.c.escalation_id == raises.c.escalation_id)
        .outerjoin(cases, cases.c.case_id == first.c.case_id)
    )
    if start is not None:
        query = query.where(first.c.time >= start)
    return query.subquery("escalations")


def _unresolved(escalation: Subquery) -> ColumnElement[bool]:
    return and_(escalation.c.resolved_at.is_(None), escalation.c.status == "open")


async def count_by(
    connection: AsyncConnection, column: str, start: datetime | None
) -> dict[str | None, int]:
    """Escalations per value of `column` (cause, agency_pair or rule_reference)."""
    escalation = escalations(start)
    key = escalation.c[column]
    rows = await connection.execute(select(key, func.count()).group_by(key))
    return dict(rows.all())


async def resolution_times(
    connection: AsyncConnection, start: datetime | None
) -> list[tuple[str | None, float]]:
    """(cause, seconds from first raise to first resolution) of each escalation a team resolved.

    A withdrawn escalation is left out: nobody had to resolve it.
    """
    escalation = escalations(start)
    query = select(escalation.c.cause, escalation.c.raised_at, escalation.c.resolved_at).where(
        escalation.c.resolved_at.is_not(None), escalation.c.withdrawn.is_(False)
    )
    rows = await connection.execute(query)
    return [(cause, max(0.0, (done - raised).total_seconds())) for cause, raised, done in rows]


async def count_by_state(connection: AsyncConnection, start: datetime | None) -> dict[str, int]:
    """Escalations per state: resolved, withdrawn, open, unresolved-on-closed-case."""
    escalation = escalations(start)
    state = case(
        (escalation.c.withdrawn, "withdrawn"),
        (escalation.c.resolved_at.is_not(None), "resolved"),
        (escalation.c.status == "open", "open"),
        else_="unresolved-on-closed-case",
    )
    rows = await connection.execute(select(state, func.count()).group_by(state))
    return {str(key): count for key, count in rows.all()}


async def open_by_level(connection: AsyncConnection, start: datetime | None) -> dict[int, int]:
    """Unresolved escalations on open cases, per the highest level they reached."""
    escalation = escalations(start)
    query = (
        select(escalation.c.level, func.count())
        .where(_unresolved(escalation))
        .group_by(escalation.c.level)
    )
    return dict((await connection.execute(query)).all())


@dataclass(frozen=True, slots=True)
class StuckRow:
    case_id: UUID
    category: str
    holder: str
    stuck_since: datetime
    pending_handoff: str | None
    handoff_deadline: datetime | None
    open_escalations: int
    escalation_level: int | None
    escalation_cause: str | None


async def stuck_longest(connection: AsyncConnection, limit: int) -> list[StuckRow]:
    """The `limit` open cases waiting longest on a handoff answer or an escalation.

    A case is stuck since the earlier of its pending handoff's request and its
    oldest unresolved escalation's first raise. The ranking is one GROUP BY
    over both sources; the details are then read for those cases only.
    """
    escalation = escalations(None)
    asked = and_(
        t.c.case_id == cases.c.case_id,  # the indexed column first, then the handoff
        t.c.handoff_id == cases.c.pending_handoff_id,
        t.c.event_type == "handoff-requested",
        t.c.applied,
    )
    pending = (
        select(cases.c.case_id, func.min(t.c.time).label("since"))
        .select_from(cases.join(t, asked))
        .where(cases.c.status == "open")
        .group_by(cases.c.case_id)
    )
    escalated = (
        select(escalation.c.case_id, func.min(escalation.c.raised_at).label("since"))
        .where(_unresolved(escalation))
        .group_by(escalation.c.case_id)
    )
    both = union_all(pending, escalated).subquery("stuck")
    since = func.min(both.c.since)
    ranking = select(both.c.case_id, since).group_by(both.c.case_id).order_by(since, both.c.case_id)
    top = (await connection.execute(ranking.limit(max(0, limit)))).all()
    if not top:
        return []
    ids = [case_id for case_id, _ in top]
    found = {
        row.case_id: row
        for row in await connection.execute(select(cases).where(cases.c.case_id.in_(ids)))
    }
    open_ones: dict[UUID, list[tuple[str | None, int]]] = {case_id: [] for case_id in ids}
    details = (
        select(escalation.c.case_id, escalation.c.cause, escalation.c.level)
        .where(_unresolved(escalation), escalation.c.case_id.in_(ids))
        .order_by(escalation.c.raised_at, escalation.c.escalation_id)
    )
    for case_id, cause, level in await connection.execute(details):
        open_ones[case_id].append((cause, level))
    return [_row(found[case_id], stuck_since, open_ones[case_id]) for case_id, stuck_since in top]


def _row(
    case: Row[Any], stuck_since: datetime, open_ones: list[tuple[str | None, int]]
) -> StuckRow:
    pending = pair(case.pending_from, case.pending_to) if case.pending_to else None
    return StuckRow(
        case_id=case.case_id,
        category=case.category,
        holder=case.holder,
        stuck_since=stuck_since,
        pending_handoff=pending,
        handoff_deadline=case.pending_deadline if pending else None,
        open_escalations=len(open_ones),
        escalation_level=max((level for _, level in open_ones), default=None),
        escalation_cause=open_ones[0][0] if open_ones else None,
    )
