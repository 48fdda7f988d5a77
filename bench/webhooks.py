"""`ketenbus bench webhooks`: the gateway's webhook delivery against a bare httpx sender.

Both send the same bodies to the same loopback receiver
(`python -m bench._gateway_http receiver`: the abuse-protection handshake, 200
to every POST, each counted), each side as its own process, as the gateway's
dispatcher runs in the gateway's:

- the gateway's delivery path. Signed events (`bench._events`) are put in
  gm0363's inbox on a private embedded broker; gm0363 has one webhook
  subscription (made through the handshake, with an `Authorization` to send),
  and `InboxIntake` (`services.gateway.inbox`) takes the inbox's records, in
  batches as the gateway's consumer reads them, into pending deliveries in a
  temporary store. Then the gateway's own `Dispatcher` (its `run` loop, its
  settings, its httpx client, logging at INFO as JSON to a file:
  `python -m bench._gateway_http dispatcher`) delivers them: each round claims
  up to `ROUND` deliveries under a lease, the oldest pending of each case
  only, POSTs each with its Standard Webhooks signature and records every
  attempt and its outcome.
- the floor (`python -m bench._gateway_http sender`): the same bodies, read
  from the same store before its clock starts, POSTed bare (Content-Type
  only) with a client made as the gateway makes its client, `ROUND` in flight
  (the dispatcher's most), and nothing recorded.

A side's rate runs from its first POST (the dispatcher's: its first round) to
its last answer. Sender and dispatcher run in `rounds` pairs, the order
alternating, each pair on a new store with the same events; the figures are
the medians, the ratio the median of the pairs' own ratios. The receiver must
have counted every POST of each side, and the store must hold every delivery
delivered, after exactly one attempt each. The intake's rate (inbox records
into deliveries) is printed for information; it is not part of either figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._events import RECEIVER, case_events
from bench._gateway_child import Child, child_env
from bench._gateway_load import httpx_quiet
from bench._gateway_store import bench_store
from contracts import topics
from contracts.agency_client import AgencyKeys
from services.gateway import subscriptions
from services.gateway.__main__ import MAX_RECORDS
from services.gateway.dispatch import ROUND
from services.gateway.inbox import InboxIntake
from services.runtime.config.registry import load_registry, with_signing_keys
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.runtime.process.heap import long_lived_frozen
from services.runtime.store.tables import webhook_attempts, webhook_deliveries

TARGET_RATIO = 0.7
INBOX = topics.inbox(RECEIVER)
START_TIMEOUT_S = 60.0


@dataclass
class WebhooksBench:
    """Both sides' deliveries/s to the same receiver; the ratio is the dispatcher's to the
    bare sender's."""

    events: int
    """Deliveries each side made in each round."""
    rounds: int
    concurrency: int
    """POSTs in flight at most: the dispatcher's round (`ROUND`), and so the sender's."""
    database: str
    sender_deliveries_per_s: float
    dispatcher_deliveries_per_s: float
    ratio: float
    """The median of each round's dispatcher / sender."""
    round_ratios: list[float]
    round_rates: list[tuple[float, float]]
    """Each round's (sender, dispatcher) deliveries/s, in the order run."""
    sender_cpu_us_per_delivery: float
    dispatcher_cpu_us_per_delivery: float
    """Each side's process CPU (all threads) per delivery over its phase, median of rounds."""
    cpu_ratio: float
    """sender CPU per delivery / dispatcher CPU per delivery."""
    intake_events_per_s: float
    """Inbox records taken into deliveries per second (informative), median of rounds."""
    sender_received: int
    dispatcher_received: int
    """POSTs the receiver counted from each side, over all rounds."""
    delivered: int
    """Deliveries the stores hold as delivered, over all rounds."""
    attempts: int
    """Attempts the stores recorded, over all rounds: one per delivery."""
    load: str
    """The load average when the run ended (1, 5, 15 min): the machine is shared."""


@dataclass
class _Side:
    per_s: float
    cpu_us: float
    received: int


@dataclass
class _Pair:
    """One round: both sides, the intake's rate, and what the store holds after it."""

    sender: _Side
    dispatcher: _Side
    intake_per_s: float
    delivered: int
    attempts: int


async def _produce(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(INBOX, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _intake(
    bootstrap: str, partitions: int, engine: AsyncEngine, events: int, timeout: float
) -> float:
    """The inbox's records, read from the start in batches as the gateway's consumer reads
    them, taken into deliveries; records per second."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    intake = InboxIntake(engine)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(INBOX, p) for p in range(partitions)])
        read = taken = 0
        started = 0.0
        deadline = time.monotonic() + timeout
        while read < events and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
            records = [record for batch in batches.values() for record in batch]
            if records and not started:
                started = time.perf_counter()
            read += len(records)
            taken += await intake.take(records)
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    if taken != events:
        raise RuntimeError(f"the intake made {taken} deliveries of {events} inbox records")
    return events / seconds


async def _received(client: httpx.AsyncClient) -> int:
    count: int = (await client.get("/count")).json()["received"]
    return count


async def _side(child: Child, receiver: httpx.AsyncClient, events: int, timeout: float) -> _Side:
    """Start `child`'s measured phase and wait for its figures; the receiver must have had
    every POST."""
    before = await _received(receiver)
    await child.say("go")
    report = json.loads(await child.line(timeout))
    await child.ended()  # its clean-up is not the other side's phase
    received = await _received(receiver) - before
    if (events, events) != (report["count"], received):
        raise RuntimeError(
            f"the {child.name} made {report['count']} of {events} deliveries; "
            f"the receiver counted {received}"
        )
    return _Side(events / report["seconds"], report["cpu_s"] / events * 1e6, received)


async def _outcome(engine: AsyncEngine) -> tuple[int, int]:
    """Deliveries delivered, and attempts recorded."""
    t = webhook_deliveries.c
    async with engine.connect() as connection:
        delivered = await connection.scalar(
            select(func.count()).select_from(webhook_deliveries).where(t.status == "delivered")
        )
        attempts = await connection.scalar(select(func.count()).select_from(webhook_attempts))
    return int(delivered or 0), int(attempts or 0)


@dataclass(frozen=True)
class _Run:
    """What every round shares."""

    bootstrap: str
    partitions: int
    directory: Path
    database: str
    registry_path: Path
    receiver_port: int
    events: int
    timeout: float


async def _round(number: int, run: _Run, receiver: httpx.AsyncClient) -> _Pair:
    """One pair on a new store, the sender first in odd rounds."""
    registry = load_registry(run.registry_path)
    callback = f"http://127.0.0.1:{run.receiver_port}/hook"
    async with bench_store(run.database, run.directory, f"webhooks-{number}") as (url, engine):
        async with httpx.AsyncClient() as handshake:
            await subscriptions.subscribe(
                engine,
                registry,
                handshake,
                agency=RECEIVER,
                callback_url=callback,
                authorization="Bearer bench",
            )
        intake = await _intake(run.bootstrap, run.partitions, engine, run.events, run.timeout)
        env = child_env(
            {
                "KETENBUS_KAFKA_BOOTSTRAP": run.bootstrap,
                "KETENBUS_KAFKA_SESSION_TIMEOUT_MS": str(EMBEDDED_SESSION_TIMEOUT_MS),
                "KETENBUS_DATABASE_URL": url,
                "KETENBUS_REGISTRY": str(run.registry_path),
            }
        )
        timeout = f"--timeout={run.timeout}"
        sender = Child(
            "bare sender",
            [
                "bench._gateway_http",
                "sender",
                f"--database={url}",
                f"--url={callback}",
                f"--concurrency={ROUND}",
                timeout,
            ],
            env,
            run.directory / f"sender-{number}.log",
            talks=True,
        )
        dispatcher = Child(
            "dispatcher",
            ["bench._gateway_http", "dispatcher", f"--expect={run.events}", timeout],
            env,
            run.directory / f"dispatcher-{number}.log",
            talks=True,
        )
        try:
            # Both set up before either is timed, so neither start-up meets the other's phase.
            await asyncio.gather(sender.start(), dispatcher.start())
            for child in (sender, dispatcher):
                if await child.line(START_TIMEOUT_S) != "ready":
                    raise RuntimeError(f"the {child.name} did not say it was ready")
            order = (sender, dispatcher) if number % 2 else (dispatcher, sender)
            sides = {c.name: await _side(c, receiver, run.events, run.timeout) for c in order}
        finally:
            await sender.stop()
            await dispatcher.stop()
        delivered, attempts = await _outcome(engine)
    if (run.events, run.events) != (delivered, attempts):
        raise RuntimeError(
            f"the store holds {delivered} deliveries delivered of {run.events}, "
            f"after {attempts} attempts"
        )
    return _Pair(sides["bare sender"], sides["dispatcher"], intake, delivered, attempts)


async def bench_webhooks(
    events: int, *, rounds: int = 3, database: str = "sqlite", timeout: float = 300.0
) -> WebhooksBench:
    settings = Settings()
    plain = load_registry(settings.registry)
    keys = {agency.code: AgencyKeys.generate(agency.code) for agency in plain.agencies}
    registry = with_signing_keys(plain, {code: k.public_key for code, k in keys.items()})
    messages = case_events(registry, keys, events)
    with (
        long_lived_frozen(),
        httpx_quiet(),  # this process's few requests: the handshake and the receiver's counts
        tempfile.TemporaryDirectory(prefix="ketenbus-bench-webhooks-") as name,
        EmbeddedBroker(free_port()) as embedded,
    ):
        directory = Path(name)
        partitions = settings.topic_partitions
        await ensure_topics(embedded.bootstrap, bus_topics(plain), partitions=partitions)
        await _produce(embedded.bootstrap, messages)
        port = free_port()
        receiver = Child(
            "receiver",
            ["bench._gateway_http", "receiver", f"--port={port}"],
            child_env({}),
            directory / "receiver.log",
            talks=False,
        )
        run = _Run(
            embedded.bootstrap,
            partitions,
            directory,
            database,
            settings.registry.resolve(),
            port,
            events,
            timeout,
        )
        try:
            await receiver.start()
            await receiver.listening(port, START_TIMEOUT_S)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as counts:
                pairs = [await _round(n, run, counts) for n in range(1, rounds + 1)]
        finally:
            await receiver.stop()
    ratios = [p.dispatcher.per_s / p.sender.per_s for p in pairs]
    sender_cpu = median(p.sender.cpu_us for p in pairs)
    dispatcher_cpu = median(p.dispatcher.cpu_us for p in pairs)
    return WebhooksBench(
        events=events,
        rounds=rounds,
        concurrency=ROUND,
        database=database,
        sender_deliveries_per_s=round(median(p.sender.per_s for p in pairs), 1),
        dispatcher_deliveries_per_s=round(median(p.dispatcher.per_s for p in pairs), 1),
        ratio=round(median(ratios), 3),
        round_ratios=[round(r, 3) for r in ratios],
        round_rates=[(round(p.sender.per_s, 1), round(p.dispatcher.per_s, 1)) for p in pairs],
        sender_cpu_us_per_delivery=round(sender_cpu, 1),
        dispatcher_cpu_us_per_delivery=round(dispatcher_cpu, 1),
        cpu_ratio=round(sender_cpu / dispatcher_cpu, 3),
        intake_events_per_s=round(median(p.intake_per_s for p in pairs), 1),
        sender_received=sum(p.sender.received for p in pairs),
        dispatcher_received=sum(p.dispatcher.received for p in pairs),
        delivered=sum(p.delivered for p in pairs),
        attempts=sum(p.attempts for p in pairs),
        load=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )


def met(result: WebhooksBench) -> bool:
    return result.ratio >= TARGET_RATIO


def as_dict(result: WebhooksBench) -> dict[str, Any]:
    return {**asdict(result), "target_met": met(result)}
