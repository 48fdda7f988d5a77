"""One timer queue for every simulated actor, in clock time.

Thousands of cases each wait for their next step; one heap and one task keep
that cheap (instead of a sleeping task per step) and let every wait run on
the same clock the services use, so sped-up time is sped up for all alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from services.runtime.observability.logging import get_logger
from services.runtime.process.clock import Clock

log = get_logger("ketenbus.simulation")

Action = Callable[[], Awaitable[None]]


class Scheduler:
    """Runs actions at clock times; an action that fails is logged and counted, not fatal."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.failures = 0
        self._heap: list[tuple[datetime, int, Action]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()

    def at(self, when: datetime, action: Action) -> None:
        heapq.heappush(self._heap, (when, next(self._order), action))
        self._changed.set()

    def after(self, seconds: float, action: Action) -> None:
        self.at(self.clock.now() + timedelta(seconds=seconds), action)

    @property
    def waiting(self) -> int:
        return len(self._heap)

    async def run(self) -> None:
        """Until cancelled: sleep to the next due action (or a new earlier one), run what is due."""
        while True:
            self._changed.clear()
            now = self.clock.now()
            while self._heap and self._heap[0][0] <= now:
                _, _, action = heapq.heappop(self._heap)
                try:
                    await action()
                except Exception:
                    self.failures += 1
                    log.exception("simulated action failed")
            wait = (self._heap[0][0] - now).total_seconds() if self._heap else 3600.0
            if wait > 0:
                await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        woken = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, woken):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
