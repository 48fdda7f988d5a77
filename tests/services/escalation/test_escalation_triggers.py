"""Each trigger, level climbing, acknowledge and resolve, and a refused request, end to end.

One escalation service per backend runs on the real broker for the whole
module; each test tells its own cases on `ketenbus.cases` (as the router
would write them) and reads what the service emits. Clock time runs 3600
times faster than real time: a 30-minute deadline passes in half a second.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from contracts import topics
from contracts.envelope import source_urn
from contracts.events import DeliveryFailed, HandoffExpired
from contracts.registry import AgencyRegistry
from services import audit
from services.casefile.queries import CaseView, case_view
from services.runtime.config.settings import Settings
from services.runtime.store.tables import escalation_seen_events, escalation_timers, escalations
from services.tracker.app import create_tracker
from tests._testutil import hardship
from tests.services.escalation.conftest import QUICK, Running
from tests.services.escalation.script import quick_path

pytestmark = pytest.mark.broker

HALF_HOUR = timedelta(minutes=30)


async def test_an_unanswered_handoff_expires_and_is_escalated_an_answered_one_not(
    running: Running,
) -> None:
    bus = running.bus
    stalled, answered = bus.case(), bus.case()
    for case in (stalled, answered):
        await case.open("belastingdienst")
    request = await stalled.request("belastingdienst", "gm0363", within=HALF_HOUR)
    answered_request = await answered.request("belastingdienst", "gm0363", within=timedelta(days=1))
    accepted = await answered.accept(answered_request)

    [expired] = await bus.events(topics.CASES, stalled.case_id, "handoff-expired")
    [raised] = await bus.raised(stalled.case_id)
    inbox_expiry = await bus.events(
        topics.inbox("belastingdienst"), stalled.case_id, "handoff-expired"
    )
    inbox_alert = await bus.events(topics.inbox("gm0363"), stalled.case_id, "escalation-raised")

    assert isinstance(expired, HandoffExpired)
    assert bus.is_operator(expired)
    assert expired.source.endswith(":systeem:ketenbus-escalation")
    assert (expired.data.handoff_id, expired.data.deadline) == (
        request.data.handoff_id,
        request.data.deadline,
    )
    assert expired.time >= request.data.deadline
    assert ("handoff-expired", 1) == (raised.data.trigger, raised.data.level)
    assert ["belastingdienst", "gm0363"] == raised.data.agency_pair
    assert ("gm0363", "schuldhulp-teamleiding") == (raised.data.team.agency, raised.data.team.team)
    assert raised.data.acknowledge_by == raised.time + timedelta(hours=8)
    assert raised.causationid == expired.id
    assert [expired.id] == [e.id for e in inbox_expiry]
    assert [raised.id] == [e.id for e in inbox_alert]
    await _applied(running, accepted.id)
    assert [] == await _timers_of(running, answered_request.data.handoff_id)  # cancelled
    for case in (stalled, answered):
        await case.close("belastingdienst" if case is stalled else "gm0363")


async def test_the_tracker_applies_the_expiry_and_shows_the_escalation_on_the_timeline(
    running: Running, kafka: str, escalation_settings: Settings
) -> None:
    """What the service emits as the bus operator, the tracker accepts (its own group)."""
    registry = running.bus.registry
    tracker = create_tracker(
        escalation_settings, registry, running.engine, kafka, group_id=f"tracker-{uuid.uuid4()}"
    )
    await tracker.start()
    try:
        case = running.bus.case()
        await case.open("belastingdienst")
        request = await case.request("belastingdienst", "gm0363", within=HALF_HOUR)
        [raised] = await running.bus.raised(case.case_id)
        view = await _tracked(running, case.case_id, entries=4)
    finally:
        await tracker.stop()

    assert [
        ("case-opened", True, "belastingdienst"),
        ("handoff-requested", True, "belastingdienst"),
        ("handoff-expired", True, "ketenbus"),
        ("escalation-raised", True, "ketenbus"),
    ] == [(entry.type, entry.applied, entry.agency) for entry in view.timeline]
    assert ("belastingdienst", None) == (view.holder, view.pending_handoff)
    shown = view.timeline[3]
    assert (raised.data.escalation_id, 1, "handoff-expired") == (
        shown.escalation_id,
        shown.escalation_level,
        shown.escalation_trigger,
    )
    assert request.data.handoff_id == view.timeline[2].handoff_id
    await case.close()


async def _tracked(running: Running, case_id: UUID, entries: int) -> CaseView:
    for _ in range(100):
        view = await case_view(running.engine, case_id)
        # Both parts, timeline and case row, must be there: `case_view` reads them in two
        # statements, so on PostgreSQL the row can lag the timeline by one commit.
        if view is not None and len(view.timeline) >= entries and view.pending_handoff is None:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"the tracker did not record {entries} events of case {case_id}")


async def test_a_case_idle_past_its_category_limit_is_escalated(running: Running) -> None:
    case = running.bus.case()
    opened = await case.open("uwv", category=QUICK)

    [raised] = await running.bus.raised(case.case_id)

    assert "idle" == raised.data.trigger
    assert raised.time >= opened.time + HALF_HOUR
    assert [] == raised.data.agency_pair
    await case.close("uwv")


async def test_the_third_rejection_is_escalated_as_ping_pong_with_its_rule(
    running: Running,
) -> None:
    bus = running.bus
    case = bus.case()
    await case.open("uwv")
    for n, to in enumerate(("svb", "gm0363", "cjib"), start=1):
        request = await case.request("uwv", to, within=timedelta(days=1))
        await case.reject(request, rule=f"Regel {n}")

    [raised] = await bus.raised(case.case_id)

    assert ("ping-pong", "Regel 3") == (raised.data.trigger, raised.data.rule_reference)
    assert ["uwv", "cjib"] == raised.data.agency_pair
    assert "rejected 3 times" in raised.data.cause
    await case.close("uwv")


async def test_a_hardship_flag_is_escalated_at_once_at_its_level_and_only_once(
    running: Running,
) -> None:
    bus = running.bus
    case = bus.case()
    opened = await case.open("belastingdienst", flags=[hardship(level=2)])
    [raised] = await bus.raised(case.case_id)
    update = await case.update("gm0363", [hardship(level=1)])  # while that one is open

    assert ("hardship", 2, "Wgs art. 3") == (
        raised.data.trigger,
        raised.data.level,
        raised.data.rule_reference,
    )
    assert ("gm0363", "regionaal-escalatieteam") == (raised.data.team.agency, raised.data.team.team)
    assert raised.data.flag is not None
    assert "hardship" == raised.data.flag.kind
    assert raised.causationid == opened.id
    await _applied(running, update.id)
    assert 1 == len(await bus.all_events(topics.ESCALATIONS, case.case_id, "escalation-raised"))
    await case.close()


async def test_an_alert_to_a_team_is_audited_with_the_flag_it_discloses(
    running: Running, escalation_registry: AgencyRegistry
) -> None:
    bus = running.bus
    case = bus.case()
    await case.open("belastingdienst", flags=[hardship(level=1)])
    [raised] = await bus.raised(case.case_id)
    category = escalation_registry.category("schulden")
    assert category is not None

    records = await audit.trace(running.engine, case.case_id)

    assert [("gm0363", "escalation-raised", ["flags"])] == [
        (r.receiver, r.event_type, r.fields) for r in records
    ]
    assert (raised.id, category.escalation_legal_basis) == (
        records[0].event_id,
        records[0].legal_basis,
    )
    assert (await audit.verify(running.engine)).intact
    await case.close()


async def test_a_past_holder_may_request_an_escalation_at_a_level(running: Running) -> None:
    bus = running.bus
    case = bus.case()
    await case.open("belastingdienst")
    await case.accept(await case.request("belastingdienst", "gm0363", within=timedelta(days=1)))
    asked = await case.ask_escalation("belastingdienst", level=3)

    [raised] = await bus.raised(case.case_id)

    assert ("manual", 3, "Wgs art. 4") == (
        raised.data.trigger,
        raised.data.level,
        raised.data.rule_reference,
    )
    assert ("minszw", "maatwerkloket") == (raised.data.team.agency, raised.data.team.team)
    assert raised.causationid == asked.id
    await case.close("gm0363")


async def test_a_request_by_an_agency_that_never_held_the_case_is_refused_not_raised(
    running: Running,
) -> None:
    bus = running.bus
    case = bus.case()
    await case.open("belastingdienst")
    asked = await case.ask_escalation("cjib")

    [dead] = await bus.records(topics.DLQ, case.case_id)
    [notice] = await bus.events(topics.inbox("cjib"), case.case_id, "delivery-failed")

    headers = {key: value.decode() for key, value in dead.headers}
    assert "escalation" == headers[topics.DLQ_REJECTED_BY]
    assert "not-a-holder" == headers[topics.DLQ_REASON_CODE]
    assert topics.CASES == headers[topics.DLQ_ORIGIN_TOPIC]
    assert "cjib" in headers[topics.DLQ_REASON]
    assert dead.value == asked.to_json()
    assert isinstance(notice, DeliveryFailed)
    assert notice.source == source_urn(bus.registry.operator.oin, "ketenbus-escalation")
    assert ("not-a-holder", str(asked.id)) == (
        notice.data.reason_code,
        notice.data.rejected_event_id,
    )
    assert [] == await bus.all_events(topics.ESCALATIONS, case.case_id, "escalation-raised")
    await case.close()


async def test_levels_climb_until_acknowledged_and_a_resolution_clears_the_timers(
    running: Running,
) -> None:
    """Two escalations side by side: one nobody acknowledges, one acknowledged at level 1."""
    bus = running.bus
    ignored, answered = bus.case(), bus.case()
    await ignored.open("belastingdienst", path=quick_path(HALF_HOUR), flags=[hardship()])
    await answered.open("belastingdienst", path=quick_path(timedelta(hours=4)))
    await answered.ask_escalation("belastingdienst")
    [first] = await bus.raised(answered.case_id)
    await answered.acknowledge(first, by="cjib")  # not the alerted team's agency: ignored
    acknowledged = await answered.acknowledge(first)

    raises = await bus.raised(ignored.case_id, count=4)
    await _applied(running, acknowledged.id)
    waiting = await _timers_of(running, first.data.escalation_id)

    assert [1, 2, 3, 3] == [r.data.level for r in raises[:4]]
    assert [None, 1, 2, 3] == [r.data.skipped_level for r in raises[:4]]
    assert len({r.data.escalation_id for r in raises}) == 1
    assert len({r.id for r in raises}) == len(raises)
    assert "level 1 (gm0363/schuldhulp-teamleiding) did not acknowledge within 30m" == (
        raises[1].data.skip_reason
    )
    assert "again every 30m" in (raises[3].data.skip_reason or "")
    for earlier, later in itertools.pairwise(raises[:4]):
        assert later.time >= earlier.data.acknowledge_by
        assert later.causationid == earlier.id
    assert ("minszw", "maatwerkloket") == (raises[3].data.team.agency, raises[3].data.team.team)
    more = await bus.raised(ignored.case_id, count=len(raises) + 1)
    assert len(more) > len(raises)  # the top never goes silent
    assert [] == [t for t in waiting if t.fired_at is None]  # nothing left to climb on
    row = await _wait_for_status(running, first.data.escalation_id, "acknowledged")
    assert (1, 1) == (row.level, row.raises)

    await answered.resolve(first, outcome="handoff-forced")
    row = await _wait_for_status(running, first.data.escalation_id, "resolved")

    assert "handoff-forced" == row.outcome
    assert row.acknowledged_at is not None
    assert row.resolved_at is not None
    assert [] == await _timers_of(running, first.data.escalation_id)  # every one cleared
    await ignored.close()
    await answered.close()


async def _applied(running: Running, event_id: UUID) -> None:
    """Wait until the service has applied the event (its id is among the seen ones)."""
    query = select(escalation_seen_events.c.event_id).where(
        escalation_seen_events.c.event_id == event_id
    )
    for _ in range(100):
        async with running.engine.connect() as connection:
            if await connection.scalar(query) is not None:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {event_id} not applied")


async def _timers_of(running: Running, ref: UUID) -> list[Any]:
    async with running.engine.connect() as connection:
        query = select(escalation_timers).where(escalation_timers.c.ref == ref)
        return list((await connection.execute(query)).all())


async def _wait_for_status(running: Running, escalation_id: object, status: str) -> Any:
    for _ in range(100):
        async with running.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(escalations).where(escalations.c.escalation_id == escalation_id)
                )
            ).first()
        if row is not None and row.status == status:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"escalation {escalation_id} did not become {status}")
