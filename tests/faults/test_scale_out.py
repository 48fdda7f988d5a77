"""Two instances of every service on one PostgreSQL database and one broker: two routers,
two trackers, two escalation services (each pair in its consumer group) and two gateways,
with one of each killed with SIGKILL mid-stream and started again.

HOLDER emits over Kafka; RECEIVER answers over HTTP, each batch to the next gateway in turn
and to the other when one does not answer; HOLDER's inbox goes out as webhooks from both
gateways. One case in about ten is never answered: its handoff expires at a deadline
spread over the kill, so timers are claimed, held by the killed instance and fired by the
other.

Size: KETENBUS_FAULT_EVENTS events (default 1000; `make faults` runs 10000: 2,375
answered cases of four events and 250 unanswered ones of two), and the escalation
service's expiry and escalation of each unanswered case.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.parse import read_json
from contracts.registry import AgencyRegistry
from services.gateway import tokens
from services.gateway.dispatch import ROUND
from services.runtime.store.tables import (
    case_timeline,
    escalation_seen_events,
    escalation_timers,
    escalations,
    router_seen_events,
    webhook_deliveries,
)
from tests.faults.gateways import Poster, Receiver, receiving, until_answering
from tests.faults.harness import (
    HOLDER,
    RECEIVER,
    Bus,
    Emitted,
    Script,
    case_scripts,
    emit,
    fault_events,
    read_topic,
    reason_codes,
    scaled,
)

# `alone`: each starts a whole bus of processes and waits on their health and recovery in
# seconds; beside a second test worker, a restarted service was once not healthy in time.
pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.alone]

KILLED = ("router", "tracker", "escalation", "gateway")
"""The first instance of each; router-2, tracker-2, escalation-2 and gateway-2 live on."""

POST_EVENTS = 20
"""Events per HTTP batch: well under the gateway's 64 KB."""

OPERATOR_EVENTS = ("handoff-expired", "escalation-raised")
"""What the escalation service adds to each unanswered case's timeline, once each."""


async def _timeline(bus: Bus) -> list[Any]:
    """The tracker's timeline in the order it recorded it."""
    t = case_timeline.c
    query = select(t.id, t.event_id, t.case_id, t.event_type, t.applied).order_by(t.id)
    async with bus.engine.connect() as connection:
        return list(await connection.execute(query))


async def _settled(bus: Bus, emitted: list[uuid.UUID], unanswered: int) -> dict[str, int]:
    """What is still to be done: emitted events each service has not applied, and the
    expiries and raises the tracker has not recorded yet."""
    left = await bus.missing(emitted)
    t = case_timeline.c
    query = (
        select(t.event_type, func.count())
        .where(t.event_type.in_(OPERATOR_EVENTS))
        .group_by(t.event_type)
    )
    async with bus.engine.connect() as connection:
        made = Counter({kind: int(n) for kind, n in (await connection.execute(query)).all()})
    return left | {kind: unanswered - made[kind] for kind in OPERATOR_EVENTS}


async def _wait_settled(
    bus: Bus, emitted: Emitted, unanswered: int, timeout: float
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        left = await _settled(bus, emitted.event_ids, unanswered)
        if emitted.done and not any(left.values()):
            return left
        dead = bus.dead()
        if dead or time.monotonic() > deadline:
            problem = f"died: {dead}" if dead else f"not settled in {timeout:.0f} s"
            raise AssertionError(f"{problem}; still to do {left}\n{bus.log_tails()}")
        await asyncio.sleep(0.25)


def _order_kept(timeline: list[Any], answered: list[Script], unanswered: list[Script]) -> int:
    """Cases whose events the tracker did not record in the order they were emitted."""
    by_case: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for row in timeline:
        by_case[row.case_id].append(row)
    wrong = 0
    for script in answered:
        wrong += [row.event_id for row in by_case[script.case_id]] != script.event_ids
    for script in unanswered:
        rows = by_case[script.case_id]
        wrong += [row.event_id for row in rows[:2]] != script.event_ids
        wrong += sorted(OPERATOR_EVENTS) != sorted(row.event_type for row in rows[2:])
    return wrong


async def _timers(bus: Bus, case_ids: set[uuid.UUID]) -> tuple[list[Any], list[Any]]:
    """The handoff-deadline timers and the escalations of these cases."""
    async with bus.engine.connect() as connection:
        timers = list(
            await connection.execute(
                select(escalation_timers.c.case_id, escalation_timers.c.fired_at).where(
                    escalation_timers.c.kind == "handoff-deadline",
                    escalation_timers.c.case_id.in_(case_ids),
                )
            )
        )
        raised = list(
            await connection.execute(
                select(escalations.c.case_id, escalations.c.trigger, escalations.c.raises).where(
                    escalations.c.case_id.in_(case_ids)
                )
            )
        )
    return timers, raised


async def test_one_instance_of_each_service_killed_mid_stream_loses_nothing_and_does_nothing_twice(
    tmp_path: Path,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    database_url: str,
    fault_results: Any,
) -> None:
    """Two of each service; SIGKILL of router, tracker, escalation service and gateway at
    once when the routers have half the stream, and a restart of each: every event applied
    by every service once, each case in its order, each expiry fired once, the audit chains
    intact, every inbox event delivered as a webhook."""
    unanswered_cases = fault_events() // 40
    answered = case_scripts(
        (fault_events() - 2 * unanswered_cases) // 4, signed_registry, agency_keys
    )
    receiver = Receiver()
    hook = receiving(receiver)
    hook_port = await hook.__aenter__()
    bus = Bus(tmp_path, signed_registry, database_url, instances=2)
    poster: Poster | None = None
    try:
        await bus.start()
        gateways = [bus.add_gateway(name, {hook_port}) for name in ("gateway", "gateway-2")]
        for gateway in gateways:
            gateway.start()
        holder = await tokens.issue(bus.engine, HOLDER, "scale-out test")
        poster = Poster(gateways, await tokens.issue(bus.engine, RECEIVER, "scale-out test"))
        for gateway, client in zip(gateways, poster.clients, strict=True):
            await until_answering(client, gateway, scaled(30))
        made = await poster.clients[0].post(
            "/v1/subscriptions",
            json={"callbackUrl": f"http://127.0.0.1:{hook_port}/hook"},
            headers={"authorization": f"Bearer {holder}"},
        )
        assert 201 == made.status_code, made.text

        async def answer(events: Sequence[bytes]) -> None:
            assert poster is not None
            for start in range(0, len(events), POST_EVENTS):
                await poster.post(events[start : start + POST_EVENTS])

        emitted = Emitted()
        first, rest = answered[: len(answered) // 20], answered[len(answered) // 20 :]
        await emit(bus.bootstrap, first, bus.routed, emitted=emitted, answer=answer)
        await _wait_settled(bus, emitted, 0, scaled(60))
        emitted.done = False
        # Made now, so that their deadlines fall around the kill, a few seconds on.
        unanswered = case_scripts(
            unanswered_cases, signed_registry, agency_keys, unanswered_within=(4, 14)
        )
        stream = rest + unanswered
        random.shuffle(stream)
        total = 4 * len(answered) + 2 * len(unanswered)
        started = time.monotonic()
        emitter = asyncio.create_task(
            emit(
                bus.bootstrap,
                stream,
                bus.routed,
                chunk=max(1, min(25, len(stream) // 50)),
                emitted=emitted,
                answer=answer,
            )
        )
        try:
            at_kill = await bus.wait_until(
                lambda counts: counts["router"] >= total // 2,
                scaled(60),
                what="half the stream routed",
            )
            for name in KILLED:
                bus.services[name].kill()
            left_at_kill = {name: total - count for name, count in (await bus.progress()).items()}
            timers_at_kill, _ = await _timers(bus, {s.case_id for s in unanswered})
            for name in KILLED:
                bus.services[name].start()
            restarted = time.monotonic()
            await _wait_settled(bus, emitted, len(unanswered), scaled(120))
            recovery = time.monotonic() - restarted
        finally:
            emitter.cancel()
        inbox = await read_topic(bus.bootstrap, topics.inbox(HOLDER), to_end=True)
        expected = {read_json(record.value)["id"] for record in inbox}
        await receiver.until(lambda ids: ids >= expected, scaled(60))
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.0)  # a late copy would show now
        timeline = await _timeline(bus)
        router_ids = await bus.ids(router_seen_events)
        escalation_ids = await bus.ids(escalation_seen_events)
        states = await bus.case_states(s.case_id for s in answered + unanswered)
        timers, raised = await _timers(bus, {s.case_id for s in unanswered})
        chain, audit_rows, deliveries = await bus.audit()
        case_log = await read_topic(bus.bootstrap, topics.CASES, to_end=True)
        outbox = await read_topic(bus.bootstrap, topics.outbox(RECEIVER), to_end=True)
        dead_letters = await read_topic(bus.bootstrap, topics.DLQ, to_end=True)
        delivery_rows = await bus.count(webhook_deliveries)
        alive = [name for name, service in bus.services.items() if await service.healthy()]
    finally:
        if poster is not None:
            await poster.aclose()
        exit_codes = await bus.close()
        await hook.__aexit__(None, None, None)

    assert poster is not None
    emitted_ids = set(emitted.event_ids)
    on_timeline = Counter(row.event_id for row in timeline)
    extra = Counter(row.event_type for row in timeline if row.event_id not in emitted_ids)
    expiries_on_the_log = [
        document["id"]
        for document in map(read_json, (record.value for record in case_log))
        if document.get("type") == "nl.overheid.ketenzaken.handoff-expired"
    ]
    sent_by_http = 2 * len(answered)
    twice = Counter(receiver.ids)
    fault_results(
        {
            "instances": sorted(bus.services),
            "cases": len(answered) + len(unanswered),
            "unanswered_cases": len(unanswered),
            "emitted": len(emitted.event_ids),
            "answered_over_http": len(poster.answered),
            "http_requests_failed": poster.failed,
            "routed_at_kill": at_kill,
            "left_at_kill": left_at_kill,
            "deadlines_fired_at_kill": sum(1 for t in timers_at_kill if t.fired_at is not None),
            "recovery_s": round(recovery, 2),
            "elapsed_s": round(elapsed, 2),
            "lost": len(emitted_ids - set(on_timeline)),
            "operator_events": dict(extra),
            "expiry_copies_on_the_case_log": len(expiries_on_the_log),
            "out_of_order_cases": _order_kept(timeline, answered, unanswered),
            "audit": {"chains": chain.chains, "records": audit_rows},
            "dead_letters": dict(reason_codes(dead_letters)),
            "webhooks": {
                "inbox_events": len(expected),
                "received": len(receiver.ids),
                "received_twice": sum(1 for n in twice.values() if n > 1),
            },
        }
    )
    assert total == len(emitted.event_ids) == len(emitted_ids)
    assert all(left > 0 for left in left_at_kill.values()), left_at_kill
    # Nothing lost, nothing applied twice, nothing refused.
    assert emitted_ids == set(router_ids)
    assert emitted_ids <= set(escalation_ids)
    assert emitted_ids <= set(on_timeline)
    assert [] == [event_id for event_id, n in on_timeline.items() if n > 1]
    assert [] == [row.event_id for row in timeline if not row.applied]
    assert 0 == _order_kept(timeline, answered, unanswered)
    assert (
        Counter({("closed", RECEIVER): len(answered), ("open", HOLDER): len(unanswered)}) == states
    )
    # Every deadline fired once: one expiry and one escalation per unanswered case.
    assert Counter(dict.fromkeys(OPERATOR_EVENTS, len(unanswered))) == extra
    assert len(unanswered) == len(set(expiries_on_the_log))
    assert len(unanswered) == len(timers)
    assert [] == [timer.case_id for timer in timers if timer.fired_at is None]
    assert Counter({("handoff-expired", 1): len(unanswered)}) == Counter(
        (row.trigger, row.raises) for row in raised
    )
    # The gateways: every answered event once; a copy the killed one sent unanswered was
    # refused by the router as a duplicate.
    assert sent_by_http == len(poster.answered) == len(set(poster.answered))
    assert len(outbox) - sent_by_http == reason_codes(dead_letters).get("duplicate-event-id", 0)
    assert {"duplicate-event-id"} >= set(reason_codes(dead_letters))
    assert expected <= set(receiver.ids)
    assert sum(n - 1 for n in twice.values()) <= ROUND
    assert len(expected) == delivery_rows
    # The audit: one chain per router process that delivered, all intact, no copy.
    assert chain.intact, chain
    assert chain.records == audit_rows == deliveries
    assert sorted(bus.services) == sorted(alive)
    assert dict.fromkeys(bus.services, 0) == exit_codes
