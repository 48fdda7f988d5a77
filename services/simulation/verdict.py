"""The verdict of a run, computed from the case log, the alerts and the tracker's store.

Nothing here reads the simulators' bookkeeping: a service that drops a
handoff, forgets a timer or records the wrong holder shows up as a non-zero
failure count, whatever the simulated agencies believed they did. The checks
re-derive what must have happened from the events themselves (the contract's
rules: one holder, warm handover, deadlines, acknowledge windows), so they do
not share code, and therefore bugs, with the tracker or the escalation service.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel

from contracts.envelope import CaseEvent
from contracts.events import EscalationRaised
from contracts.registry import AgencyRegistry
from services.simulation.evidence import TOLERANCE, CaseHistory, Stall, histories
from services.simulation.triggers import delays as delays_of
from services.simulation.triggers import unescalated_triggers

FAILED_CASES_SHOWN = 5


class Cause(BaseModel):
    cause: str
    count: int


class Verdict(BaseModel):
    """One figure a line in text; one JSON object with `--json`."""

    cases: int
    events: int
    escalations_raised: int
    cases_without_one_holder: int
    stalled_handoffs: int
    stalled_not_escalated_in_time: int
    unacknowledged_raises: int
    unacknowledged_not_climbed_in_time: int
    acknowledged_raised_again: int = 0
    """Raises after a level was acknowledged in time (an acknowledgement crossed the
    raise, or the service lost it). Not a failure figure: a crossing is no bug."""
    triggers_not_escalated: int
    escalation_delay_p50_s: float | None
    escalation_delay_p99_s: float | None
    top_causes: list[Cause]
    simulated_s: float = 0.0
    real_s: float = 0.0
    speed: float = 0.0
    finished: bool = True
    """False when the real-time limit ended the run before every story was told."""
    failed_cases: dict[str, list[UUID]] = {}
    """Per failure figure that is not zero, the first few cases it counts (to look up
    with `ketenbus case`)."""
    stories_given_up: int = 0
    """Cases whose holder closed them after waiting past the story's patience: the bus
    derailed them (the simulators' own count, so it is not a failure figure)."""

    FAILURES: ClassVar[tuple[str, ...]] = (
        "cases_without_one_holder",
        "stalled_not_escalated_in_time",
        "unacknowledged_not_climbed_in_time",
        "triggers_not_escalated",
    )

    @property
    def failures(self) -> int:
        return sum(getattr(self, name) for name in self.FAILURES)


def judge(
    registry: AgencyRegistry,
    case_log: Sequence[CaseEvent[Any]],
    alerts: Sequence[CaseEvent[Any]],
    store_holders: dict[UUID, str],
    now: datetime,
    *,
    ping_pong_limit: int = 3,
    top_causes: list[Cause] | None = None,
) -> Verdict:
    """The verdict at clock time `now` (checks whose deadline + 1 s is later wait)."""
    cases = histories(registry, case_log, alerts, ping_pong_limit=ping_pong_limit)
    raises = [r for case in cases.values() for r in case.raises]
    stalls = [
        (case, stall)
        for case in cases.values()
        for stall in case.stalls
        if stall.deadline + TOLERANCE <= now
    ]
    unacked, not_climbed, raised_again, not_climbed_cases = _climbing(cases.values(), now)
    wrong_holder = [
        case_id
        for case_id, case in cases.items()
        if _holder_wrong(case, store_holders.get(case_id))
    ]
    late = [case.case_id for case, stall in stalls if not _escalated_in_time(case, stall)]
    unescalated = [case.case_id for case in cases.values() if unescalated_triggers(case, now)]
    failed = {
        "cases_without_one_holder": wrong_holder,
        "stalled_not_escalated_in_time": late,
        "unacknowledged_not_climbed_in_time": not_climbed_cases,
        "triggers_not_escalated": unescalated,
    }
    delays = [d for case in cases.values() for d in delays_of(case)]
    return Verdict(
        cases=sum(case.opened for case in cases.values()),
        events=len(case_log),
        escalations_raised=len(raises),
        cases_without_one_holder=len(wrong_holder),
        stalled_handoffs=len(stalls),
        stalled_not_escalated_in_time=len(late),
        unacknowledged_raises=unacked,
        unacknowledged_not_climbed_in_time=not_climbed,
        acknowledged_raised_again=raised_again,
        triggers_not_escalated=sum(unescalated_triggers(case, now) for case in cases.values()),
        escalation_delay_p50_s=percentile(delays, 50),
        escalation_delay_p99_s=percentile(delays, 99),
        top_causes=top_causes if top_causes is not None else _count_causes(raises),
        failed_cases={name: ids[:FAILED_CASES_SHOWN] for name, ids in failed.items() if ids},
    )


def _holder_wrong(case: CaseHistory, stored: str | None) -> bool:
    """A case opened on the bus must have exactly one holder: the one the log implies."""
    if not case.opened:
        return False
    return case.holder is None or stored != case.holder


def _escalated_in_time(case: CaseHistory, stall: Stall) -> bool:
    first = case.first_raise_for(stall)
    return first is not None and first.time <= stall.deadline + TOLERANCE


def _climbing(cases: Any, now: datetime) -> tuple[int, int, int, list[UUID]]:
    """Raises left unacknowledged past their window, those not followed in time, and
    those followed although acknowledged in time; the cases of those not followed."""
    unacked = not_climbed = raised_again = 0
    not_climbed_cases: list[UUID] = []
    for case in cases:
        for raises in case.by_escalation().values():
            for index, raised in enumerate(raises):
                deadline = raised.data.acknowledge_by
                if case.answered_by(raised, deadline):
                    raised_again += index + 1 < len(raises)
                    continue
                if deadline + TOLERANCE > now or not case.open_at(deadline):
                    continue
                unacked += 1
                following = raises[index + 1] if index + 1 < len(raises) else None
                if following is None or following.time > deadline + TOLERANCE:
                    not_climbed += 1
                    not_climbed_cases.append(case.case_id)
    return unacked, not_climbed, raised_again, not_climbed_cases


def _count_causes(raises: list[EscalationRaised]) -> list[Cause]:
    """Without a signals module: the triggers of the escalations, most frequent first."""
    first = [r for r in raises if r.data.skipped_level is None]
    counted = Counter(r.data.trigger for r in first)
    return [Cause(cause=cause, count=count) for cause, count in counted.most_common(3)]


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile, rounded to the millisecond; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def render(verdict: Verdict) -> str:
    """The text form: one figure a line, failure counts first after the totals."""

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    causes = ", ".join(f"{c.cause} {c.count}" for c in verdict.top_causes) or "-"
    lines = [
        ("cases", str(verdict.cases)),
        ("events on the case log", str(verdict.events)),
        ("escalations raised", str(verdict.escalations_raised)),
        ("cases without exactly one holder", str(verdict.cases_without_one_holder)),
        (
            "stalled handoffs not escalated by deadline + 1 s",
            f"{verdict.stalled_not_escalated_in_time} (of {verdict.stalled_handoffs})",
        ),
        (
            "unacknowledged escalations not at the next level by acknowledge_by + 1 s",
            f"{verdict.unacknowledged_not_climbed_in_time} (of {verdict.unacknowledged_raises})",
        ),
        ("flags, ping-pong and requests never escalated", str(verdict.triggers_not_escalated)),
        ("acknowledged in time, raised again anyway", str(verdict.acknowledged_raised_again)),
        ("escalation delay p50", seconds(verdict.escalation_delay_p50_s)),
        ("escalation delay p99", seconds(verdict.escalation_delay_p99_s)),
        ("top signal causes", causes),
        ("stories given up (derailed, closed by their holder)", str(verdict.stories_given_up)),
        ("simulated time", f"{verdict.simulated_s:.0f} s at speed {verdict.speed:g}"),
        ("real time", f"{verdict.real_s:.1f} s" + ("" if verdict.finished else " (time limit)")),
    ]
    lines += [
        (f"cases to look at ({name.replace('_', ' ')})", " ".join(str(i) for i in ids))
        for name, ids in verdict.failed_cases.items()
    ]
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in lines)
