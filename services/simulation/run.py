"""One region simulation: the real services, simulated agencies and teams, then the verdict.

The router, the tracker and the escalation service run in this process, each
in a consumer group of the run's own, all on one `ScaledClock`, against the
configured broker or a private embedded one, and a fresh store. The run ends
when every case's story is told (every case closed; those whose escalation
nobody acknowledged once the top level was raised again) or at the real-time
limit; then the services are stopped and the verdict is read from the bus and
the tracker's store.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.escalation import EscalationService
from services.router.app import create_router
from services.router.routing import CaseRouting
from services.runtime.config.registry import load_registry, with_signing_keys
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import client_security
from services.runtime.observability.logging import get_logger
from services.runtime.process.clock import ScaledClock
from services.simulation.agencies import Agencies
from services.simulation.bus import Bus, position_groups, run_bus, wait_until_assigned
from services.simulation.outbox import Outboxes
from services.simulation.plan import OPENING_RATE, CasePlan, Region, Timing, make_plans
from services.simulation.schedule import Scheduler
from services.simulation.settle import StopOnce, settle, verdict_of
from services.simulation.store import Stores, fresh_stores
from services.simulation.teams import Teams
from services.simulation.tell import tell
from services.simulation.verdict import Verdict
from services.tracker.app import create_tracker

log = get_logger("ketenbus.simulation")

DEFAULT_SPEED = 5.0


@dataclass(frozen=True)
class Options:
    """What to simulate, and how fast."""

    cases: int
    agencies: int = 8
    speed: float = DEFAULT_SPEED
    seed: int = 1
    rate: float = OPENING_RATE
    """Cases opened per real second."""
    timing: Timing | None = None
    """None: `Timing.paced` for the speed, the number of cases and the rate."""
    time_limit: float | None = None
    """Real seconds before the run is cut off; None: every story's patience, twice over."""
    escalation: bool = True
    """False: the escalation service is not started (to see the verdict catch that)."""
    progress: Callable[[int, int], None] | None = None
    """Called every few seconds with (cases done, cases)."""

    @property
    def pace(self) -> Timing:
        return self.timing or Timing.paced(self.speed, self.cases, self.rate)

    def limit(self, registry: AgencyRegistry) -> float:
        if self.time_limit is not None:
            return self.time_limit
        # Every story ends by its patience (its holder gives up): what is left is the
        # backlog of a bus that cannot keep up, given as long again.
        simulated = self.pace.open_window + self.pace.patience
        return 2 * simulated / self.speed + 60


GC_THRESHOLDS = (50_000, 20, 1_000)
"""The collector's thresholds during a run. This process holds every service and every
story at once; a full collection of that heap stops the event loop for a quarter of a
second, which is a whole clock second at speed 4 and shows as late escalations that
a service in a process of its own would not have. Collected rarely, it has none."""


async def simulate(settings: Settings, options: Options) -> Verdict:
    """Run the region simulation and return its verdict."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return await _simulate(settings, options)
    finally:
        gc.set_threshold(*thresholds)


async def _simulate(settings: Settings, options: Options) -> Verdict:
    # The simulated agencies sign with key pairs of this run's own.
    keys = {
        agency.code: AgencyKeys.generate(agency.code)
        for agency in load_registry(settings.registry).agencies
    }
    registry = with_signing_keys(
        load_registry(settings.registry), {code: k.public_key for code, k in keys.items()}
    )
    region = Region(registry, options.agencies)
    plans = make_plans(registry, options.agencies, options.cases, options.pace, options.seed)
    started = time.monotonic()
    async with run_bus(settings, registry) as bus, fresh_stores(settings.database_url) as stores:
        verdict = await _run(
            bus=bus,
            registry=registry,
            keys=keys,
            region=region,
            stores=stores,
            plans=plans,
            options=options,
        )
    return verdict.model_copy(update={"real_s": round(time.monotonic() - started, 1)})


async def _run(
    *,
    bus: Bus,
    registry: AgencyRegistry,
    keys: dict[str, AgencyKeys],
    region: Region,
    stores: Stores,
    plans: list[CasePlan],
    options: Options,
) -> Verdict:
    run = uuid.uuid4().hex[:8]
    groups = {
        f"ketenbus-simulation-{run}-router": [topics.outbox(a.code) for a in registry.agencies],
        f"ketenbus-simulation-{run}-tracker": [topics.CASES],
        f"ketenbus-simulation-{run}-agencies": [
            *(topics.inbox(a.code) for a in registry.agencies),
            topics.CASES,
        ],
    }
    if options.escalation:
        groups[f"ketenbus-simulation-{run}-escalation"] = [topics.CASES]
    await position_groups(bus, groups)
    router_group, tracker_group, agencies_group, *escalation_group = groups
    settings, clock, routing = bus.settings, ScaledClock(options.speed), CaseRouting(registry)
    async with AsyncExitStack() as stack:
        brokers = [
            # The router shares the escalation service's store: both take the cases'
            # custody lock there (services.custody).
            create_router(
                settings,
                registry,
                bus.bootstrap,
                stores.escalation,
                group_id=router_group,
                routing=routing,
            ),
            create_tracker(
                settings, registry, stores.tracker, bus.bootstrap, group_id=tracker_group
            ),
        ]
        for broker in brokers:
            await broker.start()
            stack.push_async_callback(broker.stop)
        stop_escalation = None
        if escalation_group:
            escalation = EscalationService(
                settings,
                registry,
                stores.escalation,
                bus.bootstrap,
                clock=clock,
                group_id=escalation_group[0],
                instance_id=f"simulation-{run}",
            )
            await escalation.start()
            stop_escalation = StopOnce(escalation.stop)  # by `settle`, or on the way out
            stack.push_async_callback(stop_escalation)
            brokers.append(escalation.broker)
        inboxes = AIOKafkaConsumer(
            *groups[agencies_group],
            bootstrap_servers=bus.bootstrap,
            group_id=agencies_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if bus.private else "latest",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            **client_security(settings),
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=bus.bootstrap, acks="all", linger_ms=5, **client_security(settings)
        )
        for client in (inboxes, producer):
            await client.start()
            stack.push_async_callback(client.stop)
        await wait_until_assigned([*brokers, inboxes])
        scheduler = Scheduler(clock)
        out = Outboxes(registry, producer, clock, keys)
        agencies = Agencies(
            plans,
            full=region.full,
            out=out,
            scheduler=scheduler,
            timing=options.pace,
            seed=options.seed,
        )
        teams = Teams(registry, agencies, scheduler, options.pace, options.seed)
        log.info(
            "simulation started", cases=len(plans), speed=options.speed, bootstrap=bus.bootstrap
        )
        finished = await tell(
            agencies, teams, scheduler, inboxes, options.limit(registry), options.progress
        )
        await out.flush()
        cutoff = await settle(routing, out.sent, clock, stop_escalation)
        verdict = await verdict_of(
            bus,
            registry,
            stores.tracker,
            cutoff=cutoff,
            clock=clock,
            finished=finished,
            speed=options.speed,
        )
        return verdict.model_copy(update={"stories_given_up": agencies.gave_up})
    raise AssertionError("unreachable")  # pragma: no cover - the stack re-raises
