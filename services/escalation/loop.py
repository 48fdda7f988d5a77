"""The timer loop: wake when a timer falls due, claim it, hand it to a round, sleep again.

Claiming is quick (one UPDATE); producing and recording (a `Rounds.run`)
take longer, so they run in the background, up to MAX_ROUNDS at once, and
the loop goes straight back to the clock: a timer falling due while another
round is producing is claimed, and its time read, when it falls due, not
after. A round's cases are left out of later claims until it ends, so one
case's timers are never worked on by two rounds at once.

Between claims the loop sleeps on the clock until the next due timer, but
never more than MAX_PAUSE_S of real time, so it sees the timers other
instances set; this instance's consumer and a finished round wake it early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from services.escalation import timers
from services.escalation.consumer import Publish
from services.escalation.levels import Context
from services.escalation.model import Timer
from services.escalation.round import Rounds
from services.escalation.workspace import log
from services.runtime.process.clock import Clock, SystemClock

BATCH = 200
"""Timers per claim: one produce wave and one transaction for all of them."""

MAX_ROUNDS = 8
"""Rounds producing and recording at once."""

MAX_PAUSE_S = 1.0
"""Real seconds between two looks at the store, at most."""

MIN_PAUSE_S = 0.01
"""Real seconds to wait when a timer is due but could not be claimed (never a hot loop)."""


class TimerLoop:
    def __init__(
        self,
        engine: AsyncEngine,
        context: Callable[[], Context],
        publish: Publish,
        *,
        clock: Clock,
        instance_id: str,
        lease_s: float,
        ready: Callable[[], bool],
    ) -> None:
        self.engine = engine
        self.context = context
        self.clock = clock
        self.instance_id = instance_id
        self.lease = timedelta(seconds=lease_s)
        self.ready = ready
        self.rounds = Rounds(engine, publish, instance_id)
        self.wall = SystemClock()
        """Leases are real time: they measure how long an instance may take."""
        self._busy: dict[asyncio.Task[None], set[UUID]] = {}
        """The rounds in flight and the cases each works on."""
        self._wake = asyncio.Event()
        self._target: datetime | None = None
        """The due time the loop sleeps until; None: it is not sleeping on a timer."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def fired(self) -> int:
        """Timers this instance fired and recorded."""
        return self.rounds.fired

    def wake(self, due: datetime | None = None) -> None:
        """Look at the store now: a timer was set, due at `due` (None: unknown).

        A timer due no earlier than what the loop sleeps until needs no wake-up.
        """
        if due is None or self._target is None or due < self._target:
            self._wake.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name=f"timers-{self.instance_id}")

    async def stop(self) -> None:
        """Stop claiming, and let the rounds in flight finish producing and recording."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*self._busy, return_exceptions=True)

    def _busy_cases(self) -> set[UUID]:
        return set().union(*self._busy.values())

    async def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            if not self.ready() or len(self._busy) >= MAX_ROUNDS:
                await self._pause(None)  # a round that ends wakes the loop
                continue
            try:
                claim = await self._claim()
                if len(claim.timers) >= BATCH:
                    continue
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a store or broker outage
                failures += 1
                log.exception("timer claim failed", error=type(exc).__name__, failures=failures)
                await self._pause(None, real=min(0.5 * 2 ** (failures - 1), 10.0))
                continue
            failures = 0
            self._target = claim.next_due
            wait = None if claim.next_due is None else (claim.next_due - self.clock.now())
            await self._pause(None if wait is None else wait.total_seconds())
            self._target = None

    async def _claim(self) -> timers.Claim:
        """Claim the due timers and start a round on them."""
        ctx = self.context()
        wall = self.wall.now()
        claimed = await timers.claim(
            self.engine,
            self.instance_id,
            now=ctx.now,
            wall_now=wall,
            lease_until=wall + self.lease,
            limit=BATCH,
            busy=self._busy_cases(),
        )
        if claimed.timers:
            task = asyncio.create_task(self._round(ctx, claimed.timers))
            self._busy[task] = {timer.case_id for timer in claimed.timers}
        return claimed

    async def _round(self, ctx: Context, claimed: list[Timer]) -> None:
        try:
            await self.rounds.run(ctx, claimed)
        except Exception as exc:  # noqa: BLE001 - the leases run out and the timers come again
            log.exception("timer round failed", error=type(exc).__name__, timers=len(claimed))
        finally:
            current = asyncio.current_task()
            if current is not None:
                self._busy.pop(current, None)
            self._wake.set()

    async def _pause(self, clock_seconds: float | None, real: float = MAX_PAUSE_S) -> None:
        """Until `clock_seconds` of clock time pass, a wake, a stop, or `real` seconds."""
        if clock_seconds is not None and clock_seconds <= 0:
            real = MIN_PAUSE_S
        waits: list[Coroutine[Any, Any, object]] = [self._wake.wait(), self._stop.wait()]
        if clock_seconds is not None and clock_seconds > 0:
            waits.append(self.clock.sleep(clock_seconds))
        tasks = [asyncio.ensure_future(w) for w in waits]
        try:
            await asyncio.wait(tasks, timeout=real, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
