"""Create the bus's topics: every registered agency's outbox and inbox, and the bus topics.

Run as `python -m services.runtime.kafka.topics` to create them on a configured
cluster (the compose stack does this once before the services start).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from contracts import topics
from contracts.registry import AgencyRegistry
from services.runtime.errors import UserError
from services.runtime.kafka.clients import client_security
from services.runtime.observability.logging import get_logger

if TYPE_CHECKING:
    from services.runtime.config.settings import Settings

log = get_logger("ketenbus.topics")


def bus_topics(registry: AgencyRegistry) -> list[str]:
    """Every topic the bus needs for this registry (DESIGN "Topics")."""
    names = [*topics.BUS_TOPICS]
    for agency in registry.agencies:
        names += [topics.outbox(agency.code), topics.inbox(agency.code)]
    return names


async def ensure_topics(
    bootstrap: str,
    names: list[str],
    *,
    partitions: int,
    replication: int = 1,
    timeout: float = 30.0,
    settings: Settings | None = None,
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    `settings` carries the Kafka security options; pass them for a configured
    cluster (with SASL on the brokers an unauthenticated admin client is turned
    away). None: PLAINTEXT, as the embedded broker speaks.
    """
    security = client_security(settings) if settings is not None else {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **security)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            await admin.create_topics([NewTopic(name, partitions, replication) for name in missing])
            log.info("topics created", topics=len(missing), partitions=partitions)
        while set(names) - set(await admin.list_topics()):
            if asyncio.get_running_loop().time() > deadline:
                absent = sorted(set(names) - set(await admin.list_topics()))
                raise TimeoutError(f"topics not created in {timeout:.0f} s: {', '.join(absent)}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


def main() -> None:
    """Create the topics on `KETENBUS_KAFKA_BOOTSTRAP` (replication from argv[1], default 1).

    Connects as the `KETENBUS_KAFKA_SASL_*` user when the security protocol asks for it.
    """
    from services.runtime.config.registry import load_registry
    from services.runtime.config.settings import Settings
    from services.runtime.observability.logging import configure

    settings = Settings()
    configure(settings.log_level, settings.log_format)
    if not settings.kafka_bootstrap:
        sys.exit("ketenbus: set KETENBUS_KAFKA_BOOTSTRAP to the cluster to create topics on")
    replication = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    registry = load_registry(settings.registry)
    try:
        asyncio.run(
            ensure_topics(
                settings.kafka_bootstrap,
                bus_topics(registry),
                partitions=settings.topic_partitions,
                replication=replication,
                settings=settings,
            )
        )
    except UserError as exc:
        sys.exit(f"ketenbus: {exc}")


if __name__ == "__main__":
    main()
