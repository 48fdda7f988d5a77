"""`ketenbus bench memory`: each service's resident memory with an empty store, 100k and 1M cases.

For each size the run makes a fresh SQLite store and a fresh private embedded
broker, and bulk-loads the rows the services keep for N open cases held by
belastingdienst: the tracker's `cases`, the router's `case_custody` and the
escalation service's `escalation_cases` with each case's idle timer. The rows
are written straight into the tables (sqlite3 executemany, one transaction):
feeding 1,000,000 cases through Kafka and the services would take hours on
this machine, and the services read the rows as if they had written them.

Then the router, the tracker and the escalation service run as their own
processes (`python -m services.<name>`, with the environment `ketenbus up`
gives them), and a fixed workload goes through them: WORKLOAD signed
`handoff-requested` events (belastingdienst -> gm0363) on distinct random
existing cases, into belastingdienst's outbox (on the empty store, the
baseline: as many events opening WORKLOAD/2 cases and handing each on). The router checks and routes
them, the tracker and the escalation service apply them from the case log.
Each process's RSS (VmRSS in /proc/<pid>/status) is read after the first
fifth of the workload (warm-up) and after the whole of it, with its peak
(VmHWM). The baseline is the same service on an empty store in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench._events import CATEGORY, SENDER, case_events, handoff_request
from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.case import ActionTaken, CaseContext
from contracts.envelope import source_urn
from contracts.registry import AgencyRegistry
from services.demo.keys import demo_keys, demo_registry
from services.escalation.model import Timer
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.runtime.store.engine import make_engine, migrate

SERVICES = ("router", "tracker", "escalation")
WORKLOAD = 20_000
"""Events driven through the services at every size."""
WARMUP_SHARE = 5
"""The first 1/WARMUP_SHARE of the workload is the warm-up."""
LOAD_CHUNK = 50_000
TARGET = 1.2
"""Each service's memory at the largest size within 20% of that at the smallest."""


@dataclass
class Rss:
    """One service's resident memory at one size, in MiB."""

    warm_mib: float
    end_mib: float
    peak_mib: float


@dataclass
class MemoryBench:
    sizes: list[int]
    workload: int
    load_s: dict[str, float]
    """Seconds the bulk load of each size took."""
    rss: dict[str, dict[str, Rss]]
    """service -> size ("0" is the empty-store baseline) -> RSS."""
    ratio: dict[str, float] = field(default_factory=dict)
    """service -> peak RSS at the largest size / at the smallest non-empty size."""
    meets_target: bool = False


def _rss(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of `pid`, in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _uuid(value: uuid.UUID) -> str:
    return value.hex  # SQLAlchemy's Uuid on SQLite: CHAR(32)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DateTime


def _rows(case_ids: Sequence[uuid.UUID], now: datetime, idle: timedelta) -> Iterator[Any]:
    holders = json.dumps([SENDER])
    opened = _time(now)
    due = now + idle
    for case_id in case_ids:
        cid = _uuid(case_id)
        timer = Timer.new("idle", case_id, case_id, due, case_id)
        yield (
            (cid, CATEGORY, SENDER, "open", None, None, None, None, 0, opened, opened, opened),
            (cid, CATEGORY, SENDER, holders, "open", None, None, None, None, 0, opened, opened),
            (
                cid,
                CATEGORY,
                SENDER,
                holders,
                "open",
                None,
                None,
                None,
                None,
                0,
                0,
                None,
                _uuid(uuid.uuid4()),
                1,
                opened,
                opened,
            ),
            (
                _uuid(timer.id),
                cid,
                "idle",
                cid,
                _time(timer.due_at),
                cid,
                None,
                None,
                None,
            ),
        )


def _load(path: Path, case_ids: Sequence[uuid.UUID], idle: timedelta) -> None:
    """Write N cases into the tracker's, the router's and the escalation service's tables."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        statements = (
            "INSERT INTO cases (case_id, category, holder, status, pending_handoff_id,"
            " pending_from, pending_to, pending_deadline, bounce_count, opened_at, updated_at,"
            " last_event_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            "INSERT INTO case_custody (case_id, category, holder, holders, status,"
            " pending_handoff_id, pending_from, pending_to, pending_deadline, bounce_count,"
            " opened_at, last_event_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            "INSERT INTO escalation_cases (case_id, category, holder, holders, status,"
            " pending_handoff_id, pending_from, pending_to, pending_deadline, rejections,"
            " rejections_escalated, escalation_path, correlation_id, sequence, opened_at,"
            " last_event_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            "INSERT INTO escalation_timers (id, case_id, kind, ref, due_at, causation_id,"
            " claimed_by, claimed_until, fired_at) VALUES (?,?,?,?,?,?,?,?,?)",
        )
        now = datetime.now(UTC) - timedelta(days=1)
        rows = _rows(case_ids, now, idle)
        while True:
            chunk = [row for _, row in zip(range(LOAD_CHUNK), rows, strict=False)]
            if not chunk:
                break
            for index, statement in enumerate(statements):
                db.executemany(statement, [row[index] for row in chunk])
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def _workload(
    registry: AgencyRegistry, keys: AgencyKeys, case_ids: Sequence[uuid.UUID], count: int
) -> list[tuple[bytes, bytes]]:
    """`count` signed handoff requests from the holder, each on a distinct existing case."""
    sender = registry.agency(SENDER)
    assert sender is not None
    source = source_urn(sender.oin, "bench")
    now = datetime.now(UTC)
    context = CaseContext(
        actions=[ActionTaken(at=now, agency=SENDER, description="Aanmaning verstuurd")]
    )
    chosen = random.sample(list(case_ids), min(count, len(case_ids)))
    out: list[tuple[bytes, bytes]] = []
    for case_id in chosen:
        event = handoff_request(source, case_id, context, now)
        out.append((str(case_id).encode(), keys.sign(event)))
    return out


def _progress(path: Path) -> tuple[int, int, int]:
    """Events the router delivered, the tracker put on a timeline, the escalation service saw."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        counts = [
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
            for table in ("router_seen_events", "case_timeline", "escalation_seen_events")
        ]
    finally:
        db.close()
    return counts[0], counts[1], counts[2]


async def _drive(
    bootstrap: str, messages: list[tuple[bytes, bytes]], path: Path, done: int, timeout: float
) -> None:
    """Produce `messages`, then wait until every service has handled `done` events in all."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        outbox = topics.outbox(SENDER)
        futures = [await producer.send(outbox, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        routed, tracked, seen = _progress(path)
        if min(routed, tracked, seen) >= done:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the services handled {_progress(path)} of {done} events")


async def _run_size(
    size: int,
    *,
    registry: AgencyRegistry,
    registry_path: Path,
    keys: AgencyKeys,
    directory: Path,
    idle: timedelta,
    workload: int,
    timeout: float,
) -> tuple[dict[str, Rss], float]:
    path = directory / f"store-{size}.db"
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    case_ids = [uuid.uuid4() for _ in range(size)]
    started = time.perf_counter()
    _load(path, case_ids, idle)
    load_s = time.perf_counter() - started
    if case_ids:
        messages = _workload(registry, keys, case_ids, workload)
    else:  # the empty store: as many events, opening cases and handing them on
        messages = case_events(registry, {SENDER: keys}, workload)
    del case_ids
    settings = Settings()
    with EmbeddedBroker(free_port()) as embedded:
        await ensure_topics(
            embedded.bootstrap, bus_topics(registry), partitions=settings.topic_partitions
        )
        env = {
            **os.environ,
            "KETENBUS_KAFKA_BOOTSTRAP": embedded.bootstrap,
            "KETENBUS_KAFKA_SESSION_TIMEOUT_MS": str(EMBEDDED_SESSION_TIMEOUT_MS),
            "KETENBUS_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "KETENBUS_DATABASE_URL": url,
            "KETENBUS_REGISTRY": str(registry_path),
            "KETENBUS_HEALTH_PORT": "0",
            "KETENBUS_LOG_LEVEL": "warning",
        }
        processes = {
            name: await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{name}",
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            for name in SERVICES
        }
        try:
            warm = workload // WARMUP_SHARE
            await _drive(embedded.bootstrap, messages[:warm], path, warm, timeout)
            warm_rss = {name: _rss(p.pid)[0] for name, p in processes.items()}
            await _drive(embedded.bootstrap, messages[warm:], path, len(messages), timeout)
            end = {name: _rss(p.pid) for name, p in processes.items()}
            for name, process in processes.items():
                if process.returncode is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}")
        finally:
            for process in processes.values():
                if process.returncode is None:
                    process.terminate()
            for process in processes.values():
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    path.unlink(missing_ok=True)
    return {
        name: Rss(round(warm_rss[name], 1), round(end[name][0], 1), round(end[name][1], 1))
        for name in SERVICES
    }, load_s


async def bench_memory(
    sizes: Sequence[int], workload: int = WORKLOAD, timeout: float = 600.0
) -> MemoryBench:
    settings = Settings()
    plain = load_registry(settings.registry)
    category = plain.category(CATEGORY)
    assert category is not None
    assert category.idle_limit is not None
    result = MemoryBench(sizes=list(sizes), workload=workload, load_s={}, rss={})
    with tempfile.TemporaryDirectory(prefix="ketenbus-bench-") as name:
        directory = Path(name)
        registry_path = demo_registry(directory, plain)
        registry = load_registry(registry_path)
        keys = demo_keys(directory, plain)[SENDER]
        for size in (0, *sizes):
            rss, load_s = await _run_size(
                size,
                registry=registry,
                registry_path=registry_path,
                keys=keys,
                directory=directory,
                idle=category.idle_limit,
                workload=workload,
                timeout=timeout,
            )
            result.load_s[str(size)] = round(load_s, 1)
            for service, figures in rss.items():
                result.rss.setdefault(service, {})[str(size)] = figures
    if len(sizes) >= 2:
        small, large = str(min(sizes)), str(max(sizes))
        result.ratio = {
            service: round(by[large].peak_mib / by[small].peak_mib, 3)
            for service, by in result.rss.items()
        }
        result.meets_target = all(r <= TARGET for r in result.ratio.values())
    return result


def as_dict(result: MemoryBench) -> dict[str, Any]:
    return asdict(result)
