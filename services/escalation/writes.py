"""The service's write transactions, queued inside the process when the store is SQLite.

SQLite has one write lock for the whole database, and a writer that finds it
taken polls for it (the busy handler sleeps 1, 2, 5 ... up to 100 ms between
tries). With the consumer, the timer loop's claims and several rounds all
writing, the lock sat free while the waiters slept, and timers fired seconds
late under load. Taking an asyncio lock first queues this process's writers
in order, so each gets the database lock the moment the one before it commits;
other processes (the router) still meet SQLite's own locking. On PostgreSQL
writers lock rows, not the database, and go straight to `write_transaction`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.runtime.store.engine import write_transaction

_queues: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`write_transaction`, after this process's earlier writers on SQLite."""
    if engine.dialect.name != "sqlite":
        async with write_transaction(engine) as connection:
            yield connection
        return
    queue = _queues.setdefault(engine, asyncio.Lock())
    async with queue, write_transaction(engine) as connection:
        yield connection
