"""The router benchmarks' store: a SQLite file, or a PostgreSQL database made for a run.

A router in its own process takes its store as a URL, so a run on PostgreSQL
gets a database of its own (not a schema) on the server given, dropped after.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from services.runtime.errors import UserError

STORES = ("sqlite", "postgres")
DEFAULT_POSTGRES = os.environ.get(
    "KETENBUS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
"""The PostgreSQL server (and a database on it to connect to) the runs' databases are made on."""


def _admin(server: str) -> AsyncEngine:
    """An engine on `server` for CREATE and DROP DATABASE; UserError if it is no PostgreSQL."""
    url = make_url(server)
    if url.get_backend_name() != "postgresql":
        raise UserError(f"--database-url must be a PostgreSQL URL, not {url.get_backend_name()}")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+asyncpg")
    return create_async_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"timeout": 5}
    )


async def _reachable(admin: AsyncEngine) -> None:
    """UserError, saying why, unless PostgreSQL answers."""
    try:
        async with admin.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect: not reachable
        shown = admin.url.render_as_string(hide_password=True)
        why = f"{type(exc).__name__}: {exc}"
        raise UserError(f"PostgreSQL at {shown} is not reachable: {why}") from None


@contextlib.asynccontextmanager
async def _postgres_database(server: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on `server` (its URL); dropped afterwards."""
    admin = _admin(server)
    url = admin.url
    name = f"ketenbus_bench_router_{uuid.uuid4().hex[:12]}"
    try:
        await _reachable(admin)
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@contextlib.asynccontextmanager
async def router_store(kind: str, server: str, directory: Path, label: str) -> AsyncIterator[str]:
    if kind == "postgres":
        async with _postgres_database(server) as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{directory / f'{label}.db'}"


async def check_reachable(server: str) -> None:
    """UserError, saying why, unless PostgreSQL answers at `server`."""
    admin = _admin(server)
    try:
        await _reachable(admin)
    finally:
        await admin.dispose()
