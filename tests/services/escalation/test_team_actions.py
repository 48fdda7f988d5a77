"""A team's acknowledgement and resolution from the console, on the real broker.

The console sends as the bus operator's `ketenbus-console` system with the team
in `data.team`; the escalation service and the tracker take it as the act of
that team's agency, under the agency's own rules (the alerted team or one above).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from contracts.envelope import source_urn
from contracts.events import (
    EscalationAcknowledged,
    EscalationAcknowledgement,
    EscalationRaised,
    TeamRef,
)
from contracts.handoff import OPERATOR, actor_of, console_source
from contracts.registry import AgencyRegistry
from services.casefile.queries import CaseView, case_view
from services.console import _team_actions as team_actions
from services.runtime.config.settings import Settings
from services.runtime.store.tables import escalation_seen_events, escalation_timers, escalations
from services.tracker.app import create_tracker
from tests._testutil import hardship
from tests.services.escalation.conftest import Running
from tests.services.escalation.script import Case, quick_path

FOUR_HOURS = timedelta(hours=4)
LEVEL_1 = TeamRef(agency="gm0363", team="schuldhulp-teamleiding")


def _ack(registry: AgencyRegistry, source: str, team: TeamRef) -> EscalationAcknowledged:
    data = EscalationAcknowledgement(escalation_id=uuid.uuid4(), level=1, team=team)
    return EscalationAcknowledged.new(source=source, case_id=uuid.uuid4(), data=data)


def test_a_console_acknowledgement_is_the_act_of_the_teams_agency(
    escalation_registry: AgencyRegistry,
) -> None:
    event = _ack(escalation_registry, console_source(escalation_registry), LEVEL_1)

    assert "gm0363" == actor_of(event, escalation_registry)
    assert event.source.endswith(":systeem:ketenbus-console")


def test_only_the_console_system_of_the_operator_speaks_for_a_team(
    escalation_registry: AgencyRegistry,
) -> None:
    """The escalation service's own system, and an agency's, keep their emitter."""
    operator = escalation_registry.operator.oin
    own = _ack(escalation_registry, source_urn(operator, "ketenbus-escalation"), LEVEL_1)
    cjib = escalation_registry.agency("cjib")
    assert cjib is not None
    agency = _ack(escalation_registry, source_urn(cjib.oin, "zaaksysteem"), LEVEL_1)

    assert OPERATOR == actor_of(own, escalation_registry)
    assert "cjib" == actor_of(agency, escalation_registry)


async def _raised(running: Running) -> tuple[Case, EscalationRaised, team_actions.Target]:
    """A case escalated at once at level 1 (hardship), with a four-hour acknowledge window."""
    case = running.bus.case()
    await case.open("belastingdienst", path=quick_path(FOUR_HOURS), flags=[hardship()])
    [raised] = await running.bus.raised(case.case_id)
    target = await team_actions.target_of(running.engine, raised.data.escalation_id)
    assert target is not None
    return case, raised, target


async def _send(running: Running, event: Any) -> None:
    producer = running.bus.producer
    await team_actions.publish(producer, event)
    await _applied(running, event.id)


@pytest.mark.broker
async def test_a_console_acknowledgement_stops_the_climb(running: Running) -> None:
    registry = running.bus.registry
    case, raised, target = await _raised(running)
    event = team_actions.acknowledgement(
        registry, target, LEVEL_1, note="We bellen vandaag", now=running.bus.clock.now()
    )

    await _send(running, event)

    row = await _row(running, raised.data.escalation_id)
    assert ("acknowledged", 1, 1) == (row.status, row.level, row.raises)
    assert [] == [t.kind for t in await _timers_of(running, target.escalation_id) if not t.fired_at]
    assert (target.correlation_id, raised.id) == (event.correlationid, event.causationid)
    assert (case.case_id, LEVEL_1) == (event.subject, event.data.team)
    await case.close()


@pytest.mark.broker
async def test_a_console_resolution_closes_it_and_the_tracker_attributes_it_to_the_team(
    running: Running, kafka: str, escalation_settings: Settings
) -> None:
    registry = running.bus.registry
    tracker = create_tracker(
        escalation_settings, registry, running.engine, kafka, group_id=f"tracker-{uuid.uuid4()}"
    )
    await tracker.start()
    try:
        case, raised, target = await _raised(running)
        event = team_actions.resolution(
            registry, target, LEVEL_1, outcome="maatwerk-granted", now=running.bus.clock.now()
        )
        await _send(running, event)
        view = await _tracked(running, case.case_id, event.id)
    finally:
        await tracker.stop()

    row = await _row(running, raised.data.escalation_id)
    assert ("resolved", "maatwerk-granted") == (row.status, row.outcome)
    assert [] == await _timers_of(running, target.escalation_id)
    [entry] = [e for e in view.timeline if e.event_id == event.id]
    assert ("escalation-resolved", True, "gm0363") == (entry.type, entry.applied, entry.agency)
    assert "escalation resolved: maatwerk-granted by gm0363/schuldhulp-teamleiding" == (
        entry.summary
    )
    [shown] = [e for e in view.escalations if e.escalation_id == target.escalation_id]
    assert ("resolved", "maatwerk-granted") == (shown.status, shown.outcome)
    await case.close()


@pytest.mark.broker
async def test_a_console_acknowledgement_for_a_team_not_on_the_path_is_ignored(
    running: Running,
) -> None:
    registry = running.bus.registry
    case, raised, target = await _raised(running)
    stranger = TeamRef(agency="cjib", team="teamleiding")
    event = team_actions.acknowledgement(registry, target, stranger, now=running.bus.clock.now())

    await _send(running, event)

    row = await _row(running, raised.data.escalation_id)
    assert ("raised", 1) == (row.status, row.level)
    await case.close()


async def _applied(running: Running, event_id: UUID) -> None:
    """Wait until the escalation service has applied the event (its id is seen)."""
    query = select(escalation_seen_events.c.event_id).where(
        escalation_seen_events.c.event_id == event_id
    )
    for _ in range(200):
        async with running.engine.connect() as connection:
            if await connection.scalar(query) is not None:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {event_id} not applied")


async def _row(running: Running, escalation_id: UUID) -> Any:
    async with running.engine.connect() as connection:
        query = select(escalations).where(escalations.c.escalation_id == escalation_id)
        return (await connection.execute(query)).one()


async def _timers_of(running: Running, ref: UUID) -> list[Any]:
    async with running.engine.connect() as connection:
        query = select(escalation_timers).where(escalation_timers.c.ref == ref)
        return list((await connection.execute(query)).all())


async def _tracked(running: Running, case_id: UUID, event_id: UUID) -> CaseView:
    for _ in range(100):
        view = await case_view(running.engine, case_id)
        if view is not None and any(entry.event_id == event_id for entry in view.timeline):
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"the tracker did not record event {event_id} of case {case_id}")
