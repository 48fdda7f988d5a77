"""The router's FastStream application: batches in, checked and audited copies out, then commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.registry import AgencyRegistry
from services.router._verifier import Verifier, shared_workers
from services.router.deliver import Delivery
from services.router.routing import CaseRouting, OutboxMessage
from services.runtime.config.settings import Settings
from services.runtime.consumer.backoff import Backoff
from services.runtime.consumer.catch_up import CatchUp
from services.runtime.consumer.poison import PoisonGuard, dead_letter_with
from services.runtime.consumer.subscriber import batch_subscriber
from services.runtime.kafka.clients import Outgoing, make_broker, publish_all

GROUP = "ketenbus-router"

BATCH = 2_000
"""Records per batch at most: per-batch costs (a store transaction, waiting for acks, the
offset commit) spread over more events; a quiet bus still gets small batches at once."""


def create_router(
    settings: Settings,
    registry: AgencyRegistry,
    bootstrap: str,
    engine: AsyncEngine,
    *,
    group_id: str = GROUP,
    routing: CaseRouting | None = None,
) -> KafkaBroker:
    """A broker whose one subscriber delivers every registered outbox; its state is in `engine`."""
    broker = make_broker(settings, bootstrap, client_id="ketenbus-router")
    routing = routing or CaseRouting(registry)
    outboxes = [topics.outbox(agency.code) for agency in registry.agencies]

    async def publish(messages: Sequence[Outgoing]) -> None:
        await publish_all(broker, messages)

    workers = shared_workers(settings.router_signature_workers)
    verifier = Verifier(registry, workers) if workers is not None else None
    delivery = Delivery(engine, routing, publish, verifier=verifier)
    guard = PoisonGuard("router", settings.max_attempts, dead_letter_with(broker), Backoff())
    catch_up = CatchUp(BATCH)

    async def deliver(records: Sequence[Any]) -> None:
        done = await delivery.handle(
            [
                OutboxMessage(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers))
                for r in records
            ]
        )
        routing.stats.routed += done.routed
        routing.stats.completed += len(records)

    # At least once: committed after the batch's state and audit records are
    # committed and every produce was acked. A header value that is not UTF-8 is
    # refused by routing, alone.
    @batch_subscriber(broker, *outboxes, group_id=group_id, max_records=BATCH, settings=settings)
    async def route_outboxes(message: KafkaMessage) -> None:
        await catch_up.run(message, lambda records: guard.run(records, deliver, message.consumer))

    return broker
