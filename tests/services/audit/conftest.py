"""The audit store's fixtures: the tracker's migrated stores on SQLite and on PostgreSQL.

`store` is a migrated, empty database; `engines` makes more engines on the
same database (a second writer). PostgreSQL cases are skipped with the reason
when it is unreachable, unless KETENBUS_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

from tests.services.tracker.conftest import backend, engines, postgres_url, store

__all__ = ["backend", "engines", "postgres_url", "store"]  # the tracker's fixtures, by name
