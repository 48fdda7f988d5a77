"""PostgreSQL for the thousand-case region simulation, found as the tracker tests find it.

Why PostgreSQL: under a thousand cases the escalation service keeps the
verdict's one clock second (200 ms of real time at speed 5) on PostgreSQL,
but not on SQLite, whose one write lock its case-log consumer holds across a
Kafka round trip while its timer loop waits (late by up to 1-2 s of real
time). Unreachable, the run is skipped with the reason, unless
KETENBUS_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_URL = os.environ.get(
    "KETENBUS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
async def simulation_postgres() -> str:
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
