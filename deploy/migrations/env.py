"""Alembic environment for the Ketenbus store (SQLite or PostgreSQL, async drivers).

Two ways in:
- `services.runtime.store.engine.migrate` opens the connection, takes the migration
  lock and passes the connection in `config.attributes["connection"]`;
- the `alembic` CLI (`-c deploy/migrations/alembic.ini`): the URL comes from
  `-x url=...`, else KETENBUS_DATABASE_URL, else the SQLite default, and this
  file opens the connection under the same lock.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from services.runtime.store import engine as store
from services.runtime.store.tables import metadata

config = context.config
if config.config_file_name is not None:  # the CLI; services keep their own logging
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from services.runtime.config.settings import Settings

    return Settings().database


def _run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    engine = store.make_engine(_url())
    try:
        async with store.migration_transaction(engine) as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    """`alembic upgrade head --sql`: print the DDL instead of running it."""
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
elif (shared := config.attributes.get("connection")) is not None:
    _run_migrations(shared)
else:
    asyncio.run(_run_standalone())
