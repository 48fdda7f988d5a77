"""SQLite writers on one file: a waiting writer gets the lock soon; a timeout still ends a wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store import engine as store
from services.runtime.store.engine import make_engine, write_transaction

HOLD_S = 0.02
"""How long each of the busy writer's transactions holds the write lock."""


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    # Two engines, two pools of connections: as two processes on one file.
    url = f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"
    busy, waiting = make_engine(url), make_engine(url)
    async with write_transaction(busy) as connection:
        await connection.execute(text("CREATE TABLE marks (writer TEXT)"))
    yield busy, waiting
    await busy.dispose()
    await waiting.dispose()


async def _stream(engine: AsyncEngine, count: int, done: list[int], began: asyncio.Event) -> None:
    """`count` short transactions one after the other, each holding the lock HOLD_S."""
    for n in range(count):
        async with write_transaction(engine) as connection:
            await connection.execute(text("INSERT INTO marks VALUES ('busy')"))
            began.set()
            await asyncio.sleep(HOLD_S)
        done.append(n)


async def test_a_writer_behind_a_stream_of_short_transactions_gets_the_lock_soon(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    # SQLite's own busy handler sleeps up to 100 ms between tries and mostly finds the
    # lock taken again: the waiting writer used to get in only when the stream ended.
    # Counted in the stream's transactions, not in seconds, which a loaded machine
    # stretches for both alike.
    busy, waiting = engines
    done: list[int] = []
    began = asyncio.Event()
    stream = asyncio.create_task(_stream(busy, 40, done, began))
    await began.wait()
    async with write_transaction(waiting) as connection:
        behind = len(done)
        await connection.execute(text("INSERT INTO marks VALUES ('waiting')"))
    await stream

    assert behind < 20  # within the first half of the stream's 40


async def test_a_writer_still_gives_up_after_the_busy_timeout(
    engines: tuple[AsyncEngine, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    busy, waiting = engines
    monkeypatch.setattr(store, "SQLITE_BUSY_TIMEOUT_MS", 200)
    async with write_transaction(busy):
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked"):
            async with write_transaction(waiting):
                pass
        waited = time.monotonic() - started

    assert 0.2 <= waited < 2.0


async def test_a_failed_write_is_rolled_back_and_the_lock_released(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    busy, waiting = engines
    with pytest.raises(RuntimeError):
        await _failing_write(busy)
    async with write_transaction(waiting) as connection:
        marks = (await connection.execute(text("SELECT writer FROM marks"))).scalars().all()

    assert [] == marks


async def _failing_write(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as connection:
        await connection.execute(text("INSERT INTO marks VALUES ('undone')"))
        raise RuntimeError("the write fails")
