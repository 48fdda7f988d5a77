"""`ketenbus bench router`: the router against a raw aiokafka relay, same broker, same events.

The relay is the floor: it consumes the outbox and produces every message to
one topic, with no parsing or checks. The router does all its work: it parses
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
SQLite database, migrated for the run and removed after. Both run on a private
embedded broker, started for the run and stopped after.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._events import SENDER, case_events
from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.router.app import create_router
from services.router.routing import Admitted, CaseRouting, OutboxMessage
from services.runtime.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.kafka import Outgoing
from services.runtime.registry_file import load_registry, with_signing_keys
from services.runtime.settings import Settings
from services.runtime.store import make_engine, migrate
from services.runtime.tables import audit_records
from services.runtime.topics import bus_topics, ensure_topics

RAW_TOPIC = "bench.raw.cases"
OUTBOX = topics.outbox(SENDER)


@dataclass
class RouterBench:
    """Both rates on the same events; the router's includes signatures, custody and audit."""

    events: int
    raw_events_per_s: float
    router_events_per_s: float
    ratio: float
    router_messages_out: int
    """Case log records, inbox copies and audit records the router produced."""


async def _produce_all(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(OUTBOX, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _raw_relay(bootstrap: str, count: int, timeout: float) -> float:
    consumer = AIOKafkaConsumer(
        OUTBOX,
        bootstrap_servers=bootstrap,
        group_id="bench-raw-relay",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=500,
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    done, started = 0, 0.0
    deadline = time.monotonic() + timeout
    try:
        while done < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            if batches and not started:
                started = time.perf_counter()
            futures = [
                await producer.send(RAW_TOPIC, record.value, key=record.key)
                for records in batches.values()
                for record in records
            ]
            await asyncio.gather(*futures)
            await consumer.commit()
            done += len(futures)
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()
    if done < count:
        raise TimeoutError(f"raw relay moved {done} of {count} events in {timeout:.0f} s")
    return count / elapsed


class _TimedRouting(CaseRouting):
    """The router's checks, noting when the first message reached them: the clock's start."""

    first_check = 0.0

    def check(self, message: OutboxMessage) -> Admitted | list[Outgoing]:
        if not self.first_check:
            self.first_check = time.perf_counter()
        return super().check(message)


async def _router(
    bootstrap: str, registry: AgencyRegistry, store: AsyncEngine, count: int, timeout: float
) -> tuple[float, int]:
    settings = Settings(kafka_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS)
    routing = _TimedRouting(registry)
    broker = create_router(
        settings, registry, bootstrap, store, group_id="bench-router", routing=routing
    )
    await broker.start()
    deadline = time.monotonic() + timeout
    try:
        # From the first message checked to the last batch committed (as the relay's
        # clock runs from its first batch): the group join before it is not routing.
        while routing.stats.completed < count:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - routing.first_check
    finally:
        await broker.stop()
    if routing.stats.completed < count:
        raise TimeoutError(
            f"router completed {routing.stats.completed} of {count} in {timeout:.0f} s"
        )
    if routing.stats.rejected:
        raise RuntimeError(f"router rejected benchmark events: {routing.stats.rejected}")
    return count / elapsed, routing.stats.routed


async def _audited(store: AsyncEngine) -> int:
    async with store.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(audit_records)) or 0)


async def bench_router(events: int, timeout: float = 300.0) -> RouterBench:
    settings = Settings()
    plain = load_registry(settings.registry)
    keys = {agency.code: AgencyKeys.generate(agency.code) for agency in plain.agencies}
    registry = with_signing_keys(plain, {code: k.public_key for code, k in keys.items()})
    messages = case_events(registry, keys, events)
    with (
        tempfile.TemporaryDirectory(prefix="ketenbus-bench-") as directory,
        EmbeddedBroker(free_port()) as embedded,
    ):
        store = make_engine(f"sqlite+aiosqlite:///{Path(directory) / 'router.db'}")
        try:
            await migrate(store)
            names = [*bus_topics(registry), RAW_TOPIC]
            await ensure_topics(embedded.bootstrap, names, partitions=settings.topic_partitions)
            await _produce_all(embedded.bootstrap, messages)
            raw = await _raw_relay(embedded.bootstrap, events, timeout)
            router, routed = await _router(embedded.bootstrap, registry, store, events, timeout)
            audited = await _audited(store)
        finally:
            await store.dispose()
    return RouterBench(
        events=events,
        raw_events_per_s=round(raw, 1),
        router_events_per_s=round(router, 1),
        ratio=round(router / raw, 3),
        # One case-log record per event, and per inbox copy the copy and its audit record.
        router_messages_out=routed + 2 * audited,
    )


def as_dict(result: RouterBench) -> dict[str, float | int]:
    return asdict(result)
