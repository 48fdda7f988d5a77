"""The fault suite's fixtures: a fresh PostgreSQL database per test, and a results record.

PostgreSQL must answer (POSTGRES_ADMIN_URL); when it does not, the tests are skipped with
the reason, unless KETENBUS_REQUIRE_POSTGRES=1 (CI), where that is a failure.

Each test records what it measured (counts, recovery times) with `fault_results`: the
records are printed, written to `faults-results.jsonl` in pytest's base temporary
directory, and listed in the terminal summary, so a `-q` run shows them too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests._testutil import require_postgres
from tests.faults.harness import POSTGRES_ADMIN_URL, fresh_database

RESULTS = pytest.StashKey[list[dict[str, Any]]]()


@pytest.fixture(scope="session")
async def postgres_available() -> None:
    await require_postgres(POSTGRES_ADMIN_URL)


@pytest.fixture
async def database_url(postgres_available: None) -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database for this test; dropped after it."""
    async with fresh_database() as url:
        yield url


@pytest.fixture
def fault_results(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[dict[str, Any]], None]:
    """Record one test's measurements (see the module docstring)."""
    path = tmp_path_factory.getbasetemp() / "faults-results.jsonl"

    def record(result: dict[str, Any]) -> None:
        entry = {"test": request.node.name, **result}
        line = json.dumps(entry, sort_keys=True, default=str)
        print(line)
        with path.open("a", encoding="utf-8") as file:
            file.write(line + "\n")
        request.config.stash.setdefault(RESULTS, []).append(entry)

    return record


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS, [])
    if not results:
        return
    terminalreporter.section("fault suite measurements")
    for entry in results:
        terminalreporter.write_line(json.dumps(entry, sort_keys=True, default=str))
