"""The escalation service's fixtures: fresh stores on SQLite and PostgreSQL, a fast clock,
the service on the real embedded broker, and a writer for the case log.

PostgreSQL is the tracker's test database (`postgres_url`, skipped with the
reason unless KETENBUS_REQUIRE_POSTGRES=1); each store gets a schema of its own.
Clock time runs SPEED times faster than real time, so an hour of deadlines
and acknowledge windows passes in a second.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.registry import AgencyRegistry
from services.escalation import EscalationService
from services.runtime.clock import ScaledClock
from services.runtime.embedded import EMBEDDED_SESSION_TIMEOUT_MS
from services.runtime.settings import Settings
from services.runtime.store import make_engine, migrate
from tests.conftest import REPO
from tests.services.escalation.script import Bus
from tests.services.tracker.conftest import _in_schema, postgres_url

__all__ = ["postgres_url"]  # the tracker's fixture, used here by name

SPEED = 3600.0
"""Clock seconds per real second: an hour of clock time in one real second."""

QUICK = "spoed"
"""A category whose cases idle out after half an hour (half a real second)."""

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

EngineMaker = Callable[[], AsyncEngine]


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


@asynccontextmanager
async def fresh_store(backend: str, directory: Path) -> AsyncIterator[EngineMaker]:
    """Engines on one new, migrated database (SQLite file or PostgreSQL schema)."""
    made: list[AsyncEngine] = []
    schema = ""
    if backend.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{directory / 'ketenbus.db'}"

        def new() -> AsyncEngine:
            made.append(make_engine(url))
            return made[-1]

    else:
        schema = f"ketenbus_esc_{uuid.uuid4().hex[:12]}"
        admin = make_engine(backend)
        made.append(admin)
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))

        def new() -> AsyncEngine:
            made.append(_in_schema(make_engine(backend), schema))
            return made[-1]

    try:
        await migrate(new())
        yield new
    finally:
        if schema:
            async with made[0].begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        for engine in made:
            await engine.dispose()


def _backend_url(request: pytest.FixtureRequest) -> str:
    # Sync on purpose: an async fixture cannot resolve the async `postgres_url` by name.
    if request.param == "sqlite":
        return "sqlite"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str:
    """`sqlite`, or the PostgreSQL URL once it is known to answer (one test)."""
    return _backend_url(request)


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend_url(request: pytest.FixtureRequest) -> str:
    """The same, for a fixture that serves a whole module."""
    return _backend_url(request)


@pytest.fixture
async def engines(backend_url: str, tmp_path: Path) -> AsyncIterator[EngineMaker]:
    """A fresh store for one test."""
    async with fresh_store(backend_url, tmp_path) as maker:
        yield maker


@pytest.fixture
async def producer(kafka: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await client.start()
    yield client
    await client.stop()


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
    module_backend_url: str,
    kafka: str,
    escalation_settings: Settings,
    escalation_registry: AgencyRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Running]:
    """One service per backend, shared by a module's tests (each test has its own cases)."""
    directory = tmp_path_factory.mktemp("escalation")
    async with fresh_store(module_backend_url, directory) as engines:
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
