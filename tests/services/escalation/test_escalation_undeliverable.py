"""A handoff request that cannot reach its receiver is a stalled handoff at once: the gateway
gives its webhook delivery up and puts its notice on the case log, and the escalation service
expires and escalates the handoff then, not at its deadline, and once. Real broker, a real
HTTP receiver on loopback, the gateway's dispatcher and the tracker; SQLite and PostgreSQL.
The service's clock runs an hour a second (`conftest.SPEED`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.envelope import CaseEvent, source_urn
from contracts.events import DeliveryFailed, DeliveryFailure, HandoffRequested
from contracts.handoff import GATEWAY_SYSTEM
from contracts.reasons import WEBHOOK_UNDELIVERABLE
from services.casefile.queries import CaseView, case_view
from services.escalation.model import Timer, derived_id
from services.gateway import subscriptions
from services.gateway.dispatch import Dispatcher
from services.gateway.inbox import InboxIntake
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import make_broker
from services.runtime.process.clock import Clock
from services.runtime.store.tables import (
    escalation_seen_events,
    escalation_timers,
    webhook_deliveries,
)
from services.tracker.app import create_tracker
from tests._testutil import start_group_at_end
from tests._testutil.webhook_receiver import run_until, webhook_receiver
from tests.services.escalation.conftest import Running
from tests.services.escalation.script import Bus, quick_path

pytestmark = pytest.mark.broker

WINDOW = timedelta(hours=8)
"""A request's time to be answered: eight real seconds of the service's clock."""
PATH = quick_path(timedelta(days=30))
"""A case's own path whose first level has a month to acknowledge: nothing climbs."""
RECEIVER, SENDER = "gm0363", "belastingdienst"


def _notice(
    bus: Bus,
    about: CaseEvent[Any],
    *,
    topic: str,
    reason_code: str = WEBHOOK_UNDELIVERABLE,
    system: str = GATEWAY_SYSTEM,
) -> DeliveryFailed:
    """The notice the gateway puts on the case log when it gives `about` up (by default)."""
    return DeliveryFailed.new(
        source=source_urn(bus.registry.operator.oin, system),
        case_id=about.subject,
        correlationid=about.correlationid,
        causationid=about.id,
        data=DeliveryFailure(
            reason_code=reason_code,
            reason="the receiver's webhook did not take the event",
            rejected_event_id=str(about.id),
            topic=topic,
            partition=0,
            offset=0,
        ),
    )


async def _applied(engine: AsyncEngine, event_id: UUID) -> None:
    """Wait until the service has applied the event (its id is among the seen ones)."""
    query = select(escalation_seen_events.c.event_id).where(
        escalation_seen_events.c.event_id == event_id
    )
    for _ in range(200):  # 10 s at most
        async with engine.connect() as connection:
            if await connection.scalar(query) is not None:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {event_id} not applied")


async def _deadline_timers(engine: AsyncEngine, request: HandoffRequested) -> list[Any]:
    query = select(escalation_timers).where(
        escalation_timers.c.ref == request.data.handoff_id,
        escalation_timers.c.kind == "handoff-deadline",
    )
    async with engine.connect() as connection:
        return list((await connection.execute(query)).all())


async def _past(clock: Clock, moment: datetime) -> None:
    """Until the clock has passed `moment` (30 real seconds at most)."""
    for _ in range(600):
        if clock.now() > moment:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the clock did not reach {moment}")


async def _tracked(engine: AsyncEngine, case_id: UUID, entries: int) -> CaseView:
    for _ in range(100):  # 10 s at most
        view = await case_view(engine, case_id)
        if view is not None and len(view.timeline) >= entries and view.pending_handoff is None:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"the tracker did not record {entries} events of case {case_id}")


def _given_up(engine: AsyncEngine, event_id: UUID) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        query = select(webhook_deliveries.c.status).where(webhook_deliveries.c.event_id == event_id)
        async with engine.connect() as connection:
            return ["dead"] == list((await connection.execute(query)).scalars())

    return check


async def test_a_request_its_receivers_webhook_never_takes_is_escalated_at_once_and_once(
    running: Running, kafka: str, escalation_settings: Settings
) -> None:
    """A `handoff-requested` to gm0363, whose webhook answers 500 to everything, is given up
    by the gateway past its (tiny) horizon. Well before the deadline the handoff is expired
    on the case log and escalated on `ketenbus.escalations`, with the ids the deadline
    would have given them, and the tracker shows the gateway's notice on the timeline. The
    same notice again, another notice about the request, and the deadline itself raise
    nothing more."""
    bus = running.bus
    settings = escalation_settings.model_copy(
        update={
            "webhook_retry_base_s": 0.05,
            "webhook_timeout_s": 0.5,
            "webhook_horizon": timedelta(seconds=0.3),
        }
    )
    group = f"tracker-{uuid.uuid4()}"
    await start_group_at_end(kafka, group, [topics.CASES])
    tracker = create_tracker(settings, bus.registry, running.engine, kafka, group_id=group)
    broker = make_broker(settings, kafka, client_id="ketenbus-gateway-escalation-test")
    await tracker.start()
    await broker.start()
    try:
        async with httpx.AsyncClient() as client, webhook_receiver(500) as receiver:
            made = await subscriptions.subscribe(
                running.engine,
                bus.registry,
                client,
                agency=RECEIVER,
                callback_url=receiver.url,
                event_types=["handoff-requested"],
            )
            try:
                case = bus.case()
                await case.open(SENDER, path=PATH)
                request = await case.request(SENDER, RECEIVER, within=WINDOW)
                inbox_copy = SimpleNamespace(
                    topic=topics.inbox(RECEIVER), partition=0, offset=0, value=request.to_json()
                )
                await InboxIntake(running.engine).take([inbox_copy])
                dispatcher = Dispatcher(settings, bus.registry, running.engine, broker, client)
                await run_until(dispatcher, _given_up(running.engine, request.id))
                [expired] = await bus.events(topics.CASES, case.case_id, "handoff-expired")
                [raised] = await bus.raised(case.case_id)
                view = await _tracked(running.engine, case.case_id, entries=5)
            finally:
                async with running.engine.begin() as connection:
                    await subscriptions.end(connection, made.subscription_id, "test over")
    finally:
        await broker.stop()
        await tracker.stop()
    [notice] = await bus.events(topics.CASES, case.case_id, "delivery-failed")
    another = notice.model_copy(update={"id": uuid.uuid4()})
    await bus.send(notice)
    await bus.send(another)
    await _applied(running.engine, another.id)
    await _past(running.clock, request.data.deadline + timedelta(hours=2))
    [timer] = await _deadline_timers(running.engine, request)

    deadline_timer = Timer.new(
        "handoff-deadline", case.case_id, request.data.handoff_id, request.data.deadline
    )
    assert deadline_timer.id == timer.id
    assert timer.fired_at is not None
    assert derived_id(deadline_timer.id, "handoff-expired") == expired.id
    assert expired.time < request.time + WINDOW / 2
    assert (request.data.handoff_id, request.data.deadline) == (
        expired.data.handoff_id,
        expired.data.deadline,
    )
    assert ("handoff-expired", 1, [SENDER, RECEIVER], expired.id) == (
        raised.data.trigger,
        raised.data.level,
        raised.data.agency_pair,
        raised.causationid,
    )
    assert f"request not delivered to {RECEIVER}" in raised.data.cause
    assert (request.id, WEBHOOK_UNDELIVERABLE) == (
        notice.causationid,
        notice.data.reason_code,
    )
    assert [
        ("case-opened", True, SENDER),
        ("handoff-requested", True, SENDER),
        ("delivery-failed", True, "ketenbus"),
        ("handoff-expired", True, "ketenbus"),
        ("escalation-raised", True, "ketenbus"),
    ] == [(entry.type, entry.applied, entry.agency) for entry in view.timeline[:5]]
    assert "delivery failed: webhook-undeliverable" == view.timeline[2].summary
    assert (SENDER, None) == (view.holder, view.pending_handoff)
    assert [expired.id] == [
        e.id for e in await bus.all_events(topics.CASES, case.case_id, "handoff-expired")
    ]
    assert [raised.id] == [
        e.id for e in await bus.all_events(topics.ESCALATIONS, case.case_id, "escalation-raised")
    ]
    await case.close(SENDER)


async def test_a_gateway_notice_about_another_event_copy_reason_or_source_changes_nothing(
    running: Running,
) -> None:
    """Only the gateway's `webhook-undeliverable` about the pending handoff's own request,
    from the receiver's inbox, brings the deadline forward. One about the case-opened,
    about the sender's copy of the request, with another reason code, or from another bus
    system leaves the deadline timer due at the deadline and expires nothing; the right
    one, sent after them, expires the handoff well before its deadline."""
    bus = running.bus
    case = bus.case()
    opened = await case.open(SENDER, path=PATH)
    request = await case.request(SENDER, RECEIVER, within=WINDOW)
    at_receiver = topics.inbox(RECEIVER)
    wrong = [
        _notice(bus, opened, topic=at_receiver),
        _notice(bus, request, topic=topics.inbox(SENDER)),
        _notice(bus, request, topic=at_receiver, reason_code="processing-failed"),
        _notice(bus, request, topic=at_receiver, system="ketenbus-escalation"),
    ]
    for notice in wrong:
        await bus.send(notice)
    for notice in wrong:
        await _applied(running.engine, notice.id)
    [timer] = await _deadline_timers(running.engine, request)
    expired_by_then = await bus.all_events(topics.CASES, case.case_id, "handoff-expired")
    await bus.send(_notice(bus, request, topic=at_receiver))
    [expired] = await bus.events(topics.CASES, case.case_id, "handoff-expired")

    assert (request.data.deadline, None) == (timer.due_at, timer.fired_at)
    assert [] == expired_by_then
    assert request.id == expired.causationid
    assert expired.time < request.time + WINDOW / 2
    await case.close(SENDER)


async def test_a_gateway_notice_about_an_answered_or_an_earlier_request_raises_nothing(
    running: Running,
) -> None:
    """The request was accepted before the gateway's notice about it came; or it was
    rejected and a new request to the same receiver is pending. Neither case expires or
    raises anything, and the new request's deadline stays where it was."""
    bus = running.bus
    answered, asked_again = bus.case(), bus.case()
    for case in (answered, asked_again):
        await case.open(SENDER, path=PATH)
    accepted = await answered.request(SENDER, RECEIVER, within=WINDOW)
    await answered.accept(accepted)
    first = await asked_again.request(SENDER, RECEIVER, within=WINDOW)
    await asked_again.reject(first, "Wgs art. 4")
    second = await asked_again.request(SENDER, RECEIVER, within=WINDOW)
    late = [
        _notice(bus, accepted, topic=topics.inbox(RECEIVER)),
        _notice(bus, first, topic=topics.inbox(RECEIVER)),
    ]
    for notice in late:
        await bus.send(notice)
    for notice in late:
        await _applied(running.engine, notice.id)
    [timer] = await _deadline_timers(running.engine, second)

    assert (second.data.deadline, None) == (timer.due_at, timer.fired_at)
    assert [] == await _deadline_timers(running.engine, accepted)
    for case in (answered, asked_again):
        assert [] == await bus.all_events(topics.CASES, case.case_id, "handoff-expired")
        assert [] == await bus.all_events(topics.ESCALATIONS, case.case_id, "escalation-raised")
    await answered.close(RECEIVER)
    await asked_again.close(SENDER)
