"""The gateway under test: its app on a real broker and store, and a token per agency.

The gateway's tests have a broker of their own: they leave valid, routable events on the
outboxes, which another test's router would read from the start and route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.registry import AgencyRegistry
from services.gateway import tokens
from services.gateway.app import create_gateway
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import make_broker
from services.runtime.kafka.embedded import EmbeddedBroker, free_port
from services.runtime.kafka.topics import bus_topics, ensure_topics


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(free_port()) as broker:
        yield broker


@pytest.fixture(scope="session")
async def kafka(embedded_broker: EmbeddedBroker, registry: AgencyRegistry) -> str:
    """The bootstrap address of the gateway tests' own broker, every bus topic created."""
    await ensure_topics(embedded_broker.bootstrap, bus_topics(registry), partitions=3)
    return embedded_broker.bootstrap


@pytest.fixture
async def gateway(
    kafka: str, settings: Settings, signed_registry: AgencyRegistry, store: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of a gateway whose producer runs against the embedded broker."""
    broker = make_broker(settings, kafka, client_id="ketenbus-gateway-test")
    await broker.start()
    app = create_gateway(settings, signed_registry, store, broker)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
    finally:
        await broker.stop()


@pytest.fixture
async def uwv_token(store: AsyncEngine) -> str:
    return await tokens.issue(store, "uwv", "test")
