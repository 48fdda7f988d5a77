"""The pause before a failed batch comes again: doubling from half a second to ten.

A consumer that raises has FastStream seek back, so the batch is redelivered
at once; without a pause, a store or broker outage would become a hot loop.
"""

from __future__ import annotations

import asyncio

FIRST_S = 0.5
LONGEST_S = 10.0


class Backoff:
    """Consecutive failures of one consumer, and how long to wait after the latest."""

    def __init__(self) -> None:
        self.failures = 0

    def next_pause(self) -> float:
        """Count a failure; the seconds to wait before the batch comes again."""
        self.failures += 1
        return min(FIRST_S * 2.0 ** (self.failures - 1), LONGEST_S)

    async def wait(self, pause: float) -> None:
        await asyncio.sleep(pause)

    def succeeded(self) -> None:
        self.failures = 0
