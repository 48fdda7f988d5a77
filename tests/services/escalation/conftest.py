"""The escalation service's fixtures: fresh stores on SQLite and PostgreSQL, a fast clock,
the service on the real embedded broker, and a writer for the case log.

PostgreSQL is the shared test database (tests/_testutil: `postgres_url`, skipped
with the reason unless KETENBUS_REQUIRE_POSTGRES=1); each store gets a schema of its
own. The case-log writer's events come from the shared `EventFactory`.
Clock time runs SPEED times faster than real time, so an hour of deadlines
and acknowledge windows passes in a second.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.registry import AgencyRegistry
from services.escalation import EscalationService
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS
from services.runtime.process.clock import ScaledClock
from tests._testutil import BACKENDS, EngineMaker, backend_url, fresh_engines
from tests.conftest import REPO
from tests.services.escalation.script import Bus

SPEED = 3600.0
"""Clock seconds per real second: an hour of clock time in one real second."""

QUICK = "spoed"
"""A category whose cases idle out after half an hour (half a real second)."""


@pytest.fixture(scope="session")
def escalation_registry() -> AgencyRegistry:
    """The example registry plus a category with a short idle limit."""
    document = yaml.safe_load((REPO / "deploy" / "agencies.yaml").read_text(encoding="utf-8"))
    schulden = next(c for c in document["categories"] if c["code"] == "schulden")
    document["categories"].append(
        {**schulden, "code": QUICK, "name": "Spoedschulden", "idle_limit": "PT30M"}
    )
    return AgencyRegistry.from_document(document)


@pytest.fixture(scope="session")
def escalation_settings() -> Settings:
    return Settings(
        registry=REPO / "deploy" / "agencies.yaml",
        # Half the embedded broker's usual: an instance restarted into its group waits out
        # the stopped member's session, and the restart tests do that several times.
        kafka_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS // 2,
        escalation_repeat=timedelta(minutes=30),
        timer_lease_s=1.0,
    )


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The shared `backend`, for a fixture that serves a whole module."""
    return backend_url(request, tmp_path_factory.mktemp("escalation"))


@pytest.fixture
async def engines(backend: str) -> AsyncIterator[EngineMaker]:
    """A fresh, migrated store for one test (the shared `engines`' is not migrated)."""
    async with fresh_engines(backend, schema_prefix="ketenbus_esc", migrated=True) as maker:
        yield maker


@dataclass
class Running:
    """A running escalation service, its store and clock, and the case-log writer."""

    service: EscalationService
    engine: AsyncEngine
    clock: ScaledClock
    bus: Bus


def start_service(
    settings: Settings,
    registry: AgencyRegistry,
    engine: AsyncEngine,
    kafka: str,
    clock: ScaledClock,
    group: str,
    **options: Any,
) -> EscalationService:
    return EscalationService(
        settings, registry, engine, kafka, clock=clock, group_id=group, **options
    )


@pytest.fixture(scope="module")
async def running(
    module_backend: str,
    kafka: str,
    escalation_settings: Settings,
    escalation_registry: AgencyRegistry,
) -> AsyncIterator[Running]:
    """One service per backend, shared by a module's tests (each test has its own cases)."""
    async with fresh_engines(
        module_backend, schema_prefix="ketenbus_esc", migrated=True
    ) as engines:
        engine = engines()
        clock = ScaledClock(SPEED)
        service = start_service(
            escalation_settings,
            escalation_registry,
            engine,
            kafka,
            clock,
            f"escalation-{uuid.uuid4()}",
        )
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        await producer.start()
        await service.start()
        try:
            yield Running(service, engine, clock, Bus(kafka, escalation_registry, clock, producer))
        finally:
            await service.stop()
            await producer.stop()
