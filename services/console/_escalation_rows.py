"""The escalation board's rows: read from the escalation service's `escalations` table.

The table is the service's own record of where each escalation stands, so the
board shows a status only once the service has applied it. Nothing in it is
free text written by a case worker (causes are built from codes), so a row can
go to a team's screen and terminal as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import TeamRef
from services.runtime.store.tables import escalations

OPEN_STATUSES = ("raised", "acknowledged")
LIMIT = 500
"""Rows `status=all` returns at most: the latest raised first."""

Item = dict[str, Any]
"""One escalation as the API returns it (see `item_of`)."""

_TIMES = ("raised_at", "alerted_at", "acknowledge_by", "acknowledged_at", "resolved_at")


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def item_of(row: Row[Any]) -> Item:
    """The API's object for a row, without `age_s` (that changes by itself: `aged`)."""
    item: Item = {
        "escalation_id": str(row.escalation_id),
        "case_id": str(row.case_id),
        "level": row.level,
        "team": f"{row.team_agency}/{row.team}",
        "trigger": row.trigger,
        "cause": row.cause,
        "status": row.status,
        "outcome": row.outcome,
    }
    item.update({name: _iso(getattr(row, name)) for name in _TIMES})
    return item


def aged(item: Item, now: datetime | None = None) -> Item:
    """`item` with `age_s`: whole seconds since it was first raised (never negative)."""
    moment = now or datetime.now(UTC)
    raised = datetime.fromisoformat(item["raised_at"])
    return {**item, "age_s": max(0, int((moment - raised).total_seconds()))}


def age_words(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`: as console.js `formatAge` writes it."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def is_open(item: Item) -> bool:
    return item["status"] in OPEN_STATUSES


def visible_to(team: TeamRef | None, item: Item) -> bool:
    """Everything for an operator (`team` None); a team sees the ones alerting it."""
    return team is None or item["team"] == f"{team.agency}/{team.team}"


def board_order(items: Iterable[Item]) -> list[Item]:
    """Highest level first, then oldest first: what needs a decision soonest on top."""
    return sorted(items, key=lambda item: (-item["level"], item["raised_at"]))


def _query(team: TeamRef | None) -> Select[Any]:
    query = select(escalations)
    if team is not None:
        query = query.where(
            escalations.c.team_agency == team.agency, escalations.c.team == team.team
        )
    return query


async def listed(
    engine: AsyncEngine, team: TeamRef | None, status: Literal["open", "all"]
) -> list[Item]:
    """The escalations `team` may see (None: all), open ones or the latest `LIMIT`."""
    query = _query(team)
    if status == "open":
        query = query.where(escalations.c.status.in_(OPEN_STATUSES))
    else:
        query = query.order_by(escalations.c.raised_at.desc()).limit(LIMIT)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return board_order(item_of(row) for row in rows)


async def open_rows(engine: AsyncEngine) -> list[Item]:
    """Every open escalation, for the feed."""
    query = select(escalations).where(escalations.c.status.in_(OPEN_STATUSES))
    async with engine.connect() as connection:
        return [item_of(row) for row in await connection.execute(query)]


async def rows_by_id(engine: AsyncEngine, ids: Collection[UUID]) -> list[Item]:
    """The escalations with these ids (for the feed: the ones that just closed)."""
    found: list[Item] = []
    ordered = sorted(ids)
    async with engine.connect() as connection:
        for start in range(0, len(ordered), 1000):
            chunk = ordered[start : start + 1000]
            query = select(escalations).where(escalations.c.escalation_id.in_(chunk))
            found += [item_of(row) for row in await connection.execute(query)]
    return found
