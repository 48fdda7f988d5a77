"""The store fixtures (SQLite and PostgreSQL) for the runtime's own tests of the store."""

from tests.services.tracker.conftest import backend, engines, postgres_url, store

__all__ = ["backend", "engines", "postgres_url", "store"]  # the tracker's fixtures, by name
