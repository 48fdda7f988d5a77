"""Timeline facts: the rule reference and agency pair that the policy signals group by."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.case import CaseFlag
from contracts.registry import AgencyRegistry
from services.casefile.timeline import facts_of, team_of_raise
from services.runtime.store.tables import case_timeline
from services.tracker.ledger import apply_batch
from tests._testutil import PERSONAL_NAME, EventFactory


async def _rows(engine: AsyncEngine, case_id: uuid.UUID) -> list[dict[str, Any]]:
    query = (
        select(case_timeline).where(case_timeline.c.case_id == case_id).order_by(case_timeline.c.id)
    )
    async with engine.connect() as connection:
        return [dict(row._mapping) for row in await connection.execute(query)]


async def test_timeline_rows_carry_the_rule_reference_and_agency_pair_an_event_gives(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id, escalation_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [
        make.opened(case_id, by="uwv"),
        make.requested(case_id, handoff_id, "uwv", "svb"),
        make.rejected(case_id, handoff_id, "uwv", "svb"),
        make.escalation_requested(case_id, by="uwv", rule_reference="Pw art. 18"),
        make.escalation_raised(
            case_id, escalation_id, rule_reference="Awir art. 26", agency_pair=("uwv", "svb")
        ),
        make.escalation_raised(case_id, trigger="idle"),
        make.escalation_acknowledged(case_id, escalation_id),
        make.escalation_resolved(case_id, escalation_id),
    ]

    await apply_batch(store, registry, events)

    assert [
        ("case-opened", None, None),
        ("handoff-requested", None, "uwv>svb"),
        ("handoff-rejected", "Awir art. 26", "uwv>svb"),
        ("escalation-requested", "Pw art. 18", None),
        ("escalation-raised", "Awir art. 26", "uwv>svb"),
        ("escalation-raised", None, None),
        ("escalation-acknowledged", None, None),
        ("escalation-resolved", None, None),
    ] == [
        (row["event_type"], row["rule_reference"], row["agency_pair"])
        for row in await _rows(store, case_id)
    ]


async def test_accepted_and_expired_handoffs_carry_their_agency_pair(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [
        make.opened(case_id, by="uwv"),
        make.requested(case_id, first, "uwv", "cak"),
        make.expired(case_id, first, "uwv", "cak"),
        make.requested(case_id, second, "uwv", "svb"),
        make.accepted(case_id, second, "uwv", "svb"),
    ]

    await apply_batch(store, registry, events)

    assert [None, "uwv>cak", "uwv>cak", "uwv>svb", "uwv>svb"] == [
        row["agency_pair"] for row in await _rows(store, case_id)
    ]


async def test_no_free_text_of_an_escalation_reaches_the_timeline(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, escalation_id = uuid.uuid4(), uuid.uuid4()
    events = [
        make.opened(case_id, by="uwv"),
        make.escalation_requested(case_id, by="uwv"),
        make.escalation_raised(case_id, escalation_id, agency_pair=("uwv", "svb")),
        make.escalation_resolved(case_id, escalation_id, "handoff-forced", handoff_to="svb"),
    ]

    await apply_batch(store, registry, events)

    assert PERSONAL_NAME not in repr(await _rows(store, case_id))


def test_a_hardship_raise_without_a_rule_reference_takes_the_flags(make: EventFactory) -> None:
    flag = CaseFlag(kind="hardship", raised_by="uwv", note="ziek", rule_reference="Pw art. 18")
    raised = make.escalation_raised(uuid.uuid4(), trigger="hardship", flag=flag)

    assert "Pw art. 18" == facts_of(raised).rule_reference


def test_the_alerted_team_is_read_back_from_a_raise_summary_only(make: EventFactory) -> None:
    case_id, escalation_id = uuid.uuid4(), uuid.uuid4()
    raised = facts_of(make.escalation_raised(case_id, escalation_id, level=3))
    acknowledged = facts_of(make.escalation_acknowledged(case_id, escalation_id))

    assert "gm0363/regionaal-escalatieteam" == team_of_raise(raised.summary)
    assert None is team_of_raise(acknowledged.summary)


def test_a_deadline_is_summarised_in_utc_to_the_minute_whatever_offset_it_was_sent_with(
    make: EventFactory,
) -> None:
    amsterdam = timezone(timedelta(hours=1))
    sent = datetime(2026, 12, 7, 14, 5, 59, 123456, tzinfo=amsterdam)
    in_utc = datetime(2026, 12, 7, 13, 5, 59, tzinfo=UTC)
    requested = make.requested(uuid.uuid4(), uuid.uuid4(), "uwv", "svb", deadline=sent)
    same = make.requested(uuid.uuid4(), uuid.uuid4(), "uwv", "svb", deadline=in_utc)

    expected = "handoff uwv -> svb requested, deadline 2026-12-07 13:05Z"
    assert (expected, expected) == (facts_of(requested).summary, facts_of(same).summary)
