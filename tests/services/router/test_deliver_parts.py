"""Worker processes verify a batch's signatures while the event loop checks the first share.

A batch below VERIFIED_APART goes in one transaction; a larger one in parts,
the workers verifying the parts ahead.
"""

from __future__ import annotations

import asyncio
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
from services.router._verifier import Verdict, Verifier, Workers
from services.router.deliver import INLINE_SHARE, PART, VERIFIED_APART, Delivery
from services.router.routing import CaseRouting, OutboxMessage
from services.runtime.kafka.clients import Outgoing

ONE_TRANSACTION = VERIFIED_APART // 4
IN_PARTS = VERIFIED_APART + 300


@dataclass(frozen=True)
class Batch:
    """Signed events from SENDER's outbox, the one at `tampered` changed after signing."""

    messages: list[OutboxMessage]
    tampered: int

    @property
    def count(self) -> int:
        return len(self.messages)

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


def _batch(registry: AgencyRegistry, keys: dict[str, AgencyKeys], count: int) -> Batch:
    events = case_events(registry, keys, count)
    # A handoff request (odd), its case opened just before; past the share the loop checks.
    tampered = len(events) // 2 | 1
    key, value = events[tampered]
    events[tampered] = (key, value.replace(b"Doorverwijzing", b"Doorverwezen!!"))
    outbox = topics.outbox(SENDER)
    messages = [OutboxMessage(outbox, 0, i, k, v) for i, (k, v) in enumerate(events)]
    return Batch(messages, tampered)


@pytest.fixture(params=[ONE_TRANSACTION, IN_PARTS], ids=["one-transaction", "in-parts"])
def batch(
    request: pytest.FixtureRequest,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
) -> Batch:
    return _batch(signed_registry, agency_keys, request.param)


async def test_a_batch_verified_by_the_workers_is_delivered_in_order_with_its_refusals(
    store: AsyncEngine, signed_registry: AgencyRegistry, batch: Batch, workers: Workers
) -> None:
    produced = Produced()
    routing = CaseRouting(signed_registry)
    verifier = Verifier(signed_registry, workers)

    done = await Delivery(store, routing, produced.publish, verifier=verifier).handle(
        batch.messages
    )

    assert (batch.count - 1, 1) == (done.routed, done.refused)
    assert {"bad-signature": 1} == routing.stats.rejected
    assert batch.signed_as_sent() == [m.value for m in produced.on(topics.CASES)]
    dead = produced.on(topics.DLQ)
    assert [batch.messages[batch.tampered].value] == [m.value for m in dead]
    assert "bad-signature" == dead[0].headers[topics.DLQ_REASON_CODE]


async def test_the_workers_verify_all_but_the_first_share_of_a_batch(
    store: AsyncEngine, signed_registry: AgencyRegistry, batch: Batch, workers: Workers
) -> None:
    submitted: list[bytes] = []

    class Watched(Verifier):
        def submit(self, values: list[bytes]) -> asyncio.Future[list[Verdict]]:
            submitted.extend(values)
            return super().submit(values)

    verifier = Watched(signed_registry, workers)
    routing = CaseRouting(signed_registry)

    await Delivery(store, routing, Produced().publish, verifier=verifier).handle(batch.messages)

    first = round(batch.count * INLINE_SHARE) if batch.count < VERIFIED_APART else PART // 4
    assert [m.value for m in batch.messages[first:]] == submitted


async def test_a_failed_part_brings_the_batch_again_and_its_delivered_parts_are_not_repeated(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    workers: Workers,
) -> None:
    batch = _batch(signed_registry, agency_keys, IN_PARTS)
    produced = Produced(fail_on=3)  # the third part: Kafka did not ack, nothing of it is committed
    routing = CaseRouting(signed_registry)
    verifier = Verifier(signed_registry, workers)
    delivery = Delivery(store, routing, produced.publish, verifier=verifier)

    with pytest.raises(TimeoutError):
        await delivery.handle(batch.messages)
    delivered_before = len(produced.on(topics.CASES))
    done = await delivery.handle(batch.messages)  # the batch again, from its first record

    assert 0 < delivered_before < batch.count - 1
    assert batch.count - 1 - delivered_before == done.routed
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

    assert (batch.count - 1, 1) == (done.routed, done.refused)
    assert {"bad-signature": 1} == routing.stats.rejected
    assert batch.signed_as_sent() == [m.value for m in produced.on(topics.CASES)]
