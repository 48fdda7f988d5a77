"""A large batch is delivered in parts while worker processes verify the signatures ahead."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._events import SENDER, case_events
from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.router._verifier import Verifier, Workers
from services.router.deliver import VERIFIED_APART, Delivery
from services.router.routing import CaseRouting, OutboxMessage
from services.runtime.kafka import Outgoing

COUNT = VERIFIED_APART + 300


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    workers = Workers(1)
    try:
        yield workers
    finally:
        workers.close()


def _batch(
    registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> tuple[list[OutboxMessage], int]:
    """COUNT signed events from SENDER's outbox, one of them changed after signing."""
    events = case_events(registry, keys, COUNT)
    tampered = len(events) // 2 + 1  # a handoff request, its case opened just before
    key, value = events[tampered]
    events[tampered] = (key, value.replace(b"Doorverwijzing", b"Doorverwezen!!"))
    outbox = topics.outbox(SENDER)
    return [OutboxMessage(outbox, 0, i, k, v) for i, (k, v) in enumerate(events)], tampered


async def test_a_batch_verified_by_the_workers_is_delivered_in_order_with_its_refusals(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    workers: Workers,
) -> None:
    messages, tampered = _batch(signed_registry, agency_keys)
    sent: list[Outgoing] = []

    async def publish(out: Sequence[Outgoing]) -> None:
        sent.extend(out)

    routing = CaseRouting(signed_registry)
    verifier = Verifier(signed_registry, workers)
    done = await Delivery(store, routing, publish, verifier=verifier).handle(messages)

    assert (COUNT - 1, 1) == (done.routed, done.refused)
    assert {"bad-signature": 1} == routing.stats.rejected
    case_log = [m.value for m in sent if m.topic == topics.CASES]
    assert [m.value for i, m in enumerate(messages) if i != tampered] == case_log
    dead = [m for m in sent if m.topic == topics.DLQ]
    assert [messages[tampered].value] == [m.value for m in dead]
    assert "bad-signature" == dead[0].headers[topics.DLQ_REASON_CODE]


async def test_a_failed_part_brings_the_batch_again_and_its_delivered_parts_are_not_repeated(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    workers: Workers,
) -> None:
    messages, tampered = _batch(signed_registry, agency_keys)
    sent: list[Outgoing] = []
    calls = 0

    async def publish(out: Sequence[Outgoing]) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the third part: Kafka did not ack, nothing of it is committed
            raise TimeoutError("no acks")
        sent.extend(out)

    routing = CaseRouting(signed_registry)
    delivery = Delivery(store, routing, publish, verifier=Verifier(signed_registry, workers))
    with pytest.raises(TimeoutError):
        await delivery.handle(messages)
    delivered_before = len([m for m in sent if m.topic == topics.CASES])
    done = await delivery.handle(messages)  # the batch again, from its first record

    assert 0 < delivered_before < COUNT - 1
    assert COUNT - 1 - delivered_before == done.routed
    case_log = [m.value for m in sent if m.topic == topics.CASES]
    assert [m.value for i, m in enumerate(messages) if i != tampered] == case_log


async def test_the_router_verifies_itself_when_its_workers_are_gone(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    messages, tampered = _batch(signed_registry, agency_keys)
    sent: list[Outgoing] = []

    async def publish(out: Sequence[Outgoing]) -> None:
        sent.extend(out)

    doomed = Workers(1)
    try:
        verifier = Verifier(signed_registry, doomed)
        worker = doomed.get().submit(os.getpid).result(timeout=60)
        os.kill(worker, signal.SIGKILL)
        routing = CaseRouting(signed_registry)
        done = await Delivery(store, routing, publish, verifier=verifier).handle(messages)
    finally:
        doomed.close()

    assert (COUNT - 1, 1) == (done.routed, done.refused)
    assert {"bad-signature": 1} == routing.stats.rejected
    case_log = [m.value for m in sent if m.topic == topics.CASES]
    assert [m.value for i, m in enumerate(messages) if i != tampered] == case_log
