"""The HTTP gateway killed with SIGKILL in the middle of taking events: every event it
answered 202 for reaches the case log, and each is applied once. Real processes: the
gateway, router, tracker and escalation service, the embedded broker and PostgreSQL.

Size: KETENBUS_FAULT_EVENTS events (default GATEWAY_CI_EVENTS, 500; `make faults` runs 10000).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.parse import read_json
from contracts.registry import AgencyRegistry
from services.gateway import tokens
from services.gateway.dispatch import ROUND
from services.gateway.intake import BATCH
from services.runtime.store.tables import router_seen_events, webhook_deliveries
from tests.faults.gateways import Receiver, receiving, until_answering
from tests.faults.harness import (
    HOLDER,
    RECEIVER,
    Bus,
    case_scripts,
    fault_events,
    read_topic,
    reason_codes,
    scaled,
)

# `alone`: each starts a whole bus of processes and waits on their health and recovery in
# seconds; beside a second test worker, a restarted service was once not healthy in time.
pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.alone]

BATCH_EVENTS = 20
GATEWAY_CI_EVENTS = 500
"""The CI size here: 25 batches (the kill at the 13th) and 500 webhooks (the kill at 250)
put each kill as far inside the stream as a larger run does."""


async def test_the_gateway_killed_while_taking_events_loses_none_it_answered_and_applies_none_twice(
    tmp_path: Path,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    database_url: str,
    fault_results: Any,
) -> None:
    """SIGKILL of the gateway 5 ms after the middle batch of the stream was posted, then a
    restart: every event it answered 202 for is routed and on the timeline once; what it
    had sent unanswered comes again and the router refuses the copy as a duplicate."""
    scripts = case_scripts(fault_events(GATEWAY_CI_EVENTS) // 2, signed_registry, agency_keys)
    # The holder's half of each case, opened and handed on, in case order per batch.
    events = [wire for script in scripts for _, wire in script.first]
    batches = [events[i : i + BATCH_EVENTS] for i in range(0, len(events), BATCH_EVENTS)]
    kill_at = len(batches) // 2
    bus = Bus(tmp_path, signed_registry, database_url)
    answered: list[str] = []
    failed_requests = 0
    try:
        await bus.start()
        gateway = bus.add_gateway()
        gateway.start()
        port = gateway.gateway_port
        token = await tokens.issue(bus.engine, HOLDER, "fault test")
        headers = {"content-type": BATCH, "authorization": f"Bearer {token}"}
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await until_answering(client, gateway, scaled(30))
            for number, batch in enumerate(batches):
                body = b"[" + b",".join(batch) + b"]"
                for _ in range(20):  # bounded: a batch is sent again until it is answered
                    request = asyncio.create_task(
                        client.post("/v1/events", content=body, headers=headers)
                    )
                    if number == kill_at and gateway.starts == 1:
                        # While the request is in flight: it may be on Kafka, unanswered.
                        await asyncio.sleep(0.005)
                        gateway.kill()
                        gateway.start()
                    try:
                        response = await request
                    except httpx.HTTPError:
                        failed_requests += 1
                        await until_answering(client, gateway, scaled(30))
                        continue
                    assert 202 == response.status_code, response.text
                    answered += response.json()["accepted"]
                    break
                else:
                    raise AssertionError(f"batch {number} was never answered")
        taking = time.monotonic() - started
        wanted = {uuid.UUID(i) for i in answered}
        await bus.wait_until(
            lambda counts: min(counts["router"], counts["tracker"]) >= len(wanted),
            scaled(60),
            what="every answered event routed and on the tracker's timeline",
        )
        await asyncio.sleep(1.0)  # a late copy would show in the counts now
        routed = await bus.ids(router_seen_events)
        timeline = await bus.timeline()
        outbox = await read_topic(bus.bootstrap, topics.outbox(HOLDER), quiet=0.5)
        dead_letters = await read_topic(bus.bootstrap, topics.DLQ, quiet=0.5)
        states = await bus.case_states(script.case_id for script in scripts)
    finally:
        exit_codes = await bus.close()

    on_timeline = Counter(event_id for event_id, _ in timeline)
    fault_results(
        {
            "events": len(events),
            "answered": len(answered),
            "requests_failed_by_the_kill": failed_requests,
            "outbox_records": len(outbox),
            "sent_twice_after_the_kill": len(outbox) - len(events),
            "lost": len(wanted - set(on_timeline)),
            "dead_letters": dict(reason_codes(dead_letters)),
            "taking_s": round(taking, 2),
        }
    )
    assert len(events) == len(answered) == len(wanted)
    assert 2 == gateway.starts
    assert wanted == set(routed)
    assert wanted == set(on_timeline)
    assert [] == [event_id for event_id, times in on_timeline.items() if times > 1]
    assert [] == [event_id for event_id, applied in timeline if not applied]
    # What the killed gateway had sent but not answered came again; the router let one in.
    assert len(outbox) - len(events) == reason_codes(dead_letters).get("duplicate-event-id", 0)
    assert {"duplicate-event-id"} >= set(reason_codes(dead_letters))
    assert Counter({("open", HOLDER): len(scripts)}) == states
    assert 0 == exit_codes["gateway"]


async def test_the_gateway_killed_while_delivering_webhooks_delivers_every_inbox_event(
    tmp_path: Path,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    database_url: str,
    fault_results: Any,
) -> None:
    """SIGKILL of the gateway from inside the POST that brings its receiver to half the
    events sent, then a restart: the receiver gets every inbox event, at most a round's
    worth twice, and each has one delivery row."""
    scripts = case_scripts(fault_events(GATEWAY_CI_EVENTS) // 2, signed_registry, agency_keys)
    events = [wire for script in scripts for _, wire in script.first]
    receiver = Receiver()
    hook = receiving(receiver)
    receiver_port = await hook.__aenter__()
    bus = Bus(tmp_path, signed_registry, database_url)
    try:
        await bus.start()
        gateway = bus.add_gateway(also_taken={receiver_port})
        gateway.start()
        port = gateway.gateway_port
        receiver.kill_at, receiver.kill = len(events) // 2, gateway.kill
        holder = await tokens.issue(bus.engine, HOLDER, "fault test")
        receiving_token = await tokens.issue(bus.engine, RECEIVER, "fault test")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await until_answering(client, gateway, scaled(30))
            made = await client.post(
                "/v1/subscriptions",
                json={"callbackUrl": f"http://127.0.0.1:{receiver_port}/hook"},
                headers={"authorization": f"Bearer {receiving_token}"},
            )
            assert 201 == made.status_code, made.text
            headers = {"content-type": BATCH, "authorization": f"Bearer {holder}"}
            for start in range(0, len(events), 100):
                body = b"[" + b",".join(events[start : start + 100]) + b"]"
                answer = await client.post("/v1/events", content=body, headers=headers)
                assert 202 == answer.status_code, answer.text
        inbox = await read_topic(
            bus.bootstrap,
            topics.inbox(RECEIVER),
            enough=lambda found: len(found) >= len(scripts),
            timeout=scaled(60),
        )
        expected = {read_json(r.value)["id"] for r in inbox}
        await asyncio.wait_for(receiver.killed.wait(), scaled(60))
        at_kill = receiver.at_kill
        gateway.start()
        restarted = time.monotonic()
        await receiver.until(lambda ids: ids >= expected, scaled(60))
        recovery = time.monotonic() - restarted
        await asyncio.sleep(1.0)  # a late copy would show now
        delivered = await bus.count(webhook_deliveries)
    finally:
        exit_codes = await bus.close()
        await hook.__aexit__(None, None, None)

    twice = Counter(receiver.ids)
    fault_results(
        {
            "inbox_events": len(expected),
            "received": len(receiver.ids),
            "received_at_kill": at_kill,
            "received_twice": sum(1 for n in twice.values() if n > 1),
            "recovery_s": round(recovery, 2),
            "delivery_rows": delivered,
        }
    )
    assert len(scripts) <= len(expected)
    assert at_kill is not None
    assert at_kill < len(expected), "every delivery was made before the kill"
    assert expected == set(receiver.ids)
    # At least once: only what was in flight when the gateway died can come twice.
    assert sum(n - 1 for n in twice.values()) <= ROUND
    assert len(expected) == delivered
    assert 0 == exit_codes["gateway"]
