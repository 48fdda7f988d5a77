"""The escalation board's live feed: one poller of the `escalations` table per console.

Every `interval` seconds, while anyone follows, it reads the open escalations
(and, once, each that was open last time and is not now: how it ended) and
hands every row that differs from the last read to each follower's queue. A
follower starts from the poller's own last read (`Follower.snapshot`), so
nothing falls between its snapshot and its first change. The poller starts
with the first follower, stops by itself after the last one leaves, and for
good when the console closes (`Console.on_close`). A follower that does not
keep up is dropped (its queue ends with None); the browser reconnects and
starts from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from services.console._escalation_rows import Item, is_open, open_rows, rows_by_id
from services.runtime.observability.logging import get_logger

INTERVAL_S = 1.0
"""Seconds between two reads of the table."""

QUEUE_SIZE = 1000
"""Changes a follower may fall behind by before it is dropped."""

log = get_logger("ketenbus.console")


class FeedClosed(RuntimeError):
    """The console is shutting down, or its store did not answer."""


@dataclass(eq=False)  # each follower is its own: kept in a set by identity
class Follower:
    """One open stream: the open escalations when it joined, then each change."""

    snapshot: list[Item]
    queue: asyncio.Queue[Item | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, item: Item | None) -> bool:
        """Queue a change (None: the end); False when the follower has fallen behind."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        """Drop what is queued and end the stream: the client reconnects to a fresh snapshot."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class EscalationFeed:
    """Polls the table for everyone and fans each change out to every follower."""

    def __init__(self, engine: AsyncEngine, *, interval: float = INTERVAL_S) -> None:
        self.engine = engine
        self.interval = interval
        self._open: dict[UUID, Item] = {}
        self._followers: set[Follower] = set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @contextlib.asynccontextmanager
    async def follow(self) -> AsyncIterator[Follower]:
        """A follower for as long as the block runs (FeedClosed if there is no feed)."""
        if self._closed:
            raise FeedClosed("the console is shutting down")
        async with self._lock:
            if self._task is None:
                # Nobody followed: read afresh rather than start from a stale view.
                try:
                    await self._read()
                except Exception as exc:
                    raise FeedClosed(f"the store did not answer ({type(exc).__name__})") from exc
                self._task = asyncio.create_task(self._run(), name="console-escalation-feed")
            follower = Follower(snapshot=list(self._open.values()))
            self._followers.add(follower)
        try:
            yield follower
        finally:
            self._followers.discard(follower)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            async with self._lock:
                if not self._followers or self._closed:
                    self._task = None  # under the lock: the next follower starts a new poller
                    return
                try:
                    changes = await self._read()
                except Exception as exc:  # noqa: BLE001 - the feed outlives one failed read
                    log.warning("escalation feed read failed", error=type(exc).__name__)
                    continue
            for follower in list(self._followers):
                if not all(follower.offer(item) for item in changes):
                    self._followers.discard(follower)
                    follower.end()

    async def _read(self) -> list[Item]:
        """Read the table; remember the open ones; the rows that changed since last time."""
        current = {UUID(item["escalation_id"]): item for item in await open_rows(self.engine)}
        gone = set(self._open) - set(current)
        ended = await rows_by_id(self.engine, gone) if gone else []
        changes = [item for key, item in current.items() if self._open.get(key) != item]
        changes += [item for item in ended if not is_open(item)]
        self._open = current
        return changes

    async def close(self) -> None:
        self._closed = True
        for follower in list(self._followers):
            follower.end()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
