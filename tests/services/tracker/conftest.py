"""The tracker's fixtures: a migrated store on SQLite and on PostgreSQL, and an event factory.

For the CLI verbs, which open the store themselves: `database` (a fresh SQLite
file named by KETENBUS_DATABASE_URL) and `record` (apply events to it).

PostgreSQL: KETENBUS_TEST_POSTGRES_URL (default: the local `test` database).
Each test gets its own schema, dropped afterwards, so runs never see each
other's rows. Unreachable, the PostgreSQL cases are skipped with the reason,
unless KETENBUS_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.envelope import CaseEvent
from contracts.registry import AgencyRegistry
from services.runtime.store import make_engine, migrate
from services.tracker.ledger import apply_batch
from tests.services.tracker.factory import EventFactory

POSTGRES_URL = os.environ.get(
    "KETENBUS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

EngineMaker = Callable[[], AsyncEngine]


@pytest.fixture(scope="session")
async def postgres_url() -> str:
    """The PostgreSQL URL, once it answers; skip (or fail, if required) when it does not."""
    probe = create_async_engine(POSTGRES_URL, connect_args={"timeout": 5})
    try:
        async with probe.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no PostgreSQL"
        reason = f"PostgreSQL at {POSTGRES_URL} is unreachable: {type(exc).__name__}: {exc}"
        if os.environ.get("KETENBUS_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        await probe.dispose()
    return POSTGRES_URL


def _in_schema(engine: AsyncEngine, schema: str) -> AsyncEngine:
    """Make every connection of `engine` work in `schema` (session-level search_path)."""

    def on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.run_async(lambda raw: raw.execute(f'SET search_path TO "{schema}"'))

    event.listen(engine.sync_engine, "connect", on_connect)
    return engine


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The URL of the backend under test; PostgreSQL only once it is known to answer."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'ketenbus.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def engines(backend: str) -> AsyncIterator[EngineMaker]:
    """A factory of engines on one empty (not yet migrated) database; all disposed after."""
    made: list[AsyncEngine] = []
    schema = ""
    url = backend
    if url.startswith("sqlite"):

        def new() -> AsyncEngine:
            made.append(make_engine(url))
            return made[-1]

    else:
        schema = f"ketenbus_test_{uuid.uuid4().hex[:12]}"
        admin = make_engine(url)
        made.append(admin)
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))

        def new() -> AsyncEngine:
            made.append(_in_schema(make_engine(url), schema))
            return made[-1]

    try:
        yield new
    finally:
        if schema:
            async with made[0].begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        for engine in made:
            await engine.dispose()


@pytest.fixture
async def store(engines: EngineMaker) -> AsyncEngine:
    """A migrated, empty store (SQLite or PostgreSQL)."""
    engine = engines()
    await migrate(engine)
    return engine


@pytest.fixture
def make(registry: AgencyRegistry) -> EventFactory:
    return EventFactory(registry)


Record = Callable[[Sequence[CaseEvent[Any]]], None]


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store the CLI verbs read: KETENBUS_DATABASE_URL, a fresh SQLite file."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("KETENBUS_DATABASE_URL", url)
    return url


@pytest.fixture
def record(database: str, registry: AgencyRegistry) -> Record:
    """Apply events to `database` as the tracker would, from a synchronous test."""

    def apply(events: Sequence[CaseEvent[Any]]) -> None:
        async def run() -> None:
            engine = make_engine(database)
            try:
                await migrate(engine)
                await apply_batch(engine, registry, events)
            finally:
                await engine.dispose()

        asyncio.run(run())

    return apply
