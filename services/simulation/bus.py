"""The broker a run uses: the configured cluster, or a private embedded broker for the run.

On a configured cluster other runs (or a live bus) may have left events on
the topics. The run's consumer groups are new, so they are first positioned
at the current end of their topics: the run's services then see only the
run's own events, and the verdict reads from those same offsets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from contracts.registry import AgencyRegistry
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.clients import client_security, kafka_unreachable
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.simulation.buslog import Offsets, end_offsets


@dataclass(frozen=True)
class Bus:
    bootstrap: str
    settings: Settings
    """The settings with the session timeout and security options the broker needs."""
    private: bool
    start: Offsets = field(default_factory=dict)
    """Where the run's events begin on each partition (empty: at the beginning)."""


@asynccontextmanager
async def run_bus(settings: Settings, registry: AgencyRegistry) -> AsyncIterator[Bus]:
    """The configured broker if KETENBUS_KAFKA_BOOTSTRAP is set, else a private one."""
    names = bus_topics(registry)
    if settings.kafka_bootstrap:
        problem = await kafka_unreachable(settings.kafka_bootstrap, settings=settings)
        if problem is not None:
            raise UserError(f"Kafka at {settings.kafka_bootstrap} does not answer: {problem}")
        await ensure_topics(
            settings.kafka_bootstrap,
            names,
            partitions=settings.topic_partitions,
            settings=settings,
        )
        start = await end_offsets(settings.kafka_bootstrap, names, settings=settings)
        yield Bus(settings.kafka_bootstrap, settings, private=False, start=start)
        return
    embedded = EmbeddedBroker(free_port())
    await asyncio.to_thread(embedded.start)
    try:
        await ensure_topics(embedded.bootstrap, names, partitions=settings.topic_partitions)
        # The embedded broker speaks PLAINTEXT only, whatever the environment asks for.
        private = settings.model_copy(
            update={
                "kafka_session_timeout_ms": EMBEDDED_SESSION_TIMEOUT_MS,
                "kafka_security_protocol": "PLAINTEXT",
            }
        )
        yield Bus(embedded.bootstrap, private, private=True)
    finally:
        await asyncio.to_thread(embedded.stop)


async def position_groups(bus: Bus, groups: dict[str, list[str]]) -> None:
    """Commit, for each new group, its topics' start offsets (so it skips older events)."""
    if not bus.start:
        return
    for group, names in groups.items():
        offsets = {tp: offset for tp, offset in bus.start.items() if tp.topic in names}
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bus.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            **client_security(bus.settings),
        )
        await consumer.start()
        try:
            consumer.assign(list(offsets))
            await consumer.commit(offsets)
        finally:
            await consumer.stop()


async def wait_until_assigned(consumers: list[Any], timeout: float = 30.0) -> None:
    """Until every consumer has its partitions: before then, time would pass on the clock
    for events nobody reads yet, and the first escalations would look late.

    `consumers`: aiokafka consumers, or FastStream brokers (their subscribers' consumers).
    Asked of the clients, not the broker: the embedded broker's DescribeGroups answer
    cannot be decoded by aiokafka once the members hold assignments.
    """
    deadline = time.monotonic() + timeout
    while not all(_assigned(client) for client in consumers):
        if time.monotonic() > deadline:
            raise UserError(f"the run's consumers did not join their groups in {timeout:.0f} s")
        await asyncio.sleep(0.05)


def _assigned(client: Any) -> bool:
    subscribers = getattr(client, "subscribers", None)
    if subscribers is None:
        return bool(client.assignment())
    consumers = [getattr(subscriber, "consumer", None) for subscriber in subscribers]
    return all(c is not None and c.assignment() for c in consumers)
