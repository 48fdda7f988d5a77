"""Failed console logins, counted per user name and per client address, in a moving window.

Guessing a password costs a try per `KETENBUS_CONSOLE_LOGIN_WINDOW_S` /
`KETENBUS_CONSOLE_LOGIN_ATTEMPTS` seconds per name, and a client trying many
names at most four times that. A successful login clears its name's count (not
its address's: one right password must not reopen a spray). The counts live in
the console process: each replica counts its own, so behind a load balancer
that spreads the tries, the bound is the replicas' number times as loose.
Names are kept by their hash: a mistyped password in the name field stays out
of memory dumps as much as out of the logs.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

CLIENT_FACTOR = 4
"""A client address may fail this many times as often as one name may."""


class LoginGuard:
    def __init__(self, attempts: int, window_s: int) -> None:
        self.per_name = RateLimitItemPerSecond(attempts, window_s)
        self.per_client = RateLimitItemPerSecond(attempts * CLIENT_FACTOR, window_s)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def _keys(self, name: str, client: str) -> list[tuple[RateLimitItemPerSecond, str]]:
        digest = hashlib.sha256(name.casefold().encode()).hexdigest()
        return [(self.per_name, f"name:{digest}"), (self.per_client, f"client:{client}")]

    async def wait_s(self, name: str, client: str) -> int | None:
        """Seconds until `name` may be tried again from `client`; None: it may now."""
        for item, key in self._keys(name, client):
            if not await self.limiter.test(item, key):
                stats = await self.limiter.get_window_stats(item, key)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def failed(self, name: str, client: str) -> None:
        for item, key in self._keys(name, client):
            await self.limiter.hit(item, key)

    async def succeeded(self, name: str, client: str) -> None:
        item, key = self._keys(name, client)[0]
        await self.limiter.clear(item, key)
