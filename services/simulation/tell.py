"""Telling the stories: the timer queue and the inboxes drive the simulated actors.

The agencies and teams act on two things only: their own timers (the
scheduler) and what the bus delivers to them (their inboxes, and the
resolutions on the case log, which the router delivers to no holder). The
run waits here until every case is closed, or until its real-time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from contracts import topics
from contracts.events import EscalationRaised
from contracts.parse import EventRejected, parse_event
from services.runtime.observability.logging import get_logger
from services.simulation.agencies import Agencies
from services.simulation.schedule import Scheduler
from services.simulation.teams import Teams

log = get_logger("ketenbus.simulation")

RESOLVED_MARK = b"escalation-resolved"
"""Cheap test for the one kind of case-log record the simulated agencies act on."""


async def tell(  # noqa: PLR0917 - the run's parts, each named at the one call
    agencies: Agencies,
    teams: Teams,
    scheduler: Scheduler,
    inboxes: AIOKafkaConsumer,
    limit: float,
    progress: Callable[[int, int], None] | None,
) -> bool:
    """Run the stories until every case is closed; False at the time limit."""
    tasks = [
        asyncio.create_task(scheduler.run()),
        asyncio.create_task(read_inboxes(inboxes, agencies, teams)),
    ]
    deadline = time.monotonic() + limit
    reported = time.monotonic()
    try:
        while agencies.unfinished and time.monotonic() < deadline:
            for task in tasks:
                if task.done():
                    task.result()  # a reader or scheduler that died says why
            await asyncio.sleep(0.1)
            if time.monotonic() - reported > 5:
                reported = time.monotonic()
                done = len(agencies.cases) - agencies.unfinished
                log.info("simulation running", done=done, cases=len(agencies.cases))
                if progress is not None:
                    progress(done, len(agencies.cases))
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if agencies.unfinished:
        log.warning("simulation cut off at the time limit", unfinished=agencies.unfinished)
    return agencies.unfinished == 0


async def read_inboxes(consumer: AIOKafkaConsumer, agencies: Agencies, teams: Teams) -> None:
    """Hand each agency the events in its inbox once, and the agencies the resolutions."""
    seen: set[tuple[str, uuid.UUID]] = set()
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=2000)
        for partition, records in batches.items():
            on_log = partition.topic == topics.CASES
            agency = partition.topic.split(".")[1]
            for record in records:
                value = record.value or b""
                if on_log and RESOLVED_MARK not in value:
                    continue  # only resolutions matter there; skip parsing the rest
                try:
                    event = parse_event(value)
                except EventRejected:
                    continue
                if on_log:
                    agencies.on_case_log(event)
                    continue
                if (agency, event.id) in seen:
                    continue
                seen.add((agency, event.id))
                if isinstance(event, EscalationRaised):
                    await teams.on_alert(agency, event)
                else:
                    await agencies.on_inbox(agency, event)
