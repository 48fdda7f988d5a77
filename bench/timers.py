"""`ketenbus bench timers`: how late the escalation service fires alerts with N open timers.

The state is what the service itself keeps for N open, idle cases: one row
per case in `escalation_cases` (category schulden, last agency event exactly
its idle limit before the timer's due time) and one unfired `idle` timer per
case in `escalation_timers`, set as `react` sets it (id derived from kind,
ref and due time). The rows are bulk-inserted (executemany, one transaction):
the cases did not arrive through Kafka, the timers are as the service stored
them. Their due times are spread evenly over a window of real time that
starts a few seconds after the insert.

The real `EscalationService` runs on a private embedded broker and a
temporary SQLite database (or a PostgreSQL database made for the run and
dropped after). When a timer falls due it claims it under a lease, raises
an escalation (level 1 of the category's path), appends the audit record of
the team's inbox copy, produces the alert to `ketenbus.escalations`, the case
log and the inbox, and records the timer fired. An alert's lateness is the
Kafka timestamp of its `ketenbus.escalations` record (set when the service
hands it to its producer) minus its timer's due time.

The floor, measured first in the same run on the same kind of store and the
same broker: a loop that selects the due timers (by the same index), produces
one message per timer, marks them fired in one transaction, and sleeps until
the next due time. Its lateness is the clock resolution of such a loop plus
what one produce wave and one update cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from services.escalation.model import Timer
from services.escalation.service import EscalationService
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.observability.logging import configure
from services.runtime.process.heap import long_lived_frozen
from services.runtime.store.engine import make_engine, migrate, write_transaction
from services.runtime.store.tables import escalation_cases, escalation_timers

CATEGORY = "schulden"
HOLDER = "belastingdienst"
FLOOR_TOPIC = "bench.timers.floor"
INSERT_CHUNK = 5_000
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_BENCH_DB = "bench_timers_m"


@dataclass
class Lateness:
    """How late the alerts came, in milliseconds after their due time."""

    fired: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class TimersBench:
    timers: int
    window_s: float
    database: str
    insert_s: float
    """Wall time of the bulk insert of the N cases and timers (service phase)."""
    floor: Lateness
    service: Lateness
    target_p99_ms: float
    meets_target: bool


def _lateness(late_ms: list[float]) -> Lateness:
    if not late_ms:
        return Lateness(0, 0.0, 0.0, 0.0)
    ordered = sorted(late_ms)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return Lateness(
        fired=len(ordered),
        p50_ms=round(statistics.median(ordered), 1),
        p99_ms=round(p99, 1),
        max_ms=round(ordered[-1], 1),
    )


def _due_times(count: int, start: datetime, window_s: float) -> list[datetime]:
    step = window_s / max(count, 1)
    # Whole milliseconds: Kafka timestamps have no finer grain, nor need the timers.
    return [start + timedelta(milliseconds=round(i * step * 1000)) for i in range(count)]


async def _insert_state(
    engine: AsyncEngine, due: list[datetime], idle_limit: timedelta
) -> dict[str, datetime]:
    """Bulk-insert one open case and its idle timer per due time; case id -> due time."""
    by_case: dict[str, datetime] = {}
    cases: list[dict[str, Any]] = []
    timers: list[dict[str, Any]] = []
    for at in due:
        case_id = uuid.uuid4()
        last = at - idle_limit
        timer = Timer.new("idle", case_id, case_id, at, uuid.uuid4())
        by_case[str(case_id)] = timer.due_at
        cases.append(
            {
                "case_id": case_id,
                "category": CATEGORY,
                "holder": HOLDER,
                "holders": [HOLDER],
                "status": "open",
                "pending_handoff_id": None,
                "pending_from": None,
                "pending_to": None,
                "pending_deadline": None,
                "rejections": 0,
                "rejections_escalated": 0,
                "escalation_path": None,
                "correlation_id": uuid.uuid4(),
                "sequence": 1,
                "opened_at": last,
                "last_event_at": last,
            }
        )
        timers.append(
            {
                "id": timer.id,
                "case_id": case_id,
                "kind": "idle",
                "ref": case_id,
                "due_at": timer.due_at,
                "causation_id": timer.causation_id,
            }
        )
    async with write_transaction(engine) as connection:
        for start in range(0, len(cases), INSERT_CHUNK):
            await connection.execute(insert(escalation_cases), cases[start : start + INSERT_CHUNK])
            await connection.execute(
                insert(escalation_timers), timers[start : start + INSERT_CHUNK]
            )
    return by_case


async def _read_timestamps(
    bootstrap: str, topic: str, wanted: int, timeout: float, kind: str | None
) -> dict[str, int]:
    """The first Kafka timestamp (ms) per key on `topic`, of events of type `kind` (any: None)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, int] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while len(found) < wanted and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
            for records in batches.values():
                for record in records:
                    if record.key is None:
                        continue
                    if kind is not None and json.loads(record.value)["type"] != kind:
                        continue
                    found.setdefault(record.key.decode(), record.timestamp)
    finally:
        await consumer.stop()
    return found


def _late_ms(stamps: dict[str, int], due: dict[str, datetime]) -> list[float]:
    return [stamp - due[key].timestamp() * 1000 for key, stamp in stamps.items() if key in due]


async def _floor_loop(engine: AsyncEngine, bootstrap: str, count: int, deadline: float) -> None:
    """Select the due timers, produce one message each, mark them fired, sleep to the next."""
    t = escalation_timers.c
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    fired = 0
    try:
        while fired < count and time.monotonic() < deadline:
            now = datetime.now(UTC)
            async with write_transaction(engine) as connection:
                rows = (
                    await connection.execute(
                        select(t.id, t.case_id)
                        .where(t.fired_at.is_(None), t.due_at <= now)
                        .order_by(t.due_at)
                        .limit(1_000)
                    )
                ).all()
                if rows:
                    futures = [
                        await producer.send(FLOOR_TOPIC, b"{}", key=str(r.case_id).encode())
                        for r in rows
                    ]
                    await asyncio.gather(*futures)
                    for start in range(0, len(rows), 1_000):
                        ids = [r.id for r in rows[start : start + 1_000]]
                        await connection.execute(
                            update(escalation_timers).where(t.id.in_(ids)).values(fired_at=now)
                        )
                following = await connection.scalar(
                    select(func.min(t.due_at)).where(t.fired_at.is_(None))
                )
            fired += len(rows)
            if len(rows) >= 1_000:
                continue
            wait = 1.0 if following is None else (following - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(min(max(wait, 0.0), 1.0) if wait > 0 else 0.0)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def _store(
    database: str, directory: Path, name: str
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A migrated, empty store: a SQLite file, or a PostgreSQL database dropped after."""
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / f'{name}.db'}"
        engine = make_engine(url)
        try:
            await migrate(engine)
            yield url, engine
        finally:
            await engine.dispose()
        return
    import asyncpg  # type: ignore[import-untyped]

    db = f"{POSTGRES_BENCH_DB}_{name}"
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{db}"')
    finally:
        await admin.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
    engine = make_engine(url)
    try:
        await migrate(engine)
        yield url, engine
    finally:
        await engine.dispose()
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await admin.close()


def _lead_s(count: int) -> float:
    """Seconds from the insert's start to the first due time: the insert must be done by then."""
    return 2.0 + count / 2_000


async def _floor(
    bootstrap: str, database: str, directory: Path, *, count: int, window_s: float, limit: timedelta
) -> Lateness:
    async with _store(database, directory, "floor") as (_, engine):
        start = datetime.now(UTC) + timedelta(seconds=_lead_s(count))
        due = await _insert_state(engine, _due_times(count, start, window_s), limit)
        _check_lead(start)
        deadline = time.monotonic() + _lead_s(count) + window_s + 120
        await _floor_loop(engine, bootstrap, count, deadline)
    stamps = await _read_timestamps(bootstrap, FLOOR_TOPIC, count, 60, None)
    return _lateness(_late_ms(stamps, due))


def _check_lead(start: datetime) -> None:
    if datetime.now(UTC) > start:
        raise RuntimeError("the bulk insert ended after the first timer fell due: machine too busy")


async def _service(
    bootstrap: str,
    database: str,
    directory: Path,
    *,
    count: int,
    window_s: float,
    limit: timedelta,
) -> tuple[Lateness, float]:
    settings = Settings(kafka_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS)
    registry = load_registry(settings.registry)
    async with _store(database, directory, "service") as (_, engine):
        service = EscalationService(
            settings, registry, engine, bootstrap, group_id="bench-escalation"
        )
        await service.start()
        try:
            started = time.perf_counter()
            start = datetime.now(UTC) + timedelta(seconds=_lead_s(count))
            due = await _insert_state(engine, _due_times(count, start, window_s), limit)
            insert_s = time.perf_counter() - started
            _check_lead(start)
            deadline = time.monotonic() + _lead_s(count) + window_s + 180
            # The loop counts what it fired; polling it is the bench's only window on it.
            while service.timers.fired < count and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        finally:
            await service.stop()
        if service.timers.fired < count:
            raise TimeoutError(f"the service fired {service.timers.fired} of {count} timers")
    stamps = await _read_timestamps(bootstrap, topics.ESCALATIONS, count, 120, None)
    return _lateness(_late_ms(stamps, due)), insert_s


async def bench_timers(
    count: int, window_s: float, database: str = "sqlite", target_ms: float = 1000.0
) -> TimersBench:
    settings = Settings()
    # As the service's own process does: its log lines go to stderr, not into the output.
    configure(settings.log_level, settings.log_format)
    registry = load_registry(settings.registry)
    category = registry.category(CATEGORY)
    assert category is not None
    assert category.idle_limit is not None
    from services.runtime.kafka.topics import bus_topics, ensure_topics

    with (
        long_lived_frozen(),  # as in the service's own process (`service_main`), for both sides
        tempfile.TemporaryDirectory(prefix="ketenbus-bench-") as name,
        EmbeddedBroker(free_port()) as embedded,
    ):
        directory = Path(name)
        await ensure_topics(
            embedded.bootstrap,
            [*bus_topics(registry), FLOOR_TOPIC],
            partitions=settings.topic_partitions,
        )
        floor = await _floor(
            embedded.bootstrap,
            database,
            directory,
            count=count,
            window_s=window_s,
            limit=category.idle_limit,
        )
        service, insert_s = await _service(
            embedded.bootstrap,
            database,
            directory,
            count=count,
            window_s=window_s,
            limit=category.idle_limit,
        )
    return TimersBench(
        timers=count,
        window_s=window_s,
        database=database,
        insert_s=round(insert_s, 2),
        floor=floor,
        service=service,
        target_p99_ms=target_ms,
        meets_target=service.fired == count and service.p99_ms <= target_ms,
    )


def as_dict(result: TimersBench) -> dict[str, Any]:
    return asdict(result)
