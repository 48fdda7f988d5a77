"""The router's FastStream application: batches in, routed events out, then commit."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts import topics
from contracts.registry import AgencyRegistry
from services.router.routing import CaseRouting, OutboxMessage
from services.runtime.kafka import consumer_options, make_broker
from services.runtime.settings import Settings

GROUP = "ketenbus-router"


async def _raw_body(_: Any) -> None:
    # Routing reads the records' bytes itself; FastStream must not try to decode them.
    return None


def create_router(
    settings: Settings,
    registry: AgencyRegistry,
    bootstrap: str,
    *,
    group_id: str = GROUP,
    routing: CaseRouting | None = None,
) -> KafkaBroker:
    """A broker whose one subscriber routes every registered outbox."""
    broker = make_broker(settings, bootstrap, client_id="ketenbus-router")
    routing = routing or CaseRouting(registry)
    outboxes = [topics.outbox(agency.code) for agency in registry.agencies]

    @broker.subscriber(
        *outboxes,
        batch=True,
        max_records=500,
        group_id=group_id,
        # Commit only after the handler returned, i.e. after every produce was acked;
        # on an exception rewind to the batch start so nothing is skipped.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_body,
        **consumer_options(settings),
    )
    async def route_outboxes(message: KafkaMessage) -> None:
        records = message.raw_message
        assert isinstance(records, tuple)
        pending: list[asyncio.Future[Any]] = []
        for record in records:
            received = OutboxMessage(
                record.topic, record.partition, record.offset, record.key, record.value
            )
            for out in routing.route(received):
                sent = await broker.publish(
                    out.value,
                    out.topic,
                    key=out.key,
                    headers=out.headers,
                    correlation_id=out.correlation_id,
                    no_confirm=True,
                )
                pending.append(sent)
        await asyncio.gather(*pending)
        routing.stats.completed += len(records)

    return broker
