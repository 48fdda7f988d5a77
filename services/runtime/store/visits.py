"""Short visits to the store from a busy event loop, each at the least cost its driver allows.

A visit is a function of one synchronous `Connection`, run in one transaction:
`read` rolls it back, `write` commits it (on SQLite holding the write lock
from its start, as `write_transaction` does).

Through aiosqlite every statement, fetch, `BEGIN` and `COMMIT` is a hand-over
to the driver's thread and back (a wake-up of the event loop, a future), and
under load those hand-overs, not SQLite, are what a visit costs: 1.0-1.3 ms of
the process's CPU for a visit of one to twenty rows (docs/performance.md). So
on a SQLite file a visit is one call into a thread of its own that holds one
connection of the standard library's driver (`sqlite_file_engine`). On
PostgreSQL, where asyncpg answers on the event loop, and on an in-memory
SQLite database, the visit runs on the service's own engine
(`AsyncConnection.run_sync`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.engine import (
    begin_writing_in_thread,
    sqlite_file_engine,
    write_transaction,
)

T = TypeVar("T")


class StoreVisits:
    """Visits to the store of `engine`; `close` when done (the engine stays the caller's)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._local = sqlite_file_engine(engine)
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="ketenbus-store")
            if self._local is not None
            else None
        )

    async def read(self, work: Callable[[Connection], T]) -> T:
        """`work`'s result, its transaction rolled back after it."""
        if self._thread is None:
            async with self._engine.connect() as connection:
                return await connection.run_sync(work)
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._read, work)

    async def write(self, work: Callable[[Connection], T]) -> T:
        """`work`'s result, once its transaction is committed; rolled back if it raises."""
        if self._thread is None:
            async with write_transaction(self._engine) as connection:
                return await connection.run_sync(work)
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._write, work)

    def close(self) -> None:
        """Wait for the visit in hand, then close the thread's connection."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._local is not None:
            self._local.dispose()

    def _read(self, work: Callable[[Connection], T]) -> T:
        assert self._local is not None
        with self._local.connect() as connection:
            return work(connection)  # closing rolls back what the first statement began

    def _write(self, work: Callable[[Connection], T]) -> T:
        assert self._local is not None
        with self._local.connect() as connection, begin_writing_in_thread(connection):
            return work(connection)
