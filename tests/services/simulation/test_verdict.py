"""The verdict's checks, on hand-made case logs: each failure is counted, a clean log is zero."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from contracts.envelope import CaseEvent
from contracts.registry import AgencyRegistry
from services.simulation.verdict import Verdict, judge, percentile, render
from tests.services.simulation.events import Case, at


def _judge(
    registry: AgencyRegistry,
    case_log: list[CaseEvent[Any]],
    holders: dict[Any, str],
    now: float,
    alerts: list[CaseEvent[Any]] | None = None,
) -> Verdict:
    return judge(registry, case_log, alerts or [], holders, at(now))


def _stalled_then_climbed(case: Case, *, late_by: float = 0.4) -> list[CaseEvent[Any]]:
    """Stalled at 100, expired and raised at level 1, climbed at 400, acked, forced."""
    return [
        case.opened(0),
        case.requested(10, deadline=100),
        case.expired(100 + late_by, deadline=100),
        case.raised(100 + late_by, acknowledge_by=400),
        case.raised(400.3, acknowledge_by=700, level=2, skipped=1),
        case.acknowledged(450, level=2),
        case.forced(500),
    ]


def test_a_stall_escalated_in_time_and_climbed_in_time_is_clean(registry: AgencyRegistry) -> None:
    case = Case(registry)
    verdict = _judge(registry, _stalled_then_climbed(case), {case.id: "svb"}, now=1000)
    assert verdict.failures == 0
    assert (verdict.cases, verdict.stalled_handoffs, verdict.unacknowledged_raises) == (1, 1, 1)
    assert verdict.escalations_raised == 2
    assert verdict.escalation_delay_p50_s == 0.3
    assert verdict.escalation_delay_p99_s == 0.4
    assert [c.cause for c in verdict.top_causes] == ["handoff-expired"]


def test_a_stall_escalated_more_than_a_second_late_is_counted(registry: AgencyRegistry) -> None:
    case = Case(registry)
    events = _stalled_then_climbed(case, late_by=1.5)
    verdict = _judge(registry, events, {case.id: "svb"}, now=1000)
    assert verdict.stalled_not_escalated_in_time == 1
    assert verdict.failures == 1


def test_a_stall_never_escalated_is_counted_once_its_deadline_has_passed(
    registry: AgencyRegistry,
) -> None:
    case = Case(registry)
    events = [case.opened(0), case.requested(10, deadline=100)]
    assert _judge(registry, events, {case.id: "uwv"}, now=100.5).failures == 0
    verdict = _judge(registry, events, {case.id: "uwv"}, now=101.5)
    assert verdict.stalled_not_escalated_in_time == 1


def test_an_answer_after_the_deadline_still_leaves_the_handoff_stalled(
    registry: AgencyRegistry,
) -> None:
    case = Case(registry)
    events = [case.opened(0), case.requested(10, deadline=100), case.accepted(150)]
    verdict = _judge(registry, events, {case.id: "svb"}, now=200)
    assert (verdict.stalled_handoffs, verdict.stalled_not_escalated_in_time) == (1, 1)
    assert verdict.cases_without_one_holder == 0


def test_an_answer_within_the_tolerance_ahead_of_any_expiry_ends_the_handoff(
    registry: AgencyRegistry,
) -> None:
    case = Case(registry)
    events = [case.opened(0), case.requested(10, deadline=100), case.accepted(100.6)]
    verdict = _judge(registry, events, {case.id: "svb"}, now=200)
    assert (0, 0) == (verdict.stalled_handoffs, verdict.failures)


def test_an_unacknowledged_level_that_does_not_climb_is_counted(registry: AgencyRegistry) -> None:
    case = Case(registry)
    events = [*_stalled_then_climbed(case)[:4]]  # raised at level 1, never acknowledged
    assert _judge(registry, events, {case.id: "uwv"}, now=400.9).failures == 0
    verdict = _judge(registry, events, {case.id: "uwv"}, now=402)
    assert verdict.unacknowledged_not_climbed_in_time == 1


def test_an_acknowledged_level_need_not_climb(registry: AgencyRegistry) -> None:
    case = Case(registry)
    events = [*_stalled_then_climbed(case)[:4], case.acknowledged(399)]
    verdict = _judge(registry, events, {case.id: "uwv"}, now=1000)
    assert (verdict.unacknowledged_raises, verdict.failures) == (0, 0)


def test_raises_read_from_the_alerts_topic_count_once(registry: AgencyRegistry) -> None:
    case = Case(registry)
    events = _stalled_then_climbed(case)
    raises = [e for e in events if e.name == "escalation-raised"]
    verdict = _judge(registry, events, {case.id: "svb"}, now=1000, alerts=raises)
    assert verdict.escalations_raised == 2


@pytest.mark.parametrize(
    ("stored", "expected"),
    [("svb", 0), ("uwv", 1), (None, 1)],
    ids=["right holder", "wrong holder", "case missing from the store"],
)
def test_the_holder_in_the_store_must_be_the_one_the_log_implies(
    registry: AgencyRegistry, stored: str | None, expected: int
) -> None:
    case = Case(registry)
    events = [case.opened(0), case.requested(10, deadline=100), case.accepted(20)]
    holders = {case.id: stored} if stored else {}
    assert _judge(registry, events, holders, now=200).cases_without_one_holder == expected


def test_a_forced_handoff_by_an_agency_off_the_path_moves_nothing(
    registry: AgencyRegistry,
) -> None:
    case = Case(registry)
    events = [case.opened(0), case.forced(10, to="svb", by="cjib")]
    assert _judge(registry, events, {case.id: "uwv"}, now=20).cases_without_one_holder == 0
    assert _judge(registry, events, {case.id: "svb"}, now=20).cases_without_one_holder == 1


def test_a_flag_with_no_escalation_at_its_level_is_counted(registry: AgencyRegistry) -> None:
    case = Case(registry)
    opened = case.opened(0, flag_level=2)
    assert _judge(registry, [opened], {case.id: "uwv"}, now=10).triggers_not_escalated == 1
    wrong_level = case.raised(0.2, acknowledge_by=100, level=1, trigger="hardship")
    verdict = _judge(registry, [opened, wrong_level], {case.id: "uwv"}, now=10)
    assert verdict.triggers_not_escalated == 1
    right_level = case.raised(0.2, acknowledge_by=100, level=2, trigger="hardship")
    verdict = _judge(registry, [opened, right_level], {case.id: "uwv"}, now=10)
    assert verdict.triggers_not_escalated == 0
    assert verdict.escalation_delay_p50_s == 0.2


def test_the_third_rejection_must_raise_ping_pong(registry: AgencyRegistry) -> None:
    events: list[CaseEvent[Any]] = []
    case = Case(registry)
    events.append(case.opened(0))
    for attempt in range(3):
        case.handoff = uuid.uuid4()
        events += [
            case.requested(10 + 10 * attempt, deadline=500),
            case.rejected(15 + 10 * attempt),
        ]
    assert _judge(registry, events, {case.id: "uwv"}, now=100).triggers_not_escalated == 1
    events.append(case.raised(35.5, acknowledge_by=300, trigger="ping-pong"))
    verdict = _judge(registry, events, {case.id: "uwv"}, now=100)
    assert (verdict.triggers_not_escalated, verdict.escalation_delay_p50_s) == (0, 0.5)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.0
    assert percentile([float(n) for n in range(1, 1001)], 99) == 990.0


def test_the_text_verdict_has_one_figure_a_line(registry: AgencyRegistry) -> None:
    case = Case(registry)
    text = render(_judge(registry, _stalled_then_climbed(case), {case.id: "svb"}, now=1000))
    lines = text.splitlines()
    assert any(line.startswith("cases without exactly one holder") for line in lines)
    assert any("stalled handoffs not escalated by deadline + 1 s" in line for line in lines)
    assert any(line.startswith("escalation delay p99") for line in lines)
    assert any(line.startswith("top signal causes") for line in lines)


def test_a_case_closed_before_the_deadline_expects_no_escalation(
    registry: AgencyRegistry,
) -> None:
    """The holder may close a case whose escalation nobody answers: it is withdrawn."""
    case = Case(registry)
    opened, requested = case.opened(0), case.requested(10, deadline=100)
    closed = case.closed(50)
    verdict = _judge(registry, [opened, requested, closed], {case.id: "uwv"}, now=1000)
    assert (verdict.stalled_handoffs, verdict.failures) == (0, 0)
    climbing = [*_stalled_then_climbed(case)[:4], case.closed(399)]
    verdict = _judge(registry, climbing, {case.id: "uwv"}, now=1000)
    assert (verdict.unacknowledged_raises, verdict.failures) == (0, 0)


def test_a_raise_after_an_acknowledgement_in_time_is_shown_but_is_no_failure(
    registry: AgencyRegistry,
) -> None:
    """The acknowledgement may cross the raise on the way (or the service lost it)."""
    case = Case(registry)
    events = [*_stalled_then_climbed(case)[:4], case.acknowledged(300)]
    events.append(case.raised(400.3, acknowledge_by=700, level=2, skipped=1))
    verdict = _judge(registry, events, {case.id: "uwv"}, now=1000)
    assert (verdict.acknowledged_raised_again, verdict.failures) == (1, 0)


def test_a_failure_names_the_cases_it_counts(registry: AgencyRegistry) -> None:
    case = Case(registry)
    events = [case.opened(0), case.requested(10, deadline=100)]

    verdict = _judge(registry, events, {case.id: "uwv"}, now=200)

    assert {"stalled_not_escalated_in_time": [case.id]} == verdict.failed_cases
    assert str(case.id) in render(verdict)
