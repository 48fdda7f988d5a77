"""The overview's live feed: one sampler per console, shared by every page and stream.

A snapshot reads the broker and the store, so it is taken once per interval
for everyone, never per subscriber. The sampler starts with the first reader,
stops by itself once nobody has read for `IDLE_S` (an idle console costs the
broker nothing) and for good when the console closes (`Console.on_close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.requests import Request

from services.console._pages import kafka_settings
from services.console._snapshot import OverviewSource
from services.console.state import console_of
from services.runtime.observability.logging import get_logger

INTERVAL_S = 2.0
"""Seconds between snapshots."""

IDLE_S = 30.0
"""The sampler stops after this long without a reader or a subscriber."""

log = get_logger("ketenbus.console")


class SnapshotSource(Protocol):
    """What takes one snapshot (`_snapshot.OverviewSource`: the broker and the store)."""

    async def take(self) -> dict[str, Any]: ...


class NoSnapshot(RuntimeError):
    """No snapshot was taken in time (the sampler is stuck on the broker or the store)."""


class OverviewSampler:
    """Takes a snapshot every `interval` seconds while anyone reads, and hands out the latest."""

    def __init__(self, source: SnapshotSource, *, interval: float = INTERVAL_S) -> None:
        self.source = source
        self.interval = interval
        self.version = 0
        self.snapshot: dict[str, Any] | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._subscribers = 0
        self._last_read = time.monotonic()
        self._closed = False

    def _ensure_running(self) -> None:
        self._last_read = time.monotonic()
        if self._closed:
            raise NoSnapshot("the console is shutting down")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="console-overview-sampler")

    async def _run(self) -> None:
        while self._subscribers or time.monotonic() - self._last_read < IDLE_S:
            started = time.monotonic()
            try:
                snapshot = await self.source.take()
            except Exception as exc:  # noqa: BLE001 - the sampler outlives one failed snapshot
                log.warning("overview snapshot failed", error=type(exc).__name__)
            else:
                async with self._changed:
                    self.snapshot, self.version = snapshot, self.version + 1
                    self._changed.notify_all()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def next_after(self, version: int, timeout: float) -> tuple[int, dict[str, Any]]:
        """The first snapshot newer than `version` (0: any), waiting at most `timeout` seconds."""
        self._ensure_running()
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version > version), timeout
                )
            except TimeoutError:
                raise NoSnapshot(f"no overview snapshot in {timeout:g} s") from None
            assert self.snapshot is not None
            return self.version, self.snapshot

    async def latest(self, timeout: float) -> dict[str, Any]:
        """The latest snapshot; waits for the first one if none was taken yet."""
        return (await self.next_after(0, timeout))[1]

    @contextlib.asynccontextmanager
    async def subscribed(self) -> AsyncIterator[None]:
        """Keeps the sampler running for as long as a stream is open."""
        self._subscribers += 1
        try:
            yield
        finally:
            self._subscribers -= 1
            self._last_read = time.monotonic()

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def sampler_of(request: Request) -> OverviewSampler:
    """The console's one sampler, made on first use and closed with the console."""
    console = console_of(request)
    return console.shared(
        "overview_sampler",
        lambda: OverviewSampler(
            OverviewSource(kafka_settings(console), console.engine, console.registry)
        ),
    )
