"""The end of a run: let the bus settle, stop escalating, then judge what is there.

The order matters. The router must have passed on every simulated event
before the escalation service stops; the moment it stops is the verdict's
"now" (a deadline after that could not have been met by anyone). The tracker
must have recorded every event of the case log before its store is read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.registry import AgencyRegistry
from services.casefile.signals import policy_signals
from services.router.routing import CaseRouting
from services.runtime.observability.logging import get_logger
from services.runtime.process.clock import Clock
from services.simulation.bus import Bus
from services.simulation.buslog import read_topics
from services.simulation.store import holders, timeline_rows
from services.simulation.verdict import Cause, Verdict, judge

log = get_logger("ketenbus.simulation")

SETTLE_TIMEOUT = 120.0
"""Real seconds the router and the tracker get to catch up with the last events."""


class StopOnce:
    """A service's stop, done the first time it is called (the run's end or its way out)."""

    def __init__(self, stop: Callable[[], Awaitable[None]]) -> None:
        self._stop: Callable[[], Awaitable[None]] | None = stop

    async def __call__(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            await stop()


async def settle(
    routing: CaseRouting, sent: int, clock: Clock, stop_escalation: StopOnce | None
) -> datetime:
    """Wait for the router to pass on `sent` events, stop the escalation service; its 'now'."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    # Polls the router's own counter: it offers no event to wait on.
    while routing.stats.completed < sent and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if routing.stats.completed < sent:
        log.warning("router did not pass on every event", sent=sent, routed=routing.stats.completed)
    cutoff = clock.now()
    if stop_escalation is not None:
        await stop_escalation()
    return cutoff


async def verdict_of(
    bus: Bus,
    registry: AgencyRegistry,
    engine: AsyncEngine,
    *,
    cutoff: datetime,
    clock: Clock,
    finished: bool,
    speed: float,
) -> Verdict:
    """Read the run's case log and alerts, wait for the tracker to hold them all, judge."""
    found = await read_topics(
        bus.bootstrap, [topics.CASES, topics.ESCALATIONS], bus.start, settings=bus.settings
    )
    case_log = found[topics.CASES]
    distinct = len({event.id for event in case_log})
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while (recorded := await timeline_rows(engine)) < distinct and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    if recorded < distinct:
        log.warning("tracker did not record the whole case log", log=distinct, recorded=recorded)
    signals = await policy_signals(engine, now=cutoff)
    causes = [Cause(cause=c.cause or "unknown", count=c.escalations) for c in signals.by_cause[:3]]
    verdict = judge(
        registry,
        case_log,
        found[topics.ESCALATIONS],
        await holders(engine),
        cutoff,
        ping_pong_limit=bus.settings.ping_pong_limit,
        top_causes=causes,
    )
    start = getattr(clock, "start", cutoff)
    return verdict.model_copy(
        update={
            "simulated_s": round((cutoff - start).total_seconds(), 1),
            "speed": speed,
            "finished": finished,
        }
    )
