"""`ketenbus bench gateway`: the gateway's ingress against a minimal HTTP-to-Kafka relay.

Both sides are HTTP servers on 127.0.0.1, each its own process, on the same
private embedded broker, producing to the same topic (the sender's outbox):

- the gateway, as it runs in production (`python -m services.gateway`, its
  settings from the environment, logging at INFO as JSON to a file): bearer
  token (a token issued as `ketenbus gateway token new` does, in a temporary
  SQLite store), rate, size and media type, each event parsed as the envelope
  says, the ids seen before looked up, the events produced with acks=all, their
  ids recorded, 202. Its rate limit is set far above the offered load
  (`BENCH_RATE`), so it is counted but never refuses. Its webhook side runs
  too, idle (no subscriptions).
- the floor (`python -m bench._gateway_http relay`): one Starlette route on
  the same uvicorn set-up that reads the body, takes the case id from its
  `subject` as the key and awaits `send_and_wait` on a producer set as the
  gateway's (acks=all, linger 5 ms, 256 KB batches), then answers 202.

The load is the same for both: this process, an httpx AsyncClient on a pool of
`concurrency` kept-alive connections, `concurrency` requests in flight at any
time (closed loop), signed events as an agency system sends them
(`bench._events`: belastingdienst opens a case, then hands it to gm0363 with
sealed personal data), one per request (structured mode) or `batch` per
request (batch mode). Fresh events each round (the gateway answers an id it
took before as repeated, and sends it no more); both sides of a round send the
same ones. Each server is warmed up first (connections, metadata), unmeasured.

Relay and gateway run in `rounds` pairs, the order alternating, as `bench
router` does: the figures are the medians, the ratio the median of the pairs'
own ratios. A side's rate runs from its first request to its last answer.
Every answer must be 202 (the gateway's naming each event accepted, none
repeated), and at the end the outbox must hold exactly the events both sides
were answered 202 for. Also reported: each server process's CPU per event
and the load generator's (this process's), so a limit of the client shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench._events import SENDER, case_events
from bench._gateway_child import Child, child_env
from bench._gateway_load import (
    CLIENTS,
    Post,
    RawConnection,
    httpx_post,
    httpx_quiet,
    post_all,
)
from bench._gateway_store import bench_store
from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.gateway import tokens
from services.gateway.intake import BATCH, MAX_BATCH_EVENTS, STRUCTURED
from services.runtime.config.registry import load_registry, with_signing_keys
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.runtime.process.heap import long_lived_frozen

TARGET_RATIO = 0.7
OUTBOX = topics.outbox(SENDER)
BENCH_RATE = 1_000_000
"""KETENBUS_GATEWAY_RATE and _BURST for the benchmark's gateway: a moving window of a
second, which the offered load never fills (the limiter's work is still done)."""
WARMUP_EVENTS = 200
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0


@dataclass
class GatewayBench:
    """Both sides' events/s on the same load; the ratio is the gateway's to the relay's."""

    events: int
    """Events each side took in each round."""
    rounds: int
    concurrency: int
    batch: int
    """Events per request: 1 is structured mode, more is batch mode."""
    client: str
    """The load generator: raw (HTTP/1.1 on asyncio streams) or httpx."""
    database: str
    """The gateway's store: sqlite or postgresql."""
    relay_events_per_s: float
    gateway_events_per_s: float
    ratio: float
    """The median of each round's gateway / relay."""
    round_ratios: list[float]
    round_rates: list[tuple[float, float]]
    """Each round's (relay, gateway) events/s, in the order run."""
    relay_cpu_us_per_event: float
    gateway_cpu_us_per_event: float
    """Each server process's CPU (all threads) per event over its phases, median of the
    rounds: steadier than the rates when other work shares the machine."""
    cpu_ratio: float
    """relay CPU per event / gateway CPU per event."""
    client_cpu_us_per_event: float
    """The load generator's CPU per event (this process), median over every phase."""
    relay_accepted: int
    gateway_accepted: int
    """Events answered 202 over all rounds (the gateway's: named under `accepted`)."""
    gateway_repeated: int
    """Events the gateway answered as taken before: 0 unless something is wrong."""
    on_outbox: int
    """Records on the outbox at the end: warm-ups and both sides' accepted events."""
    expected_on_outbox: int
    load: str
    """The load average when the run ended (1, 5, 15 min): the machine is shared."""


@dataclass(frozen=True)
class _Load:
    """What both sides are sent, and how."""

    token: str
    batch: int
    concurrency: int
    client: str


@dataclass
class _Phase:
    events_per_s: float
    server_cpu_us: float
    client_cpu_us: float
    accepted: int
    repeated: int


def _requests(messages: Sequence[tuple[bytes, bytes]], batch: int) -> list[tuple[bytes, int]]:
    """The request bodies and how many events each carries: one event, or batches."""
    values = [value for _, value in messages]
    if batch == 1:
        return [(value, 1) for value in values]
    groups = [values[i : i + batch] for i in range(0, len(values), batch)]
    return [(b"[" + b",".join(group) + b"]", len(group)) for group in groups]


async def _phase(
    port: int,
    server: Child,
    requests: list[tuple[bytes, int]],
    *,
    load: _Load,
    timeout: float,
) -> _Phase:
    """All `requests` to `server`, `load.concurrency` in flight; every answer must be 202."""
    headers = {
        "content-type": BATCH if load.batch > 1 else STRUCTURED,
        "authorization": f"Bearer {load.token}",
    }
    events = sum(count for _, count in requests)
    # New connections each phase: uvicorn closes a connection idle for 5 s, as the other
    # side's phase may leave it, and a POST on a connection closed under it fails.
    async with contextlib.AsyncExitStack() as stack:
        posts: list[Post] = []
        for _ in range(load.concurrency):
            if load.client == "httpx":
                client = await stack.enter_async_context(_httpx_client(port))
                posts.append(httpx_post(client, "/v1/events", headers))
            else:
                connection = RawConnection(port, "/v1/events", headers)
                stack.push_async_callback(connection.close)
                posts.append(connection.post)
        server_cpu, cpu, started = server.cpu_s(), time.process_time(), time.perf_counter()
        answers = await asyncio.wait_for(post_all(posts, [body for body, _ in requests]), timeout)
        wall = time.perf_counter() - started
        cpu, server_cpu = time.process_time() - cpu, server.cpu_s() - server_cpu
    refused = [answer for answer in answers if answer.status != 202]
    if refused:
        first = refused[0]
        raise RuntimeError(
            f"the {server.name} refused {len(refused)} of {len(answers)} requests; "
            f"first: {first.status} {first.body[:500]!r}"
        )
    accepted, repeated = events, 0
    if server.name == "gateway":  # it names the events it took; the relay only says 202
        named = [orjson.loads(answer.body) for answer in answers]
        accepted = sum(len(answer["accepted"]) for answer in named)
        repeated = sum(len(answer["repeated"]) for answer in named)
    return _Phase(
        events_per_s=events / wall,
        server_cpu_us=server_cpu / events * 1e6,
        client_cpu_us=cpu / events * 1e6,
        accepted=accepted,
        repeated=repeated,
    )


async def _count_records(bootstrap: str, partitions: int, expected: int, timeout: float) -> int:
    """The records on the outbox: read from the start until `expected` (or `timeout`),
    then once more, briefly, so a surplus shows too."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(OUTBOX, p) for p in range(partitions)])
        count, deadline = 0, time.monotonic() + timeout
        while count < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            count += sum(len(records) for records in batches.values())
        batches = await consumer.getmany(timeout_ms=200)
        return count + sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()


def _httpx_client(port: int) -> httpx.AsyncClient:
    """One worker's client, on one kept-alive connection (a pool for all costs more:
    `bench._gateway_load`)."""
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=one, timeout=REQUEST_TIMEOUT_S
    )


def _gateway_env(settings: Settings, bootstrap: str, database: str, port: int) -> dict[str, str]:
    return child_env(
        {
            "KETENBUS_KAFKA_BOOTSTRAP": bootstrap,
            "KETENBUS_KAFKA_SESSION_TIMEOUT_MS": str(EMBEDDED_SESSION_TIMEOUT_MS),
            "KETENBUS_DATABASE_URL": database,
            "KETENBUS_REGISTRY": str(settings.registry.resolve()),
            "KETENBUS_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "KETENBUS_GATEWAY_HOST": "127.0.0.1",
            "KETENBUS_GATEWAY_PORT": str(port),
            "KETENBUS_HEALTH_PORT": str(free_port()),
            "KETENBUS_GATEWAY_RATE": str(BENCH_RATE),
            "KETENBUS_GATEWAY_BURST": str(BENCH_RATE),
        }
    )


def _keys_and_registry(settings: Settings) -> tuple[dict[str, AgencyKeys], AgencyRegistry]:
    plain = load_registry(settings.registry)
    keys = {agency.code: AgencyKeys.generate(agency.code) for agency in plain.agencies}
    return keys, with_signing_keys(plain, {code: k.public_key for code, k in keys.items()})


@dataclass(frozen=True)
class _Servers:
    """Where both servers run: the broker, the store, the temporary directory."""

    bootstrap: str
    database: str
    directory: Path
    settings: Settings


async def _rounds(
    servers: _Servers,
    warmups: list[list[tuple[bytes, int]]],
    loads: list[list[tuple[bytes, int]]],
    load: _Load,
    timeout: float,
) -> tuple[list[_Phase], list[tuple[_Phase, _Phase]]]:
    """Start the relay and the gateway, warm each up, run the pairs; both stopped after."""
    relay_port, gateway_port = free_port(), free_port()
    relay = Child(
        "relay",
        [
            "bench._gateway_http",
            "relay",
            f"--port={relay_port}",
            f"--bootstrap={servers.bootstrap}",
            f"--topic={OUTBOX}",
        ],
        child_env({}),
        servers.directory / "relay.log",
        talks=False,
    )
    gateway = Child(
        "gateway",
        ["services.gateway"],
        _gateway_env(servers.settings, servers.bootstrap, servers.database, gateway_port),
        servers.directory / "gateway.log",
        talks=False,
    )
    sides = ((relay_port, relay), (gateway_port, gateway))

    async def side(n: int, requests: list[tuple[bytes, int]]) -> _Phase:
        port, child = sides[n]
        return await _phase(port, child, requests, load=load, timeout=timeout)

    pairs: list[tuple[_Phase, _Phase]] = []
    try:
        for port, child in sides:
            await child.start()
            await child.listening(port, START_TIMEOUT_S)
        warm = [await side(n, warmup) for n, warmup in enumerate(warmups)]
        for number, requests in enumerate(loads, start=1):
            # The relay first in odd rounds, the gateway first in even ones.
            if number % 2:
                relayed = await side(0, requests)
                taken = await side(1, requests)
            else:
                taken = await side(1, requests)
                relayed = await side(0, requests)
            pairs.append((relayed, taken))
            for _, child in sides:
                child.check_alive()
    finally:
        for _, child in sides:
            await child.stop()
    return warm, pairs


async def bench_gateway(
    events: int,
    *,
    rounds: int = 3,
    concurrency: int = 64,
    batch: int = 1,
    client: str = "raw",
    database: str = "sqlite",
    timeout: float = 300.0,
) -> GatewayBench:
    if not 1 <= batch <= MAX_BATCH_EVENTS:
        raise ValueError(f"batch must be 1 to {MAX_BATCH_EVENTS}")
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}")
    settings = Settings()
    keys, registry = _keys_and_registry(settings)
    # Every round's events made and signed before any clock runs.
    warmup = min(WARMUP_EVENTS, events)
    warmups = [_requests(case_events(registry, keys, warmup), batch) for _ in range(2)]
    loads = [_requests(case_events(registry, keys, events), batch) for _ in range(rounds)]
    with (
        long_lived_frozen(),  # as the servers' processes do (`service_main`)
        httpx_quiet(),
        tempfile.TemporaryDirectory(prefix="ketenbus-bench-gateway-") as name,
        EmbeddedBroker(free_port()) as embedded,
    ):
        directory = Path(name)
        bootstrap, partitions = embedded.bootstrap, settings.topic_partitions
        await ensure_topics(bootstrap, bus_topics(registry), partitions=partitions)
        async with bench_store(database, directory, "gateway") as (url, store):
            token = await tokens.issue(store, SENDER, "bench")  # as `ketenbus gateway token new`
            warm, pairs = await _rounds(
                _Servers(bootstrap, url, directory, settings),
                warmups,
                loads,
                _Load(token, batch, concurrency, client),
                timeout,
            )
        expected = sum(p.accepted for p in warm) + sum(p.accepted for pair in pairs for p in pair)
        on_outbox = await _count_records(bootstrap, partitions, expected, timeout)
    ratios = [taken.events_per_s / relayed.events_per_s for relayed, taken in pairs]
    relay_cpu = median(relayed.server_cpu_us for relayed, _ in pairs)
    gateway_cpu = median(taken.server_cpu_us for _, taken in pairs)
    return GatewayBench(
        events=events,
        rounds=rounds,
        concurrency=concurrency,
        batch=batch,
        client=client,
        database=database,
        relay_events_per_s=round(median(relayed.events_per_s for relayed, _ in pairs), 1),
        gateway_events_per_s=round(median(taken.events_per_s for _, taken in pairs), 1),
        ratio=round(median(ratios), 3),
        round_ratios=[round(r, 3) for r in ratios],
        round_rates=[(round(r.events_per_s, 1), round(t.events_per_s, 1)) for r, t in pairs],
        relay_cpu_us_per_event=round(relay_cpu, 1),
        gateway_cpu_us_per_event=round(gateway_cpu, 1),
        cpu_ratio=round(relay_cpu / gateway_cpu, 3),
        client_cpu_us_per_event=round(median(p.client_cpu_us for pair in pairs for p in pair), 1),
        relay_accepted=sum(relayed.accepted for relayed, _ in pairs),
        gateway_accepted=sum(taken.accepted for _, taken in pairs),
        gateway_repeated=sum(taken.repeated for _, taken in pairs),
        on_outbox=on_outbox,
        expected_on_outbox=expected,
        load=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )


def met(result: GatewayBench) -> bool:
    return result.ratio >= TARGET_RATIO


def as_dict(result: GatewayBench) -> dict[str, Any]:
    return {**asdict(result), "target_met": met(result)}
