"""`ketenbus bench router --instances 1,2`: the same events through 1 router, then through 2.

What it shows: that routers in one consumer group add up, now that each
router process appends to an audit chain of its own (`services.audit.chain`:
`new_chain`; `services.router.deliver` makes one per `Delivery`). With one
chain for the whole bus, every router transaction locked its one head row
until Kafka had acknowledged the batch, so a second router queued on the first.

Each configuration (a count of router instances) runs on a fresh private
embedded broker, its topics made with `PARTITIONS` partitions (keys are case
ids, which the partitioner spreads over them), and a fresh store, migrated
before the routers start: a PostgreSQL database of its own, created on the
given server and dropped after (the routers are separate processes that take
their store as a URL, which cannot carry a schema's search path for asyncpg;
so a database, as the fault tests do), or a SQLite file. Each router is its own
OS process, `python -m services.router`, as in production (two routers in one
process would share one event loop, on one core), with its signature workers;
all of them one consumer group on the outbox, sharing the one store.

Method, per configuration:
1. start the routers, then warm up: produce small batches of other events
   (fresh cases) until every router has routed some of them, which is when
   every router has its own audit chain open (`audit_chains` has one row per
   router) and so holds partitions after the group's last rebalance;
2. the clock starts at the first of the N measured events handed to the
   producer (acks=all, as an agency's outbox relay produces) and stops when
   `router_seen_events` holds a row for each of them (counted every
   `POLL_S`): a router commits those rows after Kafka acknowledged what it
   produced for the batch, so each is an event on the case log
   (`ketenbus.cases`). Producing is inside the window, and this process's CPU
   (producer and counting) is reported apart;
3. after the clock: every measured event must be in `router_seen_events`
   (one row per event id) and on the case log exactly once (read back).

Configurations alternate from round to round (1, 2, then 2, 1, ...); the
figures are medians over the rounds, the ratio of n routers to the first
count the median of the rounds' own ratios.

CPU, from /proc over each measured window (`bench._machine`): each router
process with its signature workers, the broker, the PostgreSQL backends serving
the run's database, PostgreSQL's own processes (WAL writer, checkpointer),
this process, the machine's busy time on all cores, and the rest of it (every
other process: whatever else runs on the machine). The busy share (busy time
/ wall time x cores) says how much of the machine was left: near 100%, the
cores are the limit, not the routers. On PostgreSQL the run's sessions are
sampled every `SAMPLE_S` (`pg_stat_activity`), so that lock waits between the
routers would show.

SQLite: one write lock per database file, taken by each router transaction
from its start to its commit, so two routers on one SQLite file take turns at
it and add next to nothing (only the checks before the transaction overlap);
`store="sqlite"` measures that.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import IO, Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bench import _machine
from bench._events import SENDER, case_events
from bench._router_store import DEFAULT_POSTGRES, check_reachable, router_store
from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.runtime.config.registry import load_registry, with_signing_keys
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.clients import PRODUCER_BATCH_BYTES
from services.runtime.kafka.embedded import (
    EMBEDDED_FETCH_MAX_WAIT_MS,
    EMBEDDED_SESSION_TIMEOUT_MS,
    EmbeddedBroker,
    free_port,
)
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.runtime.store.engine import make_engine, migrate
from services.runtime.store.tables import audit_chains, router_seen_events

PARTITIONS = 6
"""Partitions of every topic: enough for two routers to get three each."""
WARMUP_EVENTS = 60
"""Events per warm-up batch (30 cases, spread over the partitions by their keys)."""
WARMUP_S = 120.0
"""How long the routers get to start, join the group and each route some warm-up events."""
WARMUP_PAUSE_S = 0.25
"""The pause after a warm-up batch that not every router has had a share of."""
POLL_S = 0.05
"""How often the routed events are counted (`router_seen_events`) while they are routed."""
SAMPLE_S = 0.1
"""How often the run's PostgreSQL sessions are sampled."""
TUNING = ("KETENBUS_KAFKA_FETCH_MAX_WAIT_MS", "KETENBUS_ROUTER_SIGNATURE_WORKERS")
"""The caller's settings that do reach the routers: tuning, to compare."""
OUTBOX = topics.outbox(SENDER)


@dataclass
class Cpu:
    """CPU seconds used in one measured window, by whom."""

    routers: list[float]
    """Each router process with its signature workers."""
    router_loops: list[float]
    """Each router process alone, without its workers: its event loop (and threads)."""
    broker: float
    postgres: float | None
    """The backends serving the run's database; None on SQLite."""
    postgres_server: float
    """PostgreSQL's own processes (WAL writer, checkpointer, background writer, ...)."""
    bench: float
    """This process: the producer, the counting of routed events, the session sampler."""
    busy: float
    """The whole machine, all cores."""
    rest: float
    """busy minus the above: every other process on the machine."""
    busy_share: float
    """busy / (wall time x cores)."""
    busiest_rest: list[tuple[str, float]]
    """The processes of the rest that used the most, by command line: what else ran."""
    router_processes: list[int]
    """Processes per router (the router, its signature workers, multiprocessing's tracker)."""


@dataclass
class Configuration:
    """One round of one instance count."""

    instances: int
    round: int
    events_per_s: float
    wall_s: float
    produce_s: float
    """Time from the first event handed to the producer until all were acknowledged."""
    routed: int
    """Measured events in `router_seen_events`."""
    on_case_log: int
    """Records of measured events on the case log (a redelivery would count twice)."""
    distinct_on_case_log: int
    chains: int
    """Audit chains opened: one per router."""
    warmup_events: int
    cpu: Cpu
    sessions: dict[str, int] = field(default_factory=dict)
    """PostgreSQL samples of the run's sessions, by what each was doing."""


@dataclass
class InstancesBench:
    """Rates with each count of routers on the same events; medians of the rounds."""

    events: int
    rounds: int
    store: str
    partitions: int
    cores: int
    instances: list[int]
    events_per_s: dict[str, float]
    ratio: dict[str, float]
    """Per count, the median of the rounds' rate / the first count's rate in that round."""
    busy_share: dict[str, float]
    cpu_us_per_event: dict[str, dict[str, float]]
    """Per count, medians of CPU microseconds per event: routers (all), broker, postgres
    (the run's backends), postgres_server, bench, rest, busy."""
    lock_wait_share: dict[str, float]
    """Per count, the share of session samples (active or in a transaction) waiting on a
    lock; PostgreSQL only."""
    sessions: dict[str, dict[str, int]]
    """Per count, the session samples of all its rounds, by what each session was doing."""
    configurations: list[Configuration]
    load: str


def _write_registry(registry: AgencyRegistry, path: Path) -> Path:
    document = registry.model_dump(mode="json")
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _router_env(bootstrap: str, database: str, registry_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETENBUS_") or k in TUNING}
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


class RouterProcess:
    """One `python -m services.router`, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.router",
            env={**self.env, "KETENBUS_HEALTH_PORT": str(free_port())},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )

    def check_alive(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"a router exited ({self.process.returncode}):\n{tail}")

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


class _Warmups:
    """Batches of warm-up events (fresh cases each), made as needed, reused by each run."""

    def __init__(self, registry: AgencyRegistry, keys: dict[str, AgencyKeys]) -> None:
        self.registry, self.keys = registry, keys
        self.batches: list[list[tuple[bytes, bytes]]] = []

    def get(self, number: int) -> list[tuple[bytes, bytes]]:
        while len(self.batches) <= number:
            self.batches.append(case_events(self.registry, self.keys, WARMUP_EVENTS))
        return self.batches[number]


def _producer(bootstrap: str) -> AIOKafkaProducer:
    """As the agency outbox relay produces: every replica acknowledges, 5 ms linger."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=PRODUCER_BATCH_BYTES
    )


async def _produce(producer: AIOKafkaProducer, messages: Sequence[tuple[bytes, bytes]]) -> None:
    futures = [await producer.send(OUTBOX, value, key=key) for key, value in messages]
    await asyncio.gather(*futures)


async def _count(store: AsyncEngine, table: Any) -> int:
    async with store.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


def _alive(routers: Sequence[RouterProcess]) -> None:
    for router in routers:
        router.check_alive()


async def _warm_up(
    producer: AIOKafkaProducer,
    store: AsyncEngine,
    routers: Sequence[RouterProcess],
    warmups: _Warmups,
) -> int:
    """Warm-up batches until every router has routed some; the warm-up events produced."""
    deadline = time.monotonic() + WARMUP_S
    produced, number = 0, 0
    while time.monotonic() < deadline:
        batch = warmups.get(number)
        number += 1
        await _produce(producer, batch)
        produced += len(batch)
        while await _count(store, router_seen_events) < produced:
            _alive(routers)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the routers did not route {produced} warm-up events")
            await asyncio.sleep(0.05)
        if await _count(store, audit_chains) >= len(routers):
            return produced
        await asyncio.sleep(WARMUP_PAUSE_S)
    raise TimeoutError(f"not every one of {len(routers)} routers routed in {WARMUP_S:.0f} s")


class _Sessions:
    """What the run's PostgreSQL sessions were doing, sampled every SAMPLE_S."""

    def __init__(self, url: str) -> None:
        self.engine = create_async_engine(url, poolclass=NullPool)
        self.name = make_url(url).database
        self.seen: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        query = text(
            "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid() AND state <> 'idle'"
        )
        async with self.engine.connect() as connection:
            while True:
                rows = (await connection.execute(query, {"name": self.name})).all()
                await connection.commit()
                for state, kind, event in rows:
                    waiting = "" if kind is None else f", waiting {kind}:{event}"
                    self.seen[f"{state}{waiting}"] += 1
                await asyncio.sleep(SAMPLE_S)

    async def stop(self) -> dict[str, int]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.engine.dispose()
        return dict(self.seen.most_common())


async def _case_log(bootstrap: str, ids: set[str], timeout: float) -> tuple[int, int]:
    """Records of `ids` on the case log, and how many distinct ids they carry.

    Read from the start until every id was seen and a fetch finds nothing more. (Not up
    to the end offsets: the embedded broker reports a partition's end as the last record
    batch's base offset plus one, which falls short of the records written.)
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topics.CASES, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        records, seen = 0, set[str]()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5_000)
            if not batches and len(seen) == len(ids):
                break
            for batch in batches.values():
                for record in batch:
                    event_id = json.loads(record.value or b"{}").get("id")
                    if event_id in ids:
                        records += 1
                        seen.add(event_id)
        return records, len(seen)
    finally:
        await consumer.stop()


async def _until_routed(
    store: AsyncEngine, count: int, routers: Sequence[RouterProcess], timeout: float
) -> None:
    """Wait until `router_seen_events` holds `count` rows, polled every POLL_S.

    A router commits a batch's rows after Kafka acknowledged everything it produced for
    the batch, so a row seen here is an event on the case log."""
    query = select(func.count()).select_from(router_seen_events)
    deadline = time.monotonic() + timeout
    async with store.connect() as connection:
        while int(await connection.scalar(query) or 0) < count:
            await connection.rollback()  # a fresh snapshot for the next count (SQLite: WAL)
            _alive(routers)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(routers)} router(s) did not route the events in {timeout:.0f} s"
                )
            await asyncio.sleep(POLL_S)


def _cpu(
    start: _machine.Sample,
    end: _machine.Sample,
    routers: Sequence[RouterProcess],
    database: str | None,
) -> Cpu:
    mine = os.getpid()
    trees = [_machine.descendants(end.processes, {r.pid}) for r in routers]
    brokers = {
        p.pid for p in end.processes.values() if p.ppid == mine and p.comm.startswith("tansu")
    }
    backends = (
        {
            p.pid
            for p in end.processes.values()
            if p.comm == "postgres" and f" {database} " in p.title
        }
        if database
        else set()
    )
    server = {
        p.pid
        for p in end.processes.values()
        if p.comm == "postgres" and "(" not in p.title and "[local]" not in p.title
    }
    per_router = [_machine.used(start, end, tree) for tree in trees]
    broker = _machine.used(start, end, brokers)
    postgres = _machine.used(start, end, backends)
    own = _machine.used(start, end, server)
    bench = _machine.used(start, end, {mine})
    busy = end.busy_s - start.busy_s
    total = end.total_s - start.total_s
    return Cpu(
        routers=[round(s, 2) for s in per_router],
        router_loops=[round(_machine.used(start, end, {r.pid}), 2) for r in routers],
        broker=round(broker, 2),
        postgres=round(postgres, 2) if database else None,
        postgres_server=round(own, 2),
        bench=round(bench, 2),
        busy=round(busy, 2),
        rest=round(busy - sum(per_router) - broker - postgres - own - bench, 2),
        busy_share=round(busy / total if total > 0 else float("nan"), 3),
        router_processes=[len(tree) for tree in trees],
        busiest_rest=_machine.busiest(
            start, end, set().union(*trees, brokers, backends, server, {mine})
        ),
    )


async def _configuration(
    instances: int,
    number: int,
    *,
    registry: AgencyRegistry,
    registry_path: Path,
    messages: list[tuple[bytes, bytes]],
    ids: set[str],
    warmups: _Warmups,
    store_kind: str,
    server: str,
    directory: Path,
    timeout: float,
) -> Configuration:
    """Route `messages` with `instances` routers on a fresh broker and store."""
    label = f"round-{number}-routers-{instances}"
    with EmbeddedBroker(free_port()) as embedded:
        bootstrap = embedded.bootstrap
        await ensure_topics(bootstrap, bus_topics(registry), partitions=PARTITIONS)
        async with router_store(store_kind, server, directory, label) as url:
            store = make_engine(url)
            await migrate(store)
            env = _router_env(bootstrap, url, registry_path)
            routers = [RouterProcess(env, directory / f"{label}-{i}.log") for i in range(instances)]
            producer = _producer(bootstrap)
            sessions = _Sessions(url) if store_kind == "postgres" else None
            try:
                for router in routers:
                    await router.start()
                await producer.start()
                warm = await _warm_up(producer, store, routers, warmups)
                if sessions is not None:
                    await sessions.start()
                before = _machine.sample()
                started = time.perf_counter()
                await _produce(producer, messages)
                produced = time.perf_counter() - started
                await _until_routed(store, warm + len(messages), routers, timeout)
                wall = time.perf_counter() - started
                after = _machine.sample()
                seen = await sessions.stop() if sessions is not None else {}
                sessions = None
                routed = await _count(store, router_seen_events) - warm
                chains = await _count(store, audit_chains)
                on_log, distinct = await _case_log(bootstrap, ids, timeout)
            finally:
                if sessions is not None:
                    await sessions.stop()
                await producer.stop()
                for router in routers:
                    await router.stop()
                await store.dispose()
    database = make_url(url).database if store_kind == "postgres" else None
    return Configuration(
        instances=instances,
        round=number,
        events_per_s=round(len(messages) / wall, 1),
        wall_s=round(wall, 3),
        produce_s=round(produced, 3),
        routed=routed,
        on_case_log=on_log,
        distinct_on_case_log=distinct,
        chains=chains,
        warmup_events=warm,
        cpu=_cpu(before, after, routers, database),
        sessions=seen,
    )


def _order(instances: list[int], number: int) -> list[int]:
    """The counts in order in odd rounds, reversed in even ones: 1, 2, then 2, 1, ..."""
    return instances if number % 2 else instances[::-1]


async def bench_router_instances(
    events: int,
    instances: Sequence[int],
    *,
    rounds: int = 3,
    store: str = "postgres",
    database_url: str = DEFAULT_POSTGRES,
    timeout: float = 300.0,
) -> InstancesBench:
    """Route the same `events` with each count of `instances` routers, `rounds` times."""
    if store not in ("postgres", "sqlite"):
        raise UserError(f"the store is postgres or sqlite, not {store}")
    counts = list(dict.fromkeys(instances))
    if not counts or min(counts) < 1:
        raise UserError("--instances: one or more counts of 1 or more")
    if max(counts) > PARTITIONS:
        raise UserError(f"--instances: at most {PARTITIONS}, the partitions of the outbox")
    if store == "postgres":
        await check_reachable(database_url)
    settings = Settings()
    plain = load_registry(settings.registry)
    keys = {agency.code: AgencyKeys.generate(agency.code) for agency in plain.agencies}
    registry = with_signing_keys(plain, {code: k.public_key for code, k in keys.items()})
    messages = case_events(registry, keys, events)
    ids = {str(json.loads(value)["id"]) for _, value in messages}
    with tempfile.TemporaryDirectory(prefix="ketenbus-bench-instances-") as name:
        directory = Path(name)
        run = functools.partial(
            _configuration,
            registry=registry,
            registry_path=_write_registry(registry, directory / "registry.yaml"),
            messages=messages,
            ids=ids,
            warmups=_Warmups(registry, keys),
            store_kind=store,
            server=database_url,
            directory=directory,
            timeout=timeout,
        )
        runs = [
            await run(count, number)
            for number in range(1, rounds + 1)
            for count in _order(counts, number)
        ]
    return _summary(events, rounds, store, counts, runs)


def _summary(
    events: int, rounds: int, store: str, counts: list[int], runs: list[Configuration]
) -> InstancesBench:
    rate = {(r.instances, r.round): r.events_per_s for r in runs}
    first = counts[0]
    per_event: dict[str, dict[str, float]] = {}
    locks: dict[str, float] = {}
    sessions: dict[str, dict[str, int]] = {}
    for count in counts:
        mine = [r for r in runs if r.instances == count]
        figures = {
            "routers": [sum(r.cpu.routers) for r in mine],
            "broker": [r.cpu.broker for r in mine],
            "postgres": [r.cpu.postgres or 0.0 for r in mine],
            "postgres_server": [r.cpu.postgres_server for r in mine],
            "bench": [r.cpu.bench for r in mine],
            "rest": [r.cpu.rest for r in mine],
            "busy": [r.cpu.busy for r in mine],
        }
        per_event[str(count)] = {
            name: round(median(values) / events * 1e6, 1) for name, values in figures.items()
        }
        samples = sum((Counter(r.sessions) for r in mine), Counter())
        total = sum(samples.values())
        waits = sum(n for label, n in samples.items() if "waiting Lock:" in label)
        locks[str(count)] = round(waits / total, 4) if total else 0.0
        sessions[str(count)] = dict(samples.most_common())
    return InstancesBench(
        events=events,
        rounds=rounds,
        store="postgresql" if store == "postgres" else "sqlite",
        partitions=PARTITIONS,
        cores=os.cpu_count() or 1,
        instances=counts,
        events_per_s={
            str(c): round(median(r.events_per_s for r in runs if r.instances == c), 1)
            for c in counts
        },
        ratio={
            str(c): round(median(rate[(c, n)] / rate[(first, n)] for n in range(1, rounds + 1)), 3)
            for c in counts
        },
        busy_share={
            str(c): round(median(r.cpu.busy_share for r in runs if r.instances == c), 3)
            for c in counts
        },
        cpu_us_per_event=per_event,
        lock_wait_share=locks if store == "postgres" else {},
        sessions=sessions if store == "postgres" else {},
        configurations=runs,
        load=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )


def as_dict(result: InstancesBench) -> dict[str, Any]:
    return asdict(result)


def parse_counts(text: str) -> list[int]:
    """`1,2` as [1, 2]; ValueError if it is not a list of router counts."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError("comma-separated router counts, such as 1,2") from None
    if not counts or min(counts) < 1 or max(counts) > PARTITIONS:
        raise ValueError(f"comma-separated router counts from 1 to {PARTITIONS}, such as 1,2")
    return list(dict.fromkeys(counts))


def report_lines(result: InstancesBench) -> list[str]:
    """The result as `ketenbus bench router --instances` prints it."""
    first = result.instances[0]
    lines = [
        f"events              {result.events} per configuration, {result.rounds} round(s), "
        f"medians; store {result.store}, {result.partitions} partitions, {result.cores} cores",
    ]
    for count in map(str, result.instances):
        cpu = result.cpu_us_per_event[count]
        lines.append(
            f"{count} router(s)         {result.events_per_s[count]:,.0f} events/s, "
            f"ratio to {first} {result.ratio[count]:.3f}, "
            f"machine busy {result.busy_share[count]:.0%}"
        )
        lines.append(
            f"  CPU per event     routers {cpu['routers']:,.0f} us, broker {cpu['broker']:,.0f}, "
            f"postgres {cpu['postgres']:,.0f} (+ server {cpu['postgres_server']:,.0f}), "
            f"bench {cpu['bench']:,.0f}, rest {cpu['rest']:,.0f}; busy {cpu['busy']:,.0f} us"
        )
        if count in result.sessions:
            samples = result.sessions[count]
            doing = ", ".join(f"{label} {n}" for label, n in samples.items())
            lines.append(
                f"  store sessions    {sum(samples.values())} sampled: {doing or 'none busy'}; "
                f"waiting on a lock {result.lock_wait_share[count]:.1%}"
            )
    for run in result.configurations:
        exact = run.routed == run.on_case_log == run.distinct_on_case_log == result.events
        spent = run.cpu
        each = ", ".join(f"{s:.2f}" for s in spent.routers)
        loops = ", ".join(f"{s:.2f}" for s in spent.router_loops)
        ours = spent.busy - spent.rest
        lines.append(
            f"  round {run.round}, {run.instances} router(s): {run.events_per_s:,.0f}/s "
            f"in {run.wall_s:.2f} s (producing {run.produce_s:.2f} s); "
            f"{'each event routed once' if exact else 'NOT each event routed once'}"
        )
        lines.append(
            f"    CPU s: routers {each} (their event loops {loops}); cores: this run "
            f"{ours / run.wall_s:.2f}, rest {spent.rest / run.wall_s:.2f}, "
            f"idle {result.cores * (1 - spent.busy_share):.2f}"
        )
        if spent.busiest_rest:
            rest = "; ".join(f"{title} {s:.2f} s" for title, s in spent.busiest_rest)
            lines.append(f"    rest {spent.rest:.2f} s, most: {rest}")
    lines.append(f"load average        {result.load}")
    return lines
