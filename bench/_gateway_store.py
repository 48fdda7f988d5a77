"""The gateway benchmarks' store: a temporary SQLite file, or a PostgreSQL database of their own."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.errors import UserError
from services.runtime.store.engine import make_engine, migrate

DATABASES = ("sqlite", "postgresql")
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_PREFIX = "bench_gateway"


@contextlib.asynccontextmanager
async def bench_store(
    database: str, directory: Path, name: str
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A migrated, empty store and its URL: a SQLite file in `directory`, or a PostgreSQL
    database on 127.0.0.1 made for the run and dropped after (even if the run fails)."""
    if database not in DATABASES:
        raise ValueError(f"database must be one of {', '.join(DATABASES)}")
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / f'{name}.db'}"
        engine = make_engine(url)
        try:
            await migrate(engine)
            yield url, engine
        finally:
            await engine.dispose()
        return
    db = f"{POSTGRES_PREFIX}_{name.replace('-', '_')}"
    await _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', f'CREATE DATABASE "{db}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
    engine = make_engine(url)
    try:
        await migrate(engine)
        yield url, engine
    finally:
        await engine.dispose()
        await _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


async def _admin(*statements: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise UserError(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}") from None
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()
