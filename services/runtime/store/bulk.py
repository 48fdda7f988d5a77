"""Many rows written with one statement, each value converted once by a plain function.

SQLAlchemy's executemany builds a parameter dict per row and runs every value
through its type's bind processors; for the router, which writes several rows
per event (audit records, seen event ids, custody), that costs more than the
database's own work. Here the conversion of each column is chosen once per
statement from the column's type and the dialect, and the driver's executemany
gets plain tuples through `AsyncConnection.exec_driver_sql`, so the statement
runs in the caller's transaction and its errors come as SQLAlchemy's
(`IntegrityError` for a duplicate key), as through `insert()`.

Values are stored exactly as SQLAlchemy stores them (the rows read back the
same through `services.runtime.store.tables`): on SQLite a `Uuid` as 32 hex digits, a
`UtcDateTime` as naive UTC text with microseconds, JSON as `json.dumps` text;
on PostgreSQL (asyncpg) a `Uuid` and an aware UTC datetime as they are, JSON as
text. Column types other than these and plain strings and integers are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Integer, String, Table, Text, Uuid
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.store.tables import UtcDateTime

Convert = Callable[[Any], Any]

_JSON = json.JSONEncoder()
"""`json.dumps` with its defaults, as SQLAlchemy serialises JSON, without its per-call setup."""


def insert_new(dialect_name: str, table: Table) -> Any:
    """An INSERT into `table` that skips a row whose key is there already (PostgreSQL, SQLite)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


async def insert_rows(
    connection: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Insert `rows`, each the values of `columns` in that order, in one executemany."""
    if not rows:
        return
    dialect = connection.dialect
    statement, converts = _insert(dialect.name, dialect.paramstyle, table, tuple(columns))
    await connection.exec_driver_sql(statement, _converted(rows, converts))


async def update_rows(
    connection: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    key: str,
    rows: Sequence[Sequence[Any]],
) -> None:
    """Set `columns` of the row whose `key` is each row's last value, in one executemany."""
    if not rows:
        return
    dialect = connection.dialect
    statement, converts = _update(dialect.name, dialect.paramstyle, table, tuple(columns), key)
    await connection.exec_driver_sql(statement, _converted(rows, converts))


def _converted(rows: Sequence[Sequence[Any]], converts: tuple[Convert | None, ...]) -> list[Any]:
    active = [(index, convert) for index, convert in enumerate(converts) if convert is not None]
    if not active:
        return [tuple(row) for row in rows]
    out = []
    for row in rows:
        values = list(row)
        for index, convert in active:
            value = values[index]
            if value is not None:
                values[index] = convert(value)
        out.append(tuple(values))
    return out


Statement = tuple[str, tuple[Convert | None, ...]]
"""A statement's text and the conversion of each of its parameters (None: as it is)."""


@cache
def _insert(backend: str, style: str, table: Table, columns: tuple[str, ...]) -> Statement:
    names = ", ".join(_quote(name) for name in columns)
    marks = ", ".join(_placeholder(style, index) for index in range(len(columns)))
    # Names from the store's own `Table`s, never from data: nothing to inject.
    statement = f"INSERT INTO {_quote(table.name)} ({names}) VALUES ({marks})"  # noqa: S608
    return statement, tuple(_convert(backend, table, name) for name in columns)


@cache
def _update(
    backend: str, style: str, table: Table, columns: tuple[str, ...], key: str
) -> Statement:
    sets = ", ".join(
        f"{_quote(name)} = {_placeholder(style, index)}" for index, name in enumerate(columns)
    )
    where = f"{_quote(key)} = {_placeholder(style, len(columns))}"
    statement = f"UPDATE {_quote(table.name)} SET {sets} WHERE {where}"  # noqa: S608
    return statement, tuple(_convert(backend, table, name) for name in (*columns, key))


def _quote(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain SQL name: {name!r}")
    # Always quoted (`offset` is a keyword); the store's names are lower case, as
    # SQLite and PostgreSQL both keep quoted names as written.
    return f'"{name}"'


def _placeholder(style: str, index: int) -> str:
    if style == "qmark":
        return "?"
    if style == "numeric_dollar":
        return f"${index + 1}"
    raise NotImplementedError(f"no placeholders for paramstyle {style!r}")


def _convert(backend: str, table: Table, name: str) -> Convert | None:
    kind = table.c[name].type
    sqlite = backend == "sqlite"
    if isinstance(kind, UtcDateTime):
        return _sqlite_time if sqlite else _utc
    if isinstance(kind, Uuid):
        return _hex if sqlite else None
    if isinstance(kind, JSON):
        return _JSON.encode
    if isinstance(kind, (String, Text, Integer)):
        return None
    raise TypeError(f"{table.name}.{name}: no plain conversion for {kind!r}")


def _hex(value: UUID) -> str:
    return value.hex


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("the store keeps aware datetimes only")
    return value.astimezone(UTC)


@lru_cache(maxsize=256)
def _sqlite_time(value: datetime) -> str:
    # Cached: a batch's rows mostly share one time (its `now`), and formatting it
    # costs more than looking it up. Equal instants are equal keys and equal text.
    # SQLAlchemy's SQLite DATETIME storage format: always six digits of microseconds.
    return _utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")
