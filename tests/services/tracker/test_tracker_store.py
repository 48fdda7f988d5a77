"""The store: engines for both backends, and migrations that are safe to repeat and race."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.engine import alembic_config, make_engine, migrate
from services.runtime.store.tables import case_custody, case_timeline, cases, metadata

EngineMaker = Callable[[], AsyncEngine]

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
AT_HEAD = (HEAD, sorted(["alembic_version", *metadata.tables]))
"""The schema after every migration: the newest revision and every declared table."""


async def _schema(engine: AsyncEngine) -> tuple[str | None, list[str]]:
    async with engine.connect() as connection:
        version = (
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        ).scalar()
        tables = await connection.run_sync(lambda sync: sorted(inspect(sync).get_table_names()))
    return version, tables


async def test_migrate_creates_the_tables_and_a_second_run_is_a_no_op(
    engines: EngineMaker,
) -> None:
    engine = engines()
    await migrate(engine)
    first = await _schema(engine)
    async with engine.begin() as connection:
        await connection.execute(insert(cases), [_case_row()])

    await migrate(engine)

    assert first == AT_HEAD
    assert await _schema(engine) == first
    async with engine.connect() as connection:
        assert (await connection.execute(select(cases.c.holder))).scalars().all() == ["uwv"]


async def test_concurrent_migrations_from_separate_engines_all_succeed(
    engines: EngineMaker,
) -> None:
    """Like several services starting at once against an empty database."""
    contenders = [engines() for _ in range(4)]

    await asyncio.gather(*(migrate(engine) for engine in contenders))

    assert await _schema(contenders[0]) == AT_HEAD


async def test_the_migrations_build_exactly_the_tables_the_code_declares(
    store: AsyncEngine,
) -> None:
    def differences(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with store.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_migrate_by_url_disposes_its_own_engine(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'by-url.db'}"

    await migrate(url)

    engine = make_engine(url)
    try:
        assert (await _schema(engine))[0] == HEAD
    finally:
        await engine.dispose()


async def test_make_engine_creates_the_sqlite_directory_and_runs_in_wal_mode(
    tmp_path: Path,
) -> None:
    database = tmp_path / "nested" / "dir" / "ketenbus.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        async with engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            busy = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
    finally:
        await engine.dispose()

    assert (mode, busy) == ("wal", 15_000)
    assert engine.dialect.driver == "aiosqlite"
    assert database.parent.is_dir()


async def test_times_come_back_aware_in_utc_on_every_backend(store: AsyncEngine) -> None:
    amsterdam = timezone(timedelta(hours=1))
    opened = datetime(2025, 3, 3, 10, 30, tzinfo=amsterdam)
    async with store.begin() as connection:
        await connection.execute(insert(cases), [_case_row(opened_at=opened)])

    async with store.connect() as connection:
        stored = (await connection.execute(select(cases.c.opened_at))).scalar_one()

    assert stored == datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
    assert stored.tzinfo == UTC


async def test_the_timeline_numbers_rows_in_insertion_order(store: AsyncEngine) -> None:
    case_id = uuid.uuid4()
    rows = [
        {
            "event_id": uuid.uuid4(),
            "case_id": case_id,
            "time": datetime(2025, 1, 1, tzinfo=UTC) - timedelta(minutes=n),
            "event_type": "case-context-updated",
            "agency": "uwv",
            "sequence": n + 1,
            "summary": "context updated",
            "applied": True,
        }
        for n in range(5)
    ]
    async with store.begin() as connection:
        await connection.execute(insert(case_timeline), rows)

    async with store.connect() as connection:
        order = (
            await connection.execute(select(case_timeline.c.sequence).order_by(case_timeline.c.id))
        ).scalars()

    assert list(order) == [1, 2, 3, 4, 5]


def _case_row(opened_at: datetime = datetime(2025, 1, 1, tzinfo=UTC)) -> dict[str, object]:
    return {
        "case_id": uuid.uuid4(),
        "category": "schulden",
        "holder": "uwv",
        "status": "open",
        "bounce_count": 0,
        "opened_at": opened_at,
        "updated_at": opened_at,
        "last_event_at": opened_at,
    }


async def test_upgrading_a_store_with_cases_gives_each_its_custody(engines: EngineMaker) -> None:
    """A store from before case custody existed: the router must know its cases' holders."""
    engine = engines()

    def to_0004(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), "0004")

    async with engine.begin() as connection:
        await connection.run_sync(to_0004)
        await connection.execute(insert(cases), [_case_row()])

    await migrate(engine)

    async with engine.connect() as connection:
        rows = (await connection.execute(select(case_custody))).all()
    assert [("uwv", ["uwv"], "open")] == [(r.holder, r.holders, r.status) for r in rows]
