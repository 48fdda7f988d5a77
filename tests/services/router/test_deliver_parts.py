"""A large batch is delivered in parts while worker processes verify the signatures ahead."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Batch:
    """COUNT signed events from SENDER's outbox, the one at `tampered` changed after signing."""

    messages: list[OutboxMessage]
    tampered: int

    def signed_as_sent(self) -> list[bytes]:
        return [m.value for i, m in enumerate(self.messages) if i != self.tampered]


@dataclass
class Produced:
    """What the delivery produced, in order; `fail_on` makes that call raise instead."""

    messages: list[Outgoing] = field(default_factory=list)
    fail_on: int = 0
    calls: int = 0

    async def publish(self, out: Sequence[Outgoing]) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise TimeoutError("no acks")
        self.messages.extend(out)

    def on(self, topic: str) -> list[Outgoing]:
        return [m for m in self.messages if m.topic == topic]


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    workers = Workers(1)
    try:
        yield workers
    finally:
        workers.close()


@pytest.fixture
def batch(signed_registry: AgencyRegistry, agency_keys: dict[str, AgencyKeys]) -> Batch:
    events = case_events(signed_registry, agency_keys, COUNT)
    tampered = len(events) // 2 + 1  # a handoff request, its case opened just before
    key, value = events[tampered]
    events[tampered] = (key, value.replace(b"Doorverwijzing", b"Doorverwezen!!"))
    outbox = topics.outbox(SENDER)
    messages = [OutboxMessage(outbox, 0, i, k, v) for i, (k, v) in enumerate(events)]
    return Batch(messages, tampered)


async def test_a_batch_verified_by_the_workers_is_delivered_in_order_with_its_refusals(
    store: AsyncEngine, signed_registry: AgencyRegistry, batch: Batch, workers: Workers
) -> None:
    produced = Produced()
    routing = CaseRouting(signed_registry)
    verifier = Verifier(signed_registry, workers)

    done = await Delivery(store, routing, produced.publish, verifier=verifier).handle(
        batch.messages
    )

    assert (COUNT - 1, 1) == (done.routed, done.refused)
    assert {"bad-signature": 1} == routing.stats.rejected
    assert batch.signed_as_sent() == [m.value for m in produced.on(topics.CASES)]
    dead = produced.on(topics.DLQ)
    assert [batch.messages[batch.tampered].value] == [m.value for m in dead]
    assert "bad-signature" == dead[0].headers[topics.DLQ_REASON_CODE]


async def test_a_failed_part_brings_the_batch_again_and_its_delivered_parts_are_not_repeated(
    store: AsyncEngine, signed_registry: AgencyRegistry, batch: Batch, workers: Workers
) -> None:
    produced = Produced(fail_on=3)  # the third part: Kafka did not ack, nothing of it is committed
    routing = CaseRouting(signed_registry)
    verifier = Verifier(signed_registry, workers)
    delivery = Delivery(store, routing, produced.publish, verifier=verifier)

    with pytest.raises(TimeoutError):
        await delivery.handle(batch.messages)
    delivered_before = len(produced.on(topics.CASES))
    done = await delivery.handle(batch.messages)  # the batch again, from its first record

    assert 0 < delivered_before < COUNT - 1
    assert COUNT - 1 - delivered_before == done.routed
    assert batch.signed_as_sent() == [m.value for m in produced.on(topics.CASES)]


async def test_the_router_verifies_itself_when_its_workers_are_gone(
    store: AsyncEngine, signed_registry: AgencyRegistry, batch: Batch
) -> None:
    produced = Produced()
    doomed = Workers(1)
    try:
        verifier = Verifier(signed_registry, doomed)
        worker = doomed.get().submit(os.getpid).result(timeout=60)
        os.kill(worker, signal.SIGKILL)
        routing = CaseRouting(signed_registry)
        done = await Delivery(store, routing, produced.publish, verifier=verifier).handle(
            batch.messages
        )
    finally:
        doomed.close()

    assert (COUNT - 1, 1) == (done.routed, done.refused)
    assert {"bad-signature": 1} == routing.stats.rejected
    assert batch.signed_as_sent() == [m.value for m in produced.on(topics.CASES)]
