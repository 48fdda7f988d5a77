"""`ketenbus bench router`: the router against a raw aiokafka relay, same broker, same events.

The baseline is the floor: a minimal raw aiokafka relay that
does the work no router can skip. It consumes the outbox, parses each event's
JSON, verifies its Ed25519 signature against the registry's key
(`contracts.signing.verify_signature`: canonical form and PyNaCl verify) and
produces the signed bytes to the case log and to each receiver's inbox, the
topics the router produces them to, awaiting a batch's acks together before
committing. Which inboxes an event type goes to is worked out once before the
clock starts, from the router's own rules. The audit topic is router overhead.

A bare relay (outbox to one topic, no parsing or checks) is measured too, for
information: what the broker and aiokafka alone move.

The verifying relay and the router are measured in `rounds` pairs, each pair
one after the other over the same events (new consumer groups, and a new
store for each router), the order alternating from pair to pair. On a shared
machine one phase's rate can drift by a fifth from the next's; the figures
are the medians, and the ratio is the median of the pairs' own ratios.

The router does all its work: it parses
and validates each event, verifies its Ed25519 signature against the
registry, checks holder rights on the case's custody in its store (one
transaction per batch, duplicate event ids refused), cuts each receiver's copy
down to its grant (minimisation), appends an audit record per inbox copy to
the hash-chained audit trail, and produces the case log, the inbox copies and
the audit records (`ketenbus.audit`).

The events are realistic for those checks: belastingdienst opens each case and
then, as its holder, hands it to gm0363 with the personal section sealed for
it, every event signed with a key pair made for the run (the registry the
router runs on has their public halves). The router's store is a temporary
SQLite database, migrated for the run and removed after, or with `store="postgres"`
a PostgreSQL database made for each router and dropped after. Both run on a private
embedded broker, started for the run and stopped after.

`ketenbus bench router --instances 1,2` measures something else, in
`bench.router_instances`: the same events through 1 router process and then 2
in one consumer group, sharing one PostgreSQL store.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._events import CATEGORY, SENDER, case_events
from bench._proc import cpu_seconds
from bench._router_store import DEFAULT_POSTGRES, STORES, check_reachable, router_store
from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.envelope import EVENT_TYPE_PREFIX
from contracts.parse import read_json
from contracts.registry import AgencyRegistry
from contracts.signing import verify_signature
from services.router import minimise
from services.router._verifier import UNCHECKED, Verdict
from services.router.app import BATCH as ROUTER_BATCH
from services.router.app import create_router
from services.router.routing import Admitted, CaseRouting, OutboxMessage
from services.runtime.config.registry import load_registry, with_signing_keys
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.clients import PRODUCER_BATCH_BYTES, Outgoing
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.runtime.process.heap import long_lived_frozen
from services.runtime.store.engine import make_engine, migrate
from services.runtime.store.tables import audit_records

RAW_TOPIC = "bench.raw.cases"
BATCH = ROUTER_BATCH
"""Records per fetch in both relays, as in the router's subscriber."""
OUTBOX = topics.outbox(SENDER)


TARGET_RATIO = 0.7
TARGET_EVENTS_PER_S = 10_000


@dataclass
class RouterBench:
    """All three rates on the same events; the ratio is the router's to the verifying relay's."""

    events: int
    rounds: int
    store: str
    """The router's store: sqlite or postgres."""
    baseline_events_per_s: float
    """The minimal relay: parse, verify, produce to the case log and the inboxes."""
    bare_relay_events_per_s: float
    """Outbox to one topic, no parsing or checks: informative only."""
    router_events_per_s: float
    ratio: float
    """The median of each round's router / baseline."""
    round_ratios: list[float]
    """Each round's router / baseline, in the order run."""
    round_rates: list[tuple[float, float]]
    """Each round's (relay, router) events/s, in the order run."""
    router_messages_out: int
    """Case log records, inbox copies and audit records the router produced in a round."""
    baseline_cpu_us_per_event: float
    router_cpu_us_per_event: float
    """This process's CPU time (all threads, and the router's signature workers) per event over
    the same window as the rate, median of the rounds: steadier than the rates when other work
    shares the machine (the broker's is not in it)."""
    cpu_ratio: float
    """baseline CPU per event / router CPU per event: the ratio as CPU cost, not wall time."""


@dataclass
class _Clock:
    """Wall and CPU time (this process's and its workers') from the first record handled."""

    wall: float = 0.0
    cpu: float = 0.0

    def start(self) -> None:
        if not self.wall:
            self.wall, self.cpu = time.perf_counter(), _cpu_s()

    def rate(self, count: int) -> tuple[float, float]:
        """Events per second, and CPU microseconds per event."""
        wall, cpu = time.perf_counter() - self.wall, _cpu_s() - self.cpu
        return count / wall, cpu / count * 1e6


def _cpu_s() -> float:
    """CPU seconds of this process and of its live children (the router's signature workers)."""
    children = (cpu_seconds(child.pid) for child in multiprocessing.active_children() if child.pid)
    return time.process_time() + sum(used for used in children if used is not None)


async def _produce_all(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = _producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(OUTBOX, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _consumer(bootstrap: str, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        OUTBOX,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=500,
        max_poll_records=BATCH,
    )


def _producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer set as the router's (`make_broker`): acks from all, linger and batch size."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=PRODUCER_BATCH_BYTES,
    )


async def _relay(
    bootstrap: str, name: str, route: Callable[[bytes], Iterable[str]], count: int, timeout: float
) -> tuple[float, float]:
    """A raw aiokafka relay: each outbox record to the topics `route` names for its value,
    acks gathered once per batch, then the offsets committed."""
    consumer = _consumer(bootstrap, f"bench-{name}")
    producer = _producer(bootstrap)
    await consumer.start()
    await producer.start()
    done, clock = 0, _Clock()
    deadline = time.monotonic() + timeout
    try:
        while done < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            if batches:
                clock.start()
            futures = []
            for records in batches.values():
                for record in records:
                    futures += [
                        await producer.send(topic, record.value, key=record.key)
                        for topic in route(record.value)
                    ]
                    done += 1
            await asyncio.gather(*futures)
            await consumer.commit()
        rate = clock.rate(count)
    finally:
        await consumer.stop()
        await producer.stop()
    if done < count:
        raise TimeoutError(f"{name} moved {done} of {count} events in {timeout:.0f} s")
    return rate


def _bare(_: bytes) -> tuple[str]:
    """The bare relay: no parsing, one topic."""
    return (RAW_TOPIC,)


def _verified(
    registry: AgencyRegistry, inboxes: dict[str, list[str]]
) -> Callable[[bytes], list[str]]:
    """The minimal relay's step: parse and verify each event; the case log and its inboxes."""

    def route(value: bytes) -> list[str]:
        document = read_json(value)
        verify_signature(document, registry)
        return [topics.CASES, *inboxes[document["type"]]]

    return route


def _inboxes(registry: AgencyRegistry, messages: list[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """Per event type, the inboxes the router delivers it to: worked out once, before the clock."""
    category = registry.category(CATEGORY)
    assert category is not None
    found: dict[str, list[str]] = {}
    for _, value in messages:
        document = json.loads(value)
        name = document["type"].removeprefix(EVENT_TYPE_PREFIX)
        if document["type"] not in found:
            receivers = minimise.grants(registry, name, document["data"], category, SENDER)
            found[document["type"]] = [topics.inbox(code) for code in receivers]
    return found


class _TimedRouting(CaseRouting):
    """The router's checks, noting when the first message reached them: the clock's start."""

    def __init__(self, registry: AgencyRegistry) -> None:
        super().__init__(registry)
        self.clock = _Clock()

    def check(
        self, message: OutboxMessage, signature: Verdict = UNCHECKED
    ) -> Admitted | list[Outgoing]:
        self.clock.start()
        return super().check(message, signature)


async def _router(
    bootstrap: str,
    registry: AgencyRegistry,
    store: AsyncEngine,
    count: int,
    timeout: float,
    *,
    group_id: str,
) -> tuple[float, float, int]:
    settings = Settings(kafka_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS)
    routing = _TimedRouting(registry)
    broker = create_router(settings, registry, bootstrap, store, group_id=group_id, routing=routing)
    await broker.start()
    deadline = time.monotonic() + timeout
    try:
        # From the first message checked to the last batch committed (as the relay's
        # clock runs from its first batch): the group join before it is not routing.
        while routing.stats.completed < count:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.002)
        rate, cpu = routing.clock.rate(count)
    finally:
        await broker.stop()
    if routing.stats.completed < count:
        raise TimeoutError(
            f"router completed {routing.stats.completed} of {count} in {timeout:.0f} s"
        )
    if routing.stats.rejected:
        raise RuntimeError(f"router rejected benchmark events: {routing.stats.rejected}")
    return rate, cpu, routing.stats.routed


@dataclass
class _Round:
    """One pair: the verifying relay's and the router's rate and CPU per event."""

    relay: tuple[float, float]
    router: tuple[float, float]
    routed: int
    audited: int


async def _round(
    number: int,
    *,
    bootstrap: str,
    registry: AgencyRegistry,
    route: Callable[[bytes], Iterable[str]],
    directory: Path,
    events: int,
    timeout: float,
    store_kind: str,
    server: str,
) -> _Round:
    """Relay and router over the same events, the relay first in odd rounds."""

    async def relay() -> tuple[float, float]:
        return await _relay(bootstrap, f"verifying-relay-{number}", route, events, timeout)

    async def router() -> tuple[float, float, int, int]:
        async with router_store(store_kind, server, directory, f"router-{number}") as url:
            store = make_engine(url)
            try:
                await migrate(store)
                rate, cpu, routed = await _router(
                    bootstrap, registry, store, events, timeout, group_id=f"bench-router-{number}"
                )
                return rate, cpu, routed, await _audited(store)
            finally:
                await store.dispose()

    if number % 2:
        relayed = await relay()
        rate, cpu, routed, audited = await router()
    else:
        rate, cpu, routed, audited = await router()
        relayed = await relay()
    return _Round(relayed, (rate, cpu), routed, audited)


async def _audited(store: AsyncEngine) -> int:
    async with store.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(audit_records)) or 0)


async def bench_router(
    events: int,
    timeout: float = 300.0,
    rounds: int = 3,
    *,
    store: str = "sqlite",
    database_url: str = DEFAULT_POSTGRES,
) -> RouterBench:
    """The verifying relay and the router in `rounds` pairs; the router's store a SQLite
    file, or with `store="postgres"` a database made on `database_url` for each router."""
    if store not in STORES:
        raise UserError(f"--store: one of {', '.join(STORES)}")
    if store == "postgres":
        await check_reachable(database_url)
    settings = Settings()
    plain = load_registry(settings.registry)
    keys = {agency.code: AgencyKeys.generate(agency.code) for agency in plain.agencies}
    registry = with_signing_keys(plain, {code: k.public_key for code, k in keys.items()})
    messages = case_events(registry, keys, events)
    with (
        long_lived_frozen(),  # as in the router's own process (`service_main`), for both sides
        tempfile.TemporaryDirectory(prefix="ketenbus-bench-") as directory,
        EmbeddedBroker(free_port()) as embedded,
    ):
        names = [*bus_topics(registry), RAW_TOPIC]
        await ensure_topics(embedded.bootstrap, names, partitions=settings.topic_partitions)
        await _produce_all(embedded.bootstrap, messages)
        bare, _ = await _relay(embedded.bootstrap, "raw-relay", _bare, events, timeout)
        route = _verified(registry, _inboxes(registry, messages))
        pairs = [
            await _round(
                n,
                bootstrap=embedded.bootstrap,
                registry=registry,
                route=route,
                directory=Path(directory),
                events=events,
                timeout=timeout,
                store_kind=store,
                server=database_url,
            )
            for n in range(1, rounds + 1)
        ]
    ratios = [p.router[0] / p.relay[0] for p in pairs]
    baseline_cpu = median(p.relay[1] for p in pairs)
    router_cpu = median(p.router[1] for p in pairs)
    last = pairs[-1]
    return RouterBench(
        events=events,
        rounds=rounds,
        store=store,
        baseline_events_per_s=round(median(p.relay[0] for p in pairs), 1),
        bare_relay_events_per_s=round(bare, 1),
        router_events_per_s=round(median(p.router[0] for p in pairs), 1),
        ratio=round(median(ratios), 3),
        round_ratios=[round(r, 3) for r in ratios],
        round_rates=[(round(p.relay[0], 1), round(p.router[0], 1)) for p in pairs],
        # One case-log record per event, and per inbox copy the copy and its audit record.
        router_messages_out=last.routed + 2 * last.audited,
        baseline_cpu_us_per_event=round(baseline_cpu, 1),
        router_cpu_us_per_event=round(router_cpu, 1),
        cpu_ratio=round(baseline_cpu / router_cpu, 3),
    )


def met(result: RouterBench) -> bool:
    """Whether the router meets both targets: the ratio and the absolute rate."""
    return result.ratio >= TARGET_RATIO and result.router_events_per_s >= TARGET_EVENTS_PER_S


def as_dict(result: RouterBench) -> dict[str, Any]:
    return {**asdict(result), "target_met": met(result)}
