"""The services' database: engines for SQLite and PostgreSQL, and the migrations.

SQLite is the one-machine default and PostgreSQL the production store; both
run the same tables (`services.runtime.store.tables`) and the same Alembic history
(`deploy/migrations`). Writers take their lock when the transaction begins, so
concurrent writers and concurrent migrations wait for each other instead of
failing half-way.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, RootTransaction, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncTransaction,
    create_async_engine,
)

if TYPE_CHECKING:
    from alembic.config import Config


def migrations_directory(module: Path = Path(__file__)) -> Path:
    """Where the Alembic scripts are, for this module at `module`.

    A checkout has them beside the package; an installed package (the image) does
    not, and finds the copy its working directory holds (the Dockerfile copies
    deploy/ to /app).
    """
    beside = module.resolve().parents[3] / "deploy" / "migrations"
    return beside if beside.is_dir() else Path.cwd() / "deploy" / "migrations"


MIGRATIONS = migrations_directory()
"""The Alembic script directory."""

SQLITE_BUSY_TIMEOUT_MS = 15_000
"""How long a SQLite writer waits for another writer before giving up."""

SQLITE_LOCK_POLL_S = 0.001
"""How often a SQLite writer waiting for the write lock tries again."""

MIGRATION_LOCK = int.from_bytes(b"ketenbus", "big")
"""The PostgreSQL advisory lock key that serialises migrations ("ketenbus" as an int64)."""

_WRITER = "ketenbus_writer"
"""Execution option: on SQLite, begin with BEGIN IMMEDIATE (take the write lock now)."""

# Alembic announces each of its plugins at INFO on every run; only problems matter here.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def make_engine(url: str) -> AsyncEngine:
    """An async engine for a SQLite or PostgreSQL URL.

    A plain `sqlite:///` or `postgresql://` URL gets its async driver. For
    SQLite the file's directory is created, the database runs in WAL mode (the
    CLI reads while the tracker writes) with a busy timeout, and SQLAlchemy,
    not the sqlite3 module, emits BEGIN so transactions cover reads and DDL.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    if backend != "sqlite":
        return create_async_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed)
    event.listen(engine.sync_engine, "connect", _sqlite_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _: Any) -> None:
    # The busy timeout first: switching to WAL itself needs the lock.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    if not connection.get_execution_options().get(_WRITER, False):
        connection.exec_driver_sql("BEGIN")
        return
    connection.exec_driver_sql("PRAGMA busy_timeout = 0")  # `_begin_writing` waits
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction that will write: committed on success, rolled back on error.

    On SQLite it holds the write lock from its first statement, so what it read
    cannot change before it writes (two writers queue instead of one failing
    with "database is locked" half-way through).
    """
    async with engine.connect() as connection:
        await connection.execution_options(**{_WRITER: True})
        transaction = await _begin_writing(connection)
        try:
            yield connection
        except BaseException:
            if transaction.is_active:
                await transaction.rollback()
            raise
        await transaction.commit()


def sqlite_file_engine(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine of the standard library's driver on `engine`'s SQLite file,
    set up as `make_engine` sets up its connections; None for another database, and for
    an in-memory one, which no other connection sees."""
    url = engine.url
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):  # a URI, perhaps of a shared in-memory database
        return None
    local = create_engine(url.set(drivername="sqlite+pysqlite"), pool_size=1)
    event.listen(local, "connect", _sqlite_connect)
    event.listen(local, "begin", _sqlite_begin)
    return local


def begin_writing_in_thread(connection: Connection) -> RootTransaction:
    """`write_transaction`'s begin, for a connection of `sqlite_file_engine` in a thread."""
    connection.execution_options(**{_WRITER: True})
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return connection.begin()
        except OperationalError as exc:
            if not _locked_until(exc, deadline):
                raise
        time.sleep(SQLITE_LOCK_POLL_S)


def _locked_until(exc: OperationalError, deadline: float) -> bool:
    """Whether BEGIN IMMEDIATE failed only for the lock, with time left to try again."""
    return "locked" in str(exc.orig) and time.monotonic() < deadline


async def _begin_writing(connection: AsyncConnection) -> AsyncTransaction:
    # SQLite's busy handler sleeps longer and longer between its tries (up to 100 ms
    # each), so a writer behind another process's stream of short transactions can
    # miss the lock for a long time (stalls of 130-330 ms were measured with the router
    # and the tracker on one file). Here BEGIN IMMEDIATE gives up at once and is tried
    # again every millisecond from the event loop, until the busy timeout has passed.
    if connection.dialect.name != "sqlite":
        return await connection.begin()
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return await connection.begin()
        except OperationalError as exc:
            if not _locked_until(exc, deadline):
                raise
        await asyncio.sleep(SQLITE_LOCK_POLL_S)


@asynccontextmanager
async def migration_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction that no other migration runs beside.

    PostgreSQL: a transaction-scoped advisory lock, released at commit, so a
    second process waits and then finds the schema at head. SQLite: the write
    lock that `write_transaction` takes does the same.
    """
    async with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        yield connection


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration, built in code; `connection` is used by env.py if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade_head(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


async def migrate(engine_or_url: AsyncEngine | str) -> None:
    """Bring the database to the newest schema; a no-op when it is there already.

    Safe to run from several processes at once: each waits for the migration
    lock and then reads the schema version another may just have written.
    """
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        # Alembic keeps its migration context in module globals, so two upgrades
        # in one process must not interleave; the database lock covers processes.
        async with _process_lock(), migration_transaction(engine) as connection:
            await connection.run_sync(_upgrade_head)
    finally:
        if isinstance(engine_or_url, str):
            await engine.dispose()


async def migrated_engine(url: str) -> AsyncEngine:
    """An engine on the database at `url`, migrated; disposed again if migrating fails."""
    engine = make_engine(url)
    try:
        await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine


_PROCESS_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _process_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _PROCESS_LOCKS.get(loop)
    if lock is None:
        lock = _PROCESS_LOCKS[loop] = asyncio.Lock()
    return lock
