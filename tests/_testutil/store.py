"""The store under test: PostgreSQL found (or not), engines on SQLite and per-test PostgreSQL
schemas, and the store the CLI verbs open themselves.

PostgreSQL: KETENBUS_TEST_POSTGRES_URL (default: the local `test` database). Each test
gets its own schema, dropped afterwards, so runs never see each other's rows.
Unreachable, the PostgreSQL cases are skipped with the reason, unless
KETENBUS_REQUIRE_POSTGRES=1 (CI), where that is a failure.

Fixtures (registered for every test by tests/conftest.py):

- `postgres_url`: the PostgreSQL URL, once it answers (session);
- `backend`: each test once per backend, `sqlite` and `postgres` (its URL);
- `engines`: a maker of engines on one empty database of that backend;
- `store`: a migrated, empty store on it;
- `database` and `record`: a fresh SQLite store named by KETENBUS_DATABASE_URL, for the
  CLI verbs, and a way to apply events to it from a synchronous test.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.envelope import CaseEvent
from contracts.registry import AgencyRegistry
from services.runtime.store.engine import make_engine, migrate
from services.tracker.ledger import apply_batch

POSTGRES_URL = os.environ.get(
    "KETENBUS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""The params of a fixture run on both backends (see `backend_url`)."""

EngineMaker = Callable[[], AsyncEngine]
Record = Callable[[Sequence[CaseEvent[Any]]], None]


async def postgres_problem(url: str) -> str | None:
    """None when PostgreSQL answers at `url`, else why not."""
    probe = create_async_engine(url, connect_args={"timeout": 5})
    try:
        async with probe.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no PostgreSQL"
        return f"PostgreSQL at {url} is unreachable: {type(exc).__name__}: {exc}"
    finally:
        await probe.dispose()
    return None


async def require_postgres(url: str = POSTGRES_URL) -> str:
    """`url` once PostgreSQL answers there; else skip with the reason (fail, if required)."""
    problem = await postgres_problem(url)
    if problem is not None:
        if os.environ.get("KETENBUS_REQUIRE_POSTGRES") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return url


@pytest.fixture(scope="session")
async def postgres_url() -> str:
    """The PostgreSQL URL, once it answers; skip (or fail, if required) when it does not."""
    return await require_postgres()


def in_schema(engine: AsyncEngine, schema: str) -> AsyncEngine:
    """Make every connection of `engine` work in `schema` (session-level search_path)."""

    def on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.run_async(lambda raw: raw.execute(f'SET search_path TO "{schema}"'))

    event.listen(engine.sync_engine, "connect", on_connect)
    return engine


@asynccontextmanager
async def fresh_engines(
    url: str, *, schema_prefix: str = "ketenbus_test", migrated: bool = False
) -> AsyncIterator[EngineMaker]:
    """A maker of engines on one new database, all disposed after.

    SQLite: the file at `url`. PostgreSQL: a new schema `<schema_prefix>_<random>` at
    `url`, dropped after. Empty, or `migrated` before the first engine is handed out.
    """
    schema = "" if url.startswith("sqlite") else f"{schema_prefix}_{uuid.uuid4().hex[:12]}"
    made: list[AsyncEngine] = []

    def new() -> AsyncEngine:
        engine = make_engine(url)
        made.append(in_schema(engine, schema) if schema else engine)
        return made[-1]

    admin = make_engine(url) if schema else None
    if admin is not None:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        if migrated:
            await migrate(new())
        yield new
    finally:
        for engine in made:
            await engine.dispose()
        if admin is not None:
            async with admin.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()


def backend_url(request: pytest.FixtureRequest, directory: Path) -> str:
    """The URL of the backend `request.param` names: a SQLite file under `directory`, or
    PostgreSQL once it is known to answer."""
    # Sync on purpose: an async fixture cannot resolve the async `postgres_url` by name.
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{directory / 'data' / 'ketenbus.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of the backend under test; PostgreSQL only once it is known to answer."""
    return backend_url(request, tmp_path)


@pytest.fixture
async def engines(backend: str) -> AsyncIterator[EngineMaker]:
    """A factory of engines on one empty (not yet migrated) database; all disposed after."""
    async with fresh_engines(backend) as new:
        yield new


@pytest.fixture
async def store(engines: EngineMaker) -> AsyncEngine:
    """A migrated, empty store (SQLite or PostgreSQL)."""
    engine = engines()
    await migrate(engine)
    return engine


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
