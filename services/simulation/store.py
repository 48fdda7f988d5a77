"""Fresh stores for each run, so the verdict sees this run's cases and nothing else.

Unset KETENBUS_DATABASE_URL: SQLite files in a temporary directory, removed
after. PostgreSQL: a schema of the run's own, dropped after. A SQLite URL
given on purpose is used only when it holds no cases yet (it is never
emptied: it may be someone's data).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.errors import UserError
from services.runtime.store.engine import make_engine, migrate
from services.runtime.store.tables import case_timeline, cases


@dataclass(frozen=True)
class Stores:
    """The tracker's store (which the verdict reads) and the escalation service's."""

    tracker: AsyncEngine
    escalation: AsyncEngine


@asynccontextmanager
async def fresh_stores(url: str | None) -> AsyncIterator[Stores]:
    """Migrated, empty stores, disposed (and removed, if the run made them) afterwards.

    Without a URL, each service gets a SQLite file of its own. The two never write
    each other's tables, and SQLite has one write lock per file: sharing it would
    make each service wait for the other's transactions, which on PostgreSQL (row
    locks) they do not, and the verdict would measure SQLite, not the services.
    """
    if url is None:
        with tempfile.TemporaryDirectory(prefix="ketenbus-simulation-") as directory:
            files = [Path(directory) / f"{name}.db" for name in ("tracker", "escalation")]
            async with (
                _migrated(make_engine(f"sqlite+aiosqlite:///{files[0]}")) as tracker,
                _migrated(make_engine(f"sqlite+aiosqlite:///{files[1]}")) as escalation,
            ):
                yield Stores(tracker, escalation)
        return
    if make_url(url).get_backend_name() == "postgresql":
        async with _schema(url) as engine:
            yield Stores(engine, engine)
        return
    async with _migrated(make_engine(url)) as engine:
        if await timeline_rows(engine):
            raise UserError(
                "KETENBUS_DATABASE_URL holds cases already; the simulation needs a fresh store "
                "(unset it for a temporary one)"
            )
        yield Stores(engine, engine)


@asynccontextmanager
async def _migrated(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def _schema(url: str) -> AsyncIterator[AsyncEngine]:
    schema = f"ketenbus_simulation_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(url)

        def in_schema(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.run_async(lambda raw: raw.execute(f'SET search_path TO "{schema}"'))

        event.listen(engine.sync_engine, "connect", in_schema)
        try:
            async with _migrated(engine) as migrated:
                yield migrated
        finally:
            async with admin.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


async def timeline_rows(engine: AsyncEngine) -> int:
    """How many case-log events the tracker has recorded."""
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(case_timeline)) or 0)


async def holders(engine: AsyncEngine) -> dict[UUID, str]:
    """Every case's holder as the tracker recorded it."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(cases.c.case_id, cases.c.holder))
        return {row.case_id: row.holder for row in rows}
