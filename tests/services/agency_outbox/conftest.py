"""The agency's own database for the outbox tests: SQLite in tmp_path, or a PostgreSQL schema.

`engine` runs each test on both backends (the tracker's `backend` fixture);
PostgreSQL is the tracker's test database (`postgres_url`: skipped with the
reason when it does not answer), in a schema of the test's own, dropped
afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import Column, MetaData, String, Table, Uuid, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.agency_outbox import create_outbox_table
from services.runtime.store import make_engine
from tests.services.tracker.conftest import _in_schema, backend, postgres_url

__all__ = ["backend", "postgres_url"]  # the tracker's fixtures, used here by name

business = MetaData()
files = Table(
    "benefit_files",
    business,
    Column("case_id", Uuid(), primary_key=True),
    Column("status", String(16), nullable=False),
)
"""The agency's business table: what its own transactions change beside the outbox."""

EngineMaker = Callable[[], AsyncEngine]


@pytest.fixture
async def engines(backend: str) -> AsyncIterator[EngineMaker]:
    """Engines on one agency database with its business table and the outbox table."""
    made: list[AsyncEngine] = []
    schema = "" if backend.startswith("sqlite") else f"ketenbus_outbox_{uuid.uuid4().hex[:12]}"
    admin = make_engine(backend)
    if schema:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))

    def new() -> AsyncEngine:
        engine = make_engine(backend)
        made.append(_in_schema(engine, schema) if schema else engine)
        return made[-1]

    try:
        first = new()
        async with first.begin() as connection:
            await connection.run_sync(business.create_all)
        await create_outbox_table(first)
        yield new
    finally:
        for engine in made:
            await engine.dispose()
        if schema:
            async with admin.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def engine(engines: EngineMaker) -> AsyncEngine:
    """One engine on that database."""
    return engines()
