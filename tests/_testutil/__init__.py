"""The shared test helpers: one module for every suite, instead of copied conftests.

- `store`: PostgreSQL found (or skipped with the reason), engines on SQLite and per-test
  PostgreSQL schemas, the CLI's store;
- `events`: the `EventFactory` of the tracker, router, escalation and simulation tests;
- `kafka`: plain aiokafka clients, as an agency system or operator tool would use them;
- `webhooks`: the gateway's webhook rows (subscriptions, deliveries, attempts), made
  straight in a store; used as a module (`from tests._testutil import webhooks`).

tests/conftest.py registers this package as a plugin (`pytest_plugins`), so its fixtures
(`postgres_url`, `backend`, `engines`, `store`, `database`, `record`, `make`, `producer`)
serve every test; a conftest or module overrides one by defining its own. Helpers are
imported from here: `from tests._testutil import EventFactory, read_until`.
"""

from tests._testutil.events import (
    PERSONAL_NAME,
    REGIONAL_TEAM,
    START,
    TEAM_LEADS,
    UNKNOWN_OIN,
    EventFactory,
    hardship,
    make,
)
from tests._testutil.kafka import (
    event_id,
    headers_of,
    keyed,
    produce,
    producer,
    raw_event,
    read_to_end,
    read_until,
    settle,
    start_group_at_end,
)
from tests._testutil.store import (
    BACKENDS,
    POSTGRES_URL,
    EngineMaker,
    Record,
    backend,
    backend_url,
    database,
    engines,
    fresh_engines,
    in_schema,
    postgres_problem,
    postgres_url,
    record,
    require_postgres,
    store,
)

__all__ = [
    "BACKENDS",
    "PERSONAL_NAME",
    "POSTGRES_URL",
    "REGIONAL_TEAM",
    "START",
    "TEAM_LEADS",
    "UNKNOWN_OIN",
    "EngineMaker",
    "EventFactory",
    "Record",
    "backend",
    "backend_url",
    "database",
    "engines",
    "event_id",
    "fresh_engines",
    "hardship",
    "headers_of",
    "in_schema",
    "keyed",
    "make",
    "postgres_problem",
    "postgres_url",
    "produce",
    "producer",
    "raw_event",
    "read_to_end",
    "read_until",
    "record",
    "require_postgres",
    "settle",
    "start_group_at_end",
    "store",
]
