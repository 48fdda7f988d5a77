"""`ketenbus bench router`: the router against a raw aiokafka relay, same broker, same events.

The relay is the floor: it consumes the outbox and produces every message to
one topic, with no parsing or checks. The router does all its work (parse,
validate, authorise, fan out to the case log and the inboxes, dead-letter).
Both run on a private embedded broker, started for the run and stopped after.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench._events import handoff_requests
from contracts import topics
from services.router.app import create_router
from services.router.routing import CaseRouting
from services.runtime.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.registry_file import load_registry
from services.runtime.settings import Settings
from services.runtime.topics import bus_topics, ensure_topics

RAW_TOPIC = "bench.raw.cases"
OUTBOX = topics.outbox("belastingdienst")


@dataclass
class RouterBench:
    events: int
    raw_events_per_s: float
    router_events_per_s: float
    ratio: float
    router_messages_out: int


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


async def _router(bootstrap: str, count: int, timeout: float) -> tuple[float, int]:
    settings = Settings(kafka_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS)
    registry = load_registry(settings.registry)
    routing = CaseRouting(registry)
    broker = create_router(settings, registry, bootstrap, group_id="bench-router", routing=routing)
    await broker.start()
    started = 0.0
    deadline = time.monotonic() + timeout
    try:
        while routing.stats.completed < count and time.monotonic() < deadline:
            if not started and routing.stats.seen:
                started = time.perf_counter()
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
    finally:
        await broker.stop()
    if routing.stats.completed < count:
        raise TimeoutError(
            f"router completed {routing.stats.completed} of {count} in {timeout:.0f} s"
        )
    if routing.stats.rejected:
        raise RuntimeError(f"router rejected benchmark events: {routing.stats.rejected}")
    return count / elapsed, routing.stats.routed


async def bench_router(events: int, timeout: float = 300.0) -> RouterBench:
    settings = Settings()
    registry = load_registry(settings.registry)
    messages = handoff_requests(registry, events)
    with EmbeddedBroker(free_port()) as embedded:
        names = [*bus_topics(registry), RAW_TOPIC]
        await ensure_topics(embedded.bootstrap, names, partitions=settings.topic_partitions)
        await _produce_all(embedded.bootstrap, messages)
        raw = await _raw_relay(embedded.bootstrap, events, timeout)
        router, routed = await _router(embedded.bootstrap, events, timeout)
    return RouterBench(
        events=events,
        raw_events_per_s=round(raw, 1),
        router_events_per_s=round(router, 1),
        ratio=round(router / raw, 3),
        router_messages_out=routed * 2,
    )


def as_dict(result: RouterBench) -> dict[str, float | int]:
    return asdict(result)
