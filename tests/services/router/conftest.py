"""The router's fixtures: a running router on a migrated store, SQLite or PostgreSQL (the
shared `store` of tests/_testutil).

`bus` starts a router on the session's embedded broker, in a consumer group of
its own that begins at the current end of every outbox (so it replays nothing
earlier tests wrote), with the test keys in its registry and `store` as its
state. PostgreSQL cases are skipped with the reason when it is unreachable,
unless KETENBUS_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.router._verifier import UNCHECKED, Verdict
from services.router.app import create_router
from services.router.routing import Admitted, CaseRouting, OutboxMessage
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import Outgoing
from tests._testutil import start_group_at_end


class CountingRouting(CaseRouting):
    """The router's checks, counting the messages it looked at (a failed batch's too)."""

    checked = 0

    def check(
        self, message: OutboxMessage, signature: Verdict = UNCHECKED
    ) -> Admitted | list[Outgoing]:
        self.checked += 1
        return super().check(message, signature)


@dataclass(frozen=True)
class Bus:
    """A running router: where it runs, its store, its counts, and the agencies' keys."""

    bootstrap: str
    store: AsyncEngine
    routing: CountingRouting
    registry: AgencyRegistry
    keys: dict[str, AgencyKeys]


@pytest.fixture
async def bus(
    kafka: str,
    settings: Settings,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    store: AsyncEngine,
) -> AsyncIterator[Bus]:
    group = f"router-test-{uuid.uuid4()}"
    outboxes = [topics.outbox(agency.code) for agency in signed_registry.agencies]
    await start_group_at_end(kafka, group, outboxes)
    routing = CountingRouting(signed_registry)
    broker = create_router(settings, signed_registry, kafka, store, group_id=group, routing=routing)
    await broker.start()
    try:
        yield Bus(kafka, store, routing, signed_registry, agency_keys)
    finally:
        await broker.stop()
