"""What each trigger on the case log should have caused, and how long it took.

A first raise is measured from its trigger moment: the handoff's deadline,
the flag's event, the request, the ping-pong limit's rejection, or the end of
the idle limit. Every later raise of the same escalation is measured from the
acknowledge_by of the raise before it (the next level, or the top again).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from contracts.events import EscalationRaised
from services.simulation.evidence import CaseHistory, Stall


def trigger_moment(case: CaseHistory, raised: EscalationRaised) -> datetime | None:
    """When the first raise of an escalation became due, by its trigger."""
    data, at = raised.data, raised.time
    if data.trigger == "handoff-expired":
        due = [s.deadline for s in case.stalls if s.deadline <= at and _pair(s, raised)]
    elif data.trigger == "hardship":
        due = [t for t, _ in case.flags if t <= at]
    elif data.trigger == "manual":
        due = [t for t in case.requests if t <= at]
    elif data.trigger == "ping-pong":
        due = [t for t in case.rejections if t <= at]
    else:
        limit = case.idle_limit.get(case.category)
        due = [t + limit for t in case.activity if limit is not None and t + limit <= at]
    return max(due, default=None)


def _pair(stall: Stall, raised: EscalationRaised) -> bool:
    return raised.data.agency_pair in ([], [stall.from_agency, stall.to_agency])


def delays(case: CaseHistory) -> list[float]:
    """Simulated seconds from each raise's trigger moment to the raise."""
    found = []
    for raises in case.by_escalation().values():
        moment = trigger_moment(case, raises[0])
        if moment is not None:
            found.append((raises[0].time - moment).total_seconds())
        found += [
            (later.time - earlier.data.acknowledge_by).total_seconds()
            for earlier, later in itertools.pairwise(raises)
        ]
    return found


def unescalated_triggers(case: CaseHistory, now: datetime) -> int:
    """Flags (at their level), ping-pong and requests with no escalation at all."""
    first = case.first_raises()
    missing = 0
    due = [t for t, _ in case.flags if t + timedelta(seconds=1) <= now]
    if due:
        levels = {level for _, level in case.flags}
        missing += not any(r.data.trigger == "hardship" and r.data.level in levels for r in first)
    bounced = len(case.rejections) >= case.ping_pong_limit
    if bounced and case.rejections[case.ping_pong_limit - 1] + timedelta(seconds=1) <= now:
        missing += not any(r.data.trigger == "ping-pong" for r in first)
    if any(t + timedelta(seconds=1) <= now for t in case.requests):
        missing += not any(r.data.trigger == "manual" for r in first)
    return missing
