"""PostgreSQL for the thousand-case region simulation: the shared `postgres_url`.

Why PostgreSQL: under a thousand cases the escalation service keeps the
verdict's one clock second (200 ms of real time at speed 5) on PostgreSQL,
but not on SQLite, whose one write lock its case-log consumer holds across a
Kafka round trip while its timer loop waits (late by up to 1-2 s of real
time). Unreachable, the run is skipped with the reason, unless
KETENBUS_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def simulation_postgres(postgres_url: str) -> str:
    return postgres_url
