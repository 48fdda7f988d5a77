"""A large batch's stateless checks run in a thread pool: same outcome, same order."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.ext.asyncio import AsyncEngine

from bench._events import SENDER, case_events
from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.router.deliver import CHECK_CHUNK, Delivery
from services.router.routing import CaseRouting, OutboxMessage
from services.runtime.kafka import Outgoing


async def test_a_batch_checked_in_threads_is_delivered_in_order_with_its_refusals(
    store: AsyncEngine, signed_registry: AgencyRegistry, agency_keys: dict[str, AgencyKeys]
) -> None:
    count = 3 * CHECK_CHUNK
    outbox = topics.outbox(SENDER)
    events = case_events(signed_registry, agency_keys, count)
    tampered = len(events) // 2 + 1  # a handoff request, its case opened just before
    key, value = events[tampered]
    events[tampered] = (key, value.replace(b"Doorverwijzing", b"Doorverwezen!!"))
    messages = [OutboxMessage(outbox, 0, i, k, v) for i, (k, v) in enumerate(events)]
    sent: list[Outgoing] = []

    async def publish(out: Sequence[Outgoing]) -> None:
        sent.extend(out)

    routing = CaseRouting(signed_registry)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = await Delivery(store, routing, publish, checkers=pool).handle(messages)

    assert (count - 1, 1) == (done.routed, done.refused)
    assert {"bad-signature": 1} == routing.stats.rejected
    case_log = [m.value for m in sent if m.topic == topics.CASES]
    assert [v for i, (_, v) in enumerate(events) if i != tampered] == case_log
