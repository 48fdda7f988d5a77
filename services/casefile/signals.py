"""Policy signals: what keeps causing escalations, and where cases stall.

DESIGN "Why it exists": dilemmas in execution must reach policy makers. This
turns the tracker's timeline into one typed aggregate (`PolicySignals`) that
`ketenbus signals` prints and the console can serve: escalations by cause, by
agency pair and by the law or rule cited, time to resolution, open escalations
by level, and the cases stuck longest.

An escalation is counted once, at its first applied `escalation-raised`; its
cause, rule reference and agency pair are those of that first raise. Counting
and grouping run in SQL (`signals_sql`); percentiles are computed here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from services.casefile import signals_sql

_MODEL = ConfigDict(frozen=True)

STUCK_LIMIT = 10
"""How many of the cases stuck longest the report lists."""


class Tally(BaseModel):
    """How many escalations share one value; `key` None: the escalation named none."""

    model_config = _MODEL
    key: str | None
    escalations: int


class Resolution(BaseModel):
    """Time from first raise to resolution, over the resolved escalations."""

    model_config = _MODEL
    resolved: int
    median_seconds: float | None
    p90_seconds: float | None


class EscalationStates(BaseModel):
    """Where every escalation counted stands; the four add up to the escalations."""

    model_config = _MODEL
    resolved: int
    """Resolved by a team (or the operator for it)."""
    withdrawn: int
    """Resolved by the bus itself (`no-action-needed`): the handoff's answer was ahead
    of its expiry, so nobody had to act."""
    open: int
    """Unresolved, on a case that is still open."""
    unresolved_on_closed_cases: int
    """Unresolved when its case was closed: nobody resolves it any more."""


class CauseSignal(BaseModel):
    """One cause (trigger): how often it escalated and how long resolving it took."""

    model_config = _MODEL
    cause: str | None
    escalations: int
    resolution: Resolution


class LevelCount(BaseModel):
    model_config = _MODEL
    level: int
    open: int


class StuckCase(BaseModel):
    """An open case with a pending handoff or an unresolved escalation, and for how long."""

    model_config = _MODEL
    case_id: UUID
    category: str
    holder: str
    stuck_since: datetime
    stuck_seconds: float
    pending_handoff: str | None
    """`from>to` of the handoff waiting for an answer, if any."""
    handoff_deadline: datetime | None
    open_escalations: int
    escalation_level: int | None
    """The highest level among its unresolved escalations."""
    escalation_cause: str | None
    """The cause of its oldest unresolved escalation."""
    why: str


class PolicySignals(BaseModel):
    """The aggregate behind `ketenbus signals`.

    `since` limits every escalation figure to escalations first raised on or
    after that day (00:00 UTC); `stuck_longest` is always the state at `as_of`.
    Open escalations are those not resolved on a case that is still open.
    """

    model_config = _MODEL
    since: date | None
    as_of: datetime
    escalations: int
    states: EscalationStates
    resolution: Resolution
    """Over the escalations a team resolved; a withdrawn one is not counted."""
    by_cause: list[CauseSignal]
    by_agency_pair: list[Tally]
    by_rule: list[Tally]
    open_by_level: list[LevelCount]
    stuck_longest: list[StuckCase]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The `fraction` quantile, interpolated between the closest ranks; None for no values.

    Rounded to the microsecond, the store's resolution, so that float noise
    from the interpolation never shows up in a report.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 6)


def _resolution(seconds: Sequence[float]) -> Resolution:
    return Resolution(
        resolved=len(seconds),
        median_seconds=percentile(seconds, 0.5),
        p90_seconds=percentile(seconds, 0.9),
    )


def _tallies(counts: dict[str | None, int]) -> list[Tally]:
    """Most frequent first; ties by key, the escalations that name none last."""
    order = sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, item[0] or ""))
    return [Tally(key=key, escalations=count) for key, count in order]


async def policy_signals(
    engine: AsyncEngine,
    since: date | None = None,
    *,
    now: datetime | None = None,
    stuck_limit: int = STUCK_LIMIT,
) -> PolicySignals:
    """Read the aggregate from the store; `now` (default: the wall clock) dates `stuck_longest`."""
    as_of = now or datetime.now(UTC)
    start = datetime.combine(since, time(), tzinfo=UTC) if since else None
    async with engine.connect() as connection:
        by_cause = await signals_sql.count_by(connection, "cause", start)
        by_pair = await signals_sql.count_by(connection, "agency_pair", start)
        by_rule = await signals_sql.count_by(connection, "rule_reference", start)
        resolved = await signals_sql.resolution_times(connection, start)
        open_levels = await signals_sql.open_by_level(connection, start)
        states = await signals_sql.count_by_state(connection, start)
        stuck = await signals_sql.stuck_longest(connection, stuck_limit)
    per_cause: dict[str | None, list[float]] = defaultdict(list)
    for cause, seconds in resolved:
        per_cause[cause].append(seconds)
    return PolicySignals(
        since=since,
        as_of=as_of,
        escalations=sum(by_cause.values()),
        states=EscalationStates(
            resolved=states.get("resolved", 0),
            withdrawn=states.get("withdrawn", 0),
            open=states.get("open", 0),
            unresolved_on_closed_cases=states.get("unresolved-on-closed-case", 0),
        ),
        resolution=_resolution([seconds for _, seconds in resolved]),
        by_cause=[
            CauseSignal(
                cause=tally.key,
                escalations=tally.escalations,
                resolution=_resolution(per_cause[tally.key]),
            )
            for tally in _tallies(by_cause)
        ],
        by_agency_pair=_tallies(by_pair),
        by_rule=_tallies(by_rule),
        open_by_level=[LevelCount(level=level, open=n) for level, n in sorted(open_levels.items())],
        stuck_longest=[_stuck(case, as_of) for case in stuck],
    )


def _stuck(case: signals_sql.StuckRow, as_of: datetime) -> StuckCase:
    reasons = []
    if case.pending_handoff:
        late = case.handoff_deadline is not None and case.handoff_deadline < as_of
        reasons.append(
            f"handoff {case.pending_handoff} unanswered" + (", deadline passed" if late else "")
        )
    if case.open_escalations:
        several = f"{case.open_escalations} escalations" if case.open_escalations > 1 else ""
        reasons.append(
            f"{several or 'escalation'} ({case.escalation_cause or 'unknown cause'}) "
            f"unresolved at level {case.escalation_level}"
        )
    return StuckCase(
        case_id=case.case_id,
        category=case.category,
        holder=case.holder,
        stuck_since=case.stuck_since,
        stuck_seconds=max(0.0, (as_of - case.stuck_since).total_seconds()),
        pending_handoff=case.pending_handoff,
        handoff_deadline=case.handoff_deadline,
        open_escalations=case.open_escalations,
        escalation_level=case.escalation_level,
        escalation_cause=case.escalation_cause,
        why="; ".join(reasons),
    )
