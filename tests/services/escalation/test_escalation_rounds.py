"""A timer round on SQLite and PostgreSQL records what it worked out before producing only
when the case is as it was then; a case changed meanwhile gets the rules replayed on it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.handoff import CaseState
from contracts.registry import AgencyRegistry
from services.escalation import store, timers
from services.escalation.levels import Context
from services.escalation.model import CaseFile, Timer
from services.escalation.round import Rounds
from services.escalation.workspace import Workspace
from services.runtime.kafka.clients import Outgoing
from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import escalations
from tests._testutil import EngineMaker

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
INSTANCE = "test"


async def _idle_case(engine: AsyncEngine, registry: AgencyRegistry) -> Timer:
    """A `schulden` case whose idle limit runs out now, and its idle timer."""
    category = registry.category("schulden")
    assert category is not None
    assert category.idle_limit is not None
    case_id = uuid.uuid4()
    last = NOW - category.idle_limit
    ws = Workspace({}, {})
    ws.touch(CaseFile(CaseState(case_id, "schulden", "uwv", "open", last, last), ["uwv"], case_id))
    timer = Timer.new("idle", case_id, case_id, NOW)
    ws.schedule(timer)
    async with write_transaction(engine) as connection:
        await store.save(connection, ws)
    return timer


async def _agency_event_meanwhile(engine: AsyncEngine, case_id: UUID) -> None:
    """What the case-log consumer records for an agency's event: the case is not idle."""
    async with write_transaction(engine) as connection:
        ws = await store.load(connection, [case_id], lock=True)
        file = ws.files[case_id]
        file.state = replace(file.state, last_event_at=NOW - timedelta(minutes=5))
        ws.touch(file)
        await store.save(connection, ws)


async def _raised(engine: AsyncEngine, case_id: UUID) -> list[str]:
    async with engine.connect() as connection:
        query = select(escalations.c.trigger).where(escalations.c.case_id == case_id)
        return list(await connection.scalars(query))


async def _round(
    engine: AsyncEngine, registry: AgencyRegistry, timer: Timer, *, meanwhile: bool
) -> list[Outgoing]:
    produced: list[Outgoing] = []

    async def publish(messages: Sequence[Outgoing]) -> None:
        produced.extend(messages)

    rounds = Rounds(engine, publish, INSTANCE)
    ctx = Context(registry, "urn:nld:oin:00000099000000000001:systeem:test", NOW, 3, None)
    wall = datetime.now(UTC)
    claim = await timers.claim(
        engine, INSTANCE, now=NOW, wall_now=wall, lease_until=wall + timedelta(minutes=1), limit=9
    )
    assert [timer.id] == [t.id for t in claim.timers]
    plan = await rounds._plan(ctx, claim.timers)
    if meanwhile:
        await _agency_event_meanwhile(engine, timer.case_id)
    await rounds._produce(ctx, plan.planned, plan.ws.files)
    published = {i for item in plan.planned for i in item.event_ids}
    await rounds._record(ctx, claim.timers, published, plan)
    return produced


async def test_a_round_on_an_unchanged_case_records_the_escalation_it_produced(
    engines: EngineMaker, registry: AgencyRegistry
) -> None:
    engine = engines()
    timer = await _idle_case(engine, registry)

    produced = await _round(engine, registry, timer, meanwhile=False)

    assert produced
    assert ["idle"] == await _raised(engine, timer.case_id)


async def test_a_round_on_a_case_changed_meanwhile_records_what_the_rules_say_now(
    engines: EngineMaker, registry: AgencyRegistry
) -> None:
    """The raise went out, but the case had an event before the round recorded it: the
    replay finds the idle timer stale and records no escalation, as the consumer's
    state says."""
    engine = engines()
    timer = await _idle_case(engine, registry)

    produced = await _round(engine, registry, timer, meanwhile=True)

    assert produced
    assert [] == await _raised(engine, timer.case_id)
