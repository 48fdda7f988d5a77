"""Policy signals on a known set of escalations, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import CaseEvent
from contracts.events import EscalationTrigger
from contracts.registry import AgencyRegistry
from services.casefile.signals import (
    CauseSignal,
    EscalationStates,
    LevelCount,
    Resolution,
    Tally,
    percentile,
    policy_signals,
)
from services.tracker.ledger import apply_batch
from tests._testutil import START, EventFactory

HOUR = 3600.0


def _day(day: int, hour: int = 9) -> datetime:
    """A moment in March 2025: `_day(4)` is 4 March, 09:00 UTC."""
    return START.replace(day=day, hour=hour)


def _escalation(
    make: EventFactory,
    raised: datetime,
    trigger: EscalationTrigger,
    *,
    pair: tuple[str, str] | None = None,
    rule: str | None = None,
    resolved_after: float | None = None,
    levels: Sequence[int] = (2,),
) -> list[CaseEvent[Any]]:
    """A case of its own with one escalation, raised at each of `levels` a minute apart."""
    case_id, escalation_id = uuid.uuid4(), uuid.uuid4()
    events: list[CaseEvent[Any]] = [make.at(raised - timedelta(days=1)).opened(case_id)]
    make.at(raised)
    events += [
        make.escalation_raised(
            case_id, escalation_id, level, trigger=trigger, rule_reference=rule, agency_pair=pair
        )
        for level in levels
    ]
    if resolved_after is not None:
        resolve_at = raised + timedelta(hours=resolved_after)
        events.append(make.at(resolve_at).escalation_resolved(case_id, escalation_id))
    return events


def _known_set(make: EventFactory) -> list[CaseEvent[Any]]:
    """Five escalations, one raised at two levels, plus one refused raise (a closed case)."""
    closed = uuid.uuid4()
    return [
        *_escalation(make, _day(4), "ping-pong", pair=("uwv", "svb"), rule="Awir art. 26",
                     resolved_after=1),
        *_escalation(make, _day(5), "ping-pong", pair=("uwv", "svb"), rule="Awir art. 26",
                     resolved_after=3, levels=(2, 3)),
        *_escalation(make, _day(5, 12), "handoff-expired", pair=("uwv", "cak"), resolved_after=2),
        *_escalation(make, _day(6), "hardship", rule="Pw art. 18", levels=(1, 2)),
        *_escalation(make, _day(7), "ping-pong", pair=("svb", "uwv"), resolved_after=10),
        make.at(_day(8)).opened(closed),
        make.closed(closed),
        make.escalation_raised(closed, trigger="idle"),
    ]  # fmt: skip


async def test_escalations_are_counted_once_by_cause_agency_pair_and_rule(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    await apply_batch(store, registry, _known_set(make))

    signals = await policy_signals(store)

    assert 5 == signals.escalations
    assert [("ping-pong", 3), ("handoff-expired", 1), ("hardship", 1)] == [
        (cause.cause, cause.escalations) for cause in signals.by_cause
    ]
    assert [
        Tally(key="uwv>svb", escalations=2),
        Tally(key="svb>uwv", escalations=1),
        Tally(key="uwv>cak", escalations=1),
        Tally(key=None, escalations=1),
    ] == signals.by_agency_pair
    assert [
        Tally(key="Awir art. 26", escalations=2),
        Tally(key=None, escalations=2),
        Tally(key="Pw art. 18", escalations=1),
    ] == signals.by_rule


async def test_median_and_p90_time_to_resolution_overall_and_per_cause(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    await apply_batch(store, registry, _known_set(make))

    signals = await policy_signals(store)

    # Resolved after 1, 2, 3 and 10 hours: median 2.5 h; p90 interpolates 3 h -> 10 h: 7.9 h.
    assert Resolution(resolved=4, median_seconds=9_000.0, p90_seconds=28_440.0) == (
        signals.resolution
    )
    assert [
        CauseSignal(
            cause="ping-pong",
            escalations=3,
            resolution=Resolution(resolved=3, median_seconds=10_800.0, p90_seconds=30_960.0),
        ),
        CauseSignal(
            cause="handoff-expired",
            escalations=1,
            resolution=Resolution(resolved=1, median_seconds=2 * HOUR, p90_seconds=2 * HOUR),
        ),
        CauseSignal(
            cause="hardship",
            escalations=1,
            resolution=Resolution(resolved=0, median_seconds=None, p90_seconds=None),
        ),
    ] == signals.by_cause


async def test_open_escalations_are_counted_at_the_highest_level_they_reached(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    await apply_batch(store, registry, _known_set(make))

    signals = await policy_signals(store)

    assert [LevelCount(level=2, open=1)] == signals.open_by_level


async def test_since_counts_only_escalations_first_raised_on_or_after_that_day(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    await apply_batch(store, registry, _known_set(make))

    signals = await policy_signals(store, date(2025, 3, 5))

    assert (date(2025, 3, 5), 4) == (signals.since, signals.escalations)
    assert [
        ("ping-pong", 2, 6.5 * HOUR),
        ("handoff-expired", 1, 2 * HOUR),
        ("hardship", 1, None),
    ] == [
        (cause.cause, cause.escalations, cause.resolution.median_seconds)
        for cause in signals.by_cause
    ]
    assert [
        Tally(key=None, escalations=2),
        Tally(key="Awir art. 26", escalations=1),
        Tally(key="Pw art. 18", escalations=1),
    ] == signals.by_rule


async def test_every_escalation_is_resolved_withdrawn_open_or_left_on_a_closed_case(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    withdrawn_case, closed_case = uuid.uuid4(), uuid.uuid4()
    withdrawn, left = uuid.uuid4(), uuid.uuid4()
    await apply_batch(
        store,
        registry,
        [
            *_known_set(make),
            make.at(_day(9)).opened(withdrawn_case),
            make.escalation_raised(withdrawn_case, withdrawn, trigger="handoff-expired"),
            # The escalation service withdraws a raise whose handoff was answered in time.
            make.escalation_resolved(withdrawn_case, withdrawn, "no-action-needed", by="ketenbus"),
            make.opened(closed_case),
            make.escalation_raised(closed_case, left, trigger="idle"),
            make.closed(closed_case),
        ],
    )

    signals = await policy_signals(store)

    assert (
        EscalationStates(resolved=4, withdrawn=1, open=1, unresolved_on_closed_cases=1)
        == signals.states
    )
    assert 7 == signals.escalations == sum(signals.states.model_dump().values())
    # Nobody had to resolve the withdrawn one: it is no resolution time.
    assert 4 == signals.resolution.resolved


async def test_since_after_every_escalation_gives_empty_counts(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    await apply_batch(store, registry, _known_set(make))

    signals = await policy_signals(store, date(2025, 4, 1))

    assert (0, [], [], [], []) == (
        signals.escalations,
        signals.by_cause,
        signals.by_agency_pair,
        signals.by_rule,
        signals.open_by_level,
    )
    assert Resolution(resolved=0, median_seconds=None, p90_seconds=None) == signals.resolution


async def test_the_cases_stuck_longest_come_oldest_first_with_why(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    waiting, escalated, both, resolved, closed = (uuid.uuid4() for _ in range(5))
    handoff, late_handoff = uuid.uuid4(), uuid.uuid4()
    climbing = uuid.uuid4()
    events = [
        *(make.at(_day(1)).opened(case_id) for case_id in (waiting, escalated, both, resolved)),
        make.at(_day(1)).opened(closed),
        make.at(_day(3)).requested(waiting, handoff, "uwv", "svb"),
        make.at(_day(2)).escalation_raised(escalated, level=1, trigger="idle"),
        make.at(_day(4)).escalation_raised(both, climbing, level=1, trigger="ping-pong"),
        make.at(_day(5)).escalation_raised(both, climbing, level=2, trigger="ping-pong"),
        make.at(_day(6)).requested(both, late_handoff, "uwv", "cak"),
        *_resolved_escalation(make, resolved),
        make.at(_day(1, 10)).escalation_raised(closed, trigger="idle"),
        make.closed(closed),
    ]
    await apply_batch(store, registry, events)
    now = _day(10)

    signals = await policy_signals(store, now=now)
    top_two = await policy_signals(store, now=now, stuck_limit=2)

    assert [escalated, waiting, both] == [case.case_id for case in signals.stuck_longest]
    assert [escalated, waiting] == [case.case_id for case in top_two.stuck_longest]
    assert [
        (8 * 24 * HOUR, "escalation (idle) unresolved at level 1"),
        (7 * 24 * HOUR, "handoff uwv>svb unanswered, deadline passed"),
        (
            6 * 24 * HOUR,
            "handoff uwv>cak unanswered, deadline passed; "
            "escalation (ping-pong) unresolved at level 2",
        ),
    ] == [(case.stuck_seconds, case.why) for case in signals.stuck_longest]
    assert ("uwv>cak", 1, 2, "ping-pong") == (
        signals.stuck_longest[2].pending_handoff,
        signals.stuck_longest[2].open_escalations,
        signals.stuck_longest[2].escalation_level,
        signals.stuck_longest[2].escalation_cause,
    )


def _resolved_escalation(make: EventFactory, case_id: uuid.UUID) -> list[CaseEvent[Any]]:
    escalation_id = uuid.uuid4()
    return [
        make.at(_day(1, 11)).escalation_raised(case_id, escalation_id, trigger="manual"),
        make.escalation_resolved(case_id, escalation_id),
    ]


async def test_an_empty_store_has_no_signals(store: AsyncEngine) -> None:
    signals = await policy_signals(store)

    assert (0, [], [], []) == (
        signals.escalations,
        signals.by_cause,
        signals.open_by_level,
        signals.stuck_longest,
    )


@pytest.mark.parametrize(
    ("expected", "values", "fraction"),
    [
        (None, [], 0.5),
        (5.0, [5.0], 0.9),
        (3.0, [10.0, 1.0, 3.0, 2.0, 4.0], 0.5),
        (7.6, [10.0, 1.0, 3.0, 2.0, 4.0], 0.9),
        (2.5, [1.0, 2.0, 3.0, 4.0], 0.5),
    ],
)
def test_percentile_interpolates_between_the_closest_ranks(
    expected: float | None, values: list[float], fraction: float
) -> None:
    assert expected == percentile(values, fraction)
