"""The router's FastStream application: batches in, checked and audited copies out, then commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.registry import AgencyRegistry
from services.router._verifier import Verifier, shared_workers
from services.router.deliver import Delivery
from services.router.routing import CaseRouting, OutboxMessage
from services.runtime.backoff import Backoff
from services.runtime.catch_up import CatchUp
from services.runtime.headers import lenient_batch
from services.runtime.kafka import Outgoing, consumer_options, make_broker, publish_all
from services.runtime.poison import PoisonGuard, dead_letter_with
from services.runtime.settings import Settings

GROUP = "ketenbus-router"

BATCH = 2_000
"""Records per batch at most: per-batch costs (a store transaction, waiting for acks, the
offset commit) spread over more events; a quiet bus still gets small batches at once."""


async def _raw_body(_: Any) -> None:
    # Routing reads the records' bytes itself; FastStream must not try to decode them.
    return None


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

    @broker.subscriber(
        *outboxes,
        batch=True,
        max_records=BATCH,
        group_id=group_id,
        # Commit only after the handler returned, i.e. after the batch's state and audit
        # records are committed and every produce was acked; on an exception rewind to
        # the batch start so nothing is skipped.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_body,
        # Header values as sent: one that is not UTF-8 is refused by routing, alone.
        parser=lenient_batch,
        **consumer_options(settings),
    )
    async def route_outboxes(message: KafkaMessage) -> None:
        await catch_up.run(message, lambda records: guard.run(records, deliver, message.consumer))

    return broker
