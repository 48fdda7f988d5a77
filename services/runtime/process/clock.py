"""The one source of time for escalations, so a simulation can run it faster than real time.

Every deadline, idle limit and acknowledge window is measured on a `Clock`.
`SystemClock` is the wall clock; `ScaledClock` runs `speed` times faster, so a
region simulation can pass a day of escalations in minutes with the very same
code. This module is the only place that reads the system's time for them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Clock time: `now()` and `sleep()` agree with each other, whatever the speed."""

    def now(self) -> datetime:
        """The current clock time, aware, in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of clock time (not of real time)."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Clock time that runs `speed` times faster than real time, from `start`.

    now = start + elapsed real time * speed, measured on the monotonic clock
    so that a change of the system's time does not make it jump; sleep(s)
    takes s / speed real seconds.
    """

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        self.speed = speed
        self.start = (start or datetime.now(UTC)).astimezone(UTC)
        self._origin = time.monotonic()

    def now(self) -> datetime:
        elapsed = time.monotonic() - self._origin
        return self.start + timedelta(seconds=elapsed * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)
