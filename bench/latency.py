"""`ketenbus bench latency`: emit-to-inbox and emit-to-tracker latency at a fixed offered load.

An open-loop generator hands signed events (`bench._events`: belastingdienst
opens a case, then hands it to gm0363 with sealed personal data) to Kafka on a
fixed schedule, `rate` events per second for `seconds` seconds. It is driven
by the clock, never by acknowledgements, so a slow bus cannot slow the load
down; an event handed over more than `LATE_S` after its slot is counted as
behind schedule (the generator, not the bus, fell short).

Three moments per event id, all on this process's monotonic clock:
- emit: just before the producer's `send` takes the event (acks=all,
  linger 5 ms, as the agency outbox relay produces);
- inbox: when a consumer of every agency's inbox receives the first copy
  (case-opened goes to toeslagen, handoff-requested to gm0363);
- tracker: when the event's row is seen in `case_timeline`, polled every
  `POLL_S` by id watermark (one indexed range query per poll: the tracker is
  the table's only writer and commits one batch at a time, so ids only grow).
  The polling resolution adds up to `POLL_S`, on average half of it.

The router and the tracker run as they do in production, each as its own
process (`python -m services.router`, `python -m services.tracker`), sharing
one store as `ketenbus up` does: a temporary SQLite file, or `database`. Own
processes keep the generator and the probes off the services' event loops,
and include the inter-process hops a deployment has.

The floor, measured first in the same run: the same events at the same rate
to a topic of the same partitions, received by a plain consumer of the same
settings (emit-to-consume). Everything runs on a private embedded broker,
started for the run and stopped after. A warm-up before each phase (group
joins, first connections) is not measured.

Also reported: each service process's CPU time per event over the measured
phase (from /proc), so a latency that grows through the run can be told apart:
a service needing more of a core than the shared machine gives it builds a
queue (compare each path's median over the first and the last tenth).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._events import SENDER, case_events
from bench._proc import cpu_seconds
from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.runtime.config.registry import load_registry, with_signing_keys
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import (
    EMBEDDED_FETCH_MAX_WAIT_MS,
    EMBEDDED_SESSION_TIMEOUT_MS,
    EmbeddedBroker,
    free_port,
)
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.runtime.store.engine import make_engine, migrate
from services.runtime.store.tables import case_timeline

FLOOR_TOPIC = "bench.latency.floor"
TARGET_INBOX_P99_MS = 100.0
TARGET_INBOX_P99_FLOOR_RATIO = 3.0
"""Emit-to-inbox p99 at most this many times the floor's p99: two broker hops and the
router's checks against one hop, whatever the machine's broker makes of one hop."""
LATE_S = 0.005
"""An event handed to the producer this long after its slot is behind schedule."""
POLL_S = 0.010
"""How often the tracker's timeline is polled: the resolution of the tracker figures."""
PROBE_FETCH_WAIT_MS = 10
"""The probes' fetch_max_wait_ms. The embedded broker (Tansu) holds a fetch that finds
no records for up to about its max wait, and records produced meanwhile wait for it
(real Kafka answers as soon as fetch_min_bytes are in). Measured on an idle consumer
at 200/s, consume p50/p99: 500 ms (aiokafka's default) 131/253 ms, 100 ms 26/54 ms,
20 ms 6/13 ms. At 10 ms the probe adds a few ms, on the floor as on the bus."""
WARMUP_S = 1.0
"""Seconds of load before each phase, not measured: connections, group joins, first batches."""
DRAIN_S = 30.0
"""How long after the last emit the run waits for copies and rows still on their way."""

Message = tuple[bytes, bytes, str]
"""Key, value and event id of one event."""


@dataclass
class Spread:
    """Latencies of one path, in milliseconds; `missing` events never arrived."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    received: int
    missing: int
    p50_first_tenth_ms: float
    """The median of the events emitted in the run's first tenth, and below in its last:
    a path that keeps up has both alike; one that falls behind grows a queue."""
    p50_last_tenth_ms: float


@dataclass
class LatencyBench:
    """Both paths of the bus and the broker's floor, at one offered load."""

    rate: int
    seconds: float
    events: int
    database: str
    floor: Spread
    inbox: Spread
    tracker: Spread
    ratio_inbox_p99_floor: float
    ratio_inbox_p50_floor: float
    target_inbox_p99_ms: float
    target_inbox_p99_floor_ratio: float
    poll_resolution_ms: float
    probe_fetch_wait_ms: int
    service_fetch_wait_ms: int
    """The router's and the tracker's fetch_max_wait_ms: `ketenbus up`'s on the embedded
    broker unless KETENBUS_KAFKA_FETCH_MAX_WAIT_MS says otherwise."""
    cpu_us_per_event: dict[str, float]
    """CPU time each service process used from the first measured emit until the last
    event arrived (or the drain timed out), per event: rate x this is the share of a core
    it needs, whatever else runs on the machine."""
    behind_schedule: int
    """Events of both phases handed to the producer more than LATE_S after their slot."""
    max_schedule_lag_ms: float
    load: str
    """The load average when the run ended (1, 5, 15 min): the machine is shared."""


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def spread(emitted: dict[str, float], arrived: dict[str, float]) -> Spread:
    """The latency spread of the events of `emitted` over their `arrived` moments."""
    waits = [(arrived[i] - t) * 1000 for i, t in emitted.items() if i in arrived]
    tenth = max(1, len(waits) // 10)
    return Spread(
        p50_ms=round(_percentile(waits, 0.50), 2),
        p99_ms=round(_percentile(waits, 0.99), 2),
        max_ms=round(max(waits, default=float("nan")), 2),
        received=len(waits),
        missing=len(emitted) - len(waits),
        p50_first_tenth_ms=round(_percentile(waits[:tenth], 0.50), 2),
        p50_last_tenth_ms=round(_percentile(waits[-tenth:], 0.50), 2),
    )


class Schedule:
    """How far the generator kept to its schedule, over every phase it ran."""

    def __init__(self) -> None:
        self.behind = 0
        self.max_lag = 0.0

    async def run(
        self, producer: AIOKafkaProducer, topic: str, messages: Sequence[Message], rate: int
    ) -> dict[str, float]:
        """Hand `messages` to `producer` at `rate` per second; their emit moments by id.

        Open loop: each event's slot is fixed from the start; acks are gathered at
        the end (a failed produce raises there), never waited for in between.
        """
        emitted: dict[str, float] = {}
        pending = []
        start = time.perf_counter()
        sent = 0
        while sent < len(messages):
            due = min(len(messages), int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                key, value, event_id = messages[sent]
                now = time.perf_counter()
                lag = now - (start + sent / rate)
                if lag > LATE_S:
                    self.behind += 1
                self.max_lag = max(self.max_lag, lag)
                emitted[event_id] = now
                pending.append(await producer.send(topic, value, key=key))
                sent += 1
            await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        await asyncio.gather(*pending)
        return emitted


class Arrivals:
    """First-arrival moments by event id, from a consumer reading whole topics."""

    def __init__(self, bootstrap: str, names: Iterable[str], partitions: int) -> None:
        self.bootstrap = bootstrap
        self.parts = [TopicPartition(name, p) for name in names for p in range(partitions)]
        self.seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        # Assigned, not a group member: no join to wait for, no commits on the path.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=PROBE_FETCH_WAIT_MS,
        )
        await consumer.start()
        consumer.assign(self.parts)
        self._consumer = consumer
        self._task = asyncio.create_task(self._receive(consumer))

    async def _receive(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    event_id = str(json.loads(record.value or b"{}").get("id"))
                    self.seen.setdefault(event_id, now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


class TimelinePoller:
    """When each event's row became visible in the tracker's `case_timeline`."""

    def __init__(self, store: AsyncEngine) -> None:
        self.store = store
        self.seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self.store.connect() as connection:
            last = int(await connection.scalar(select(func.max(case_timeline.c.id))) or 0)
        self._task = asyncio.create_task(self._poll(last))

    async def _poll(self, last: int) -> None:
        query = select(case_timeline.c.id, case_timeline.c.event_id).order_by(case_timeline.c.id)
        while True:
            async with self.store.connect() as connection:
                rows = (await connection.execute(query.where(case_timeline.c.id > last))).all()
            now = time.perf_counter()
            for row_id, event_id in rows:
                self.seen.setdefault(str(event_id), now)
                last = max(last, int(row_id))
            await asyncio.sleep(POLL_S)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Service:
    """One bus service as its own process (`python -m services.<name>`), logging to a file."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"services.{self.name}",
            env={**self.env, "KETENBUS_HEALTH_PORT": str(free_port())},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )

    def check_alive(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the {self.name} exited ({self.process.returncode}):\n{tail}")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the process has used so far; NaN off Linux."""
        used = cpu_seconds(self.process.pid) if self.process else None
        return float("nan") if used is None else used

    async def stop(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15.0)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._log is not None:
            self._log.close()


def _with_ids(pairs: list[tuple[bytes, bytes]]) -> list[Message]:
    return [(key, value, str(json.loads(value)["id"])) for key, value in pairs]


def _service_env(bootstrap: str, database: str, registry_path: Path) -> dict[str, str]:
    # The caller's own KETENBUS_* settings must not reach the services under test,
    # except the tuning this benchmark is there to compare.
    tuning = {"KETENBUS_KAFKA_FETCH_MAX_WAIT_MS"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETENBUS_") or k in tuning}
    return {
        "KETENBUS_KAFKA_FETCH_MAX_WAIT_MS": str(EMBEDDED_FETCH_MAX_WAIT_MS),  # as `ketenbus up`
        **env,
        "KETENBUS_KAFKA_BOOTSTRAP": bootstrap,
        "KETENBUS_KAFKA_SESSION_TIMEOUT_MS": str(EMBEDDED_SESSION_TIMEOUT_MS),
        "KETENBUS_DATABASE_URL": database,
        "KETENBUS_REGISTRY": str(registry_path),
        "KETENBUS_LOG_LEVEL": "WARNING",
        "KETENBUS_LOG_FORMAT": "json",
    }


async def _until(
    done: Iterable[str], probes: Sequence[dict[str, float]], timeout: float, services: list[Service]
) -> None:
    """Wait until every id of `done` is in every probe, or `timeout` passed."""
    ids = list(done)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(all(i in seen for i in ids) for seen in probes):
            return
        for service in services:
            service.check_alive()
        await asyncio.sleep(0.05)


def _producer(bootstrap: str) -> AIOKafkaProducer:
    # As the agency outbox relay produces: every replica acknowledges, 5 ms linger.
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)


@dataclass
class Phase:
    """What both phases share: the broker, the load and the schedule's record."""

    bootstrap: str
    partitions: int
    rate: int
    schedule: Schedule
    messages: list[Message]


async def _floor(phase: Phase, warmup: list[Message]) -> Spread:
    bootstrap, rate = phase.bootstrap, phase.rate
    arrivals = Arrivals(bootstrap, [FLOOR_TOPIC], phase.partitions)
    producer = _producer(bootstrap)
    await arrivals.start()
    await producer.start()
    try:
        warm = await Schedule().run(producer, FLOOR_TOPIC, warmup, rate)
        await _until(warm, [arrivals.seen], 60.0, [])
        emitted = await phase.schedule.run(producer, FLOOR_TOPIC, phase.messages, rate)
        await _until(emitted, [arrivals.seen], DRAIN_S, [])
    finally:
        await producer.stop()
        await arrivals.stop()
    return spread(emitted, arrivals.seen)


async def _bus(
    phase: Phase,
    registry: AgencyRegistry,
    env: dict[str, str],
    directory: Path,
    warmup: list[Message],
) -> tuple[Spread, Spread, dict[str, float]]:
    """Emit-to-inbox, emit-to-tracker, and each service's CPU microseconds per event."""
    bootstrap, rate = phase.bootstrap, phase.rate
    store = make_engine(env["KETENBUS_DATABASE_URL"])
    services = [Service(name, env, directory / f"{name}.log") for name in ("router", "tracker")]
    inboxes = Arrivals(
        bootstrap, [topics.inbox(a.code) for a in registry.agencies], phase.partitions
    )
    timeline = TimelinePoller(store)
    producer = _producer(bootstrap)
    outbox = topics.outbox(SENDER)
    try:
        await migrate(store)
        for service in services:
            await service.start()
        await inboxes.start()
        await timeline.start()
        await producer.start()
        warm = await Schedule().run(producer, outbox, warmup, rate)
        await _until(warm, [inboxes.seen, timeline.seen], 120.0, services)
        if not all(i in inboxes.seen and i in timeline.seen for i in warm):
            raise TimeoutError("the warm-up events did not reach the inboxes and the tracker")
        cpu = [service.cpu_s() for service in services]
        emitted = await phase.schedule.run(producer, outbox, phase.messages, rate)
        await _until(emitted, [inboxes.seen, timeline.seen], DRAIN_S, services)
        used = {s.name: s.cpu_s() - before for s, before in zip(services, cpu, strict=True)}
    finally:
        await producer.stop()
        await timeline.stop()
        await inboxes.stop()
        for service in services:
            await service.stop()
        await store.dispose()
    per_event = {name: round(seconds * 1e6 / len(emitted), 1) for name, seconds in used.items()}
    return spread(emitted, inboxes.seen), spread(emitted, timeline.seen), per_event


def _write_registry(registry: AgencyRegistry, path: Path) -> Path:
    document = registry.model_dump(mode="json")
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


async def bench_latency(rate: int, seconds: float, database: str | None = None) -> LatencyBench:
    """Measure the floor, then both paths of the bus, at `rate` events/s for `seconds` each.

    `database`: a store URL of the bench's own (migrated; tables it already has
    are left as they are); None: a temporary SQLite file.
    """
    settings = Settings()
    plain = load_registry(settings.registry)
    keys = {agency.code: AgencyKeys.generate(agency.code) for agency in plain.agencies}
    registry = with_signing_keys(plain, {code: k.public_key for code, k in keys.items()})
    count = max(2, int(rate * seconds))
    messages = _with_ids(case_events(registry, keys, count))
    schedule = Schedule()
    with (
        tempfile.TemporaryDirectory(prefix="ketenbus-bench-latency-") as name,
        EmbeddedBroker(free_port()) as embedded,
    ):
        directory = Path(name)
        url = database or f"sqlite+aiosqlite:///{directory / 'bus.db'}"
        names = [*bus_topics(registry), FLOOR_TOPIC]
        await ensure_topics(embedded.bootstrap, names, partitions=settings.topic_partitions)
        warmup = max(20, int(rate * WARMUP_S))
        floor_warmup = _with_ids(case_events(registry, keys, warmup))
        phase = Phase(embedded.bootstrap, settings.topic_partitions, rate, schedule, messages)
        floor = await _floor(phase, floor_warmup)
        env = _service_env(embedded.bootstrap, url, _write_registry(registry, directory / "r.yaml"))
        bus_warmup = _with_ids(case_events(registry, keys, warmup))
        inbox, tracker, cpu = await _bus(phase, registry, env, directory, bus_warmup)
    return LatencyBench(
        rate=rate,
        seconds=seconds,
        events=count,
        database=url.split(":", 1)[0].split("+", 1)[0],
        floor=floor,
        inbox=inbox,
        tracker=tracker,
        ratio_inbox_p99_floor=round(inbox.p99_ms / floor.p99_ms, 2),
        ratio_inbox_p50_floor=round(inbox.p50_ms / floor.p50_ms, 2),
        target_inbox_p99_ms=TARGET_INBOX_P99_MS,
        target_inbox_p99_floor_ratio=TARGET_INBOX_P99_FLOOR_RATIO,
        poll_resolution_ms=POLL_S * 1000,
        probe_fetch_wait_ms=PROBE_FETCH_WAIT_MS,
        service_fetch_wait_ms=int(env["KETENBUS_KAFKA_FETCH_MAX_WAIT_MS"]),
        cpu_us_per_event=cpu,
        behind_schedule=schedule.behind,
        max_schedule_lag_ms=round(schedule.max_lag * 1000, 2),
        load=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )


def met(result: LatencyBench) -> dict[str, bool]:
    """Each target's verdict: the absolute p99, and the p99 against the floor's."""
    return {
        "inbox_p99_ms": result.inbox.p99_ms < result.target_inbox_p99_ms,
        "inbox_p99_floor_ratio": result.inbox.p99_ms
        <= result.target_inbox_p99_floor_ratio * result.floor.p99_ms,
    }


def as_dict(result: LatencyBench) -> dict[str, Any]:
    return {**asdict(result), "target_met": met(result)}
