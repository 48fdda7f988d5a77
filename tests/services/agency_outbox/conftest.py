"""The agency's own database for the outbox tests: SQLite in tmp_path, or a PostgreSQL schema.

`engine` runs each test on both backends (the shared `backend` fixture of
tests/_testutil); PostgreSQL is the shared test database (`postgres_url`:
skipped with the reason when it does not answer), in a schema of the test's
own, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, MetaData, String, Table, Uuid
from sqlalchemy.ext.asyncio import AsyncEngine

from services.agency_outbox import create_outbox_table
from tests._testutil import EngineMaker, fresh_engines

business = MetaData()
files = Table(
    "benefit_files",
    business,
    Column("case_id", Uuid(), primary_key=True),
    Column("status", String(16), nullable=False),
)
"""The agency's business table: what its own transactions change beside the outbox."""


@pytest.fixture
async def engines(backend: str) -> AsyncIterator[EngineMaker]:
    """Engines on one agency database with its business table and the outbox table."""
    async with fresh_engines(backend, schema_prefix="ketenbus_outbox") as new:
        first = new()
        async with first.begin() as connection:
            await connection.run_sync(business.create_all)
        await create_outbox_table(first)
        yield new


@pytest.fixture
def engine(engines: EngineMaker) -> AsyncEngine:
    """One engine on that database."""
    return engines()
