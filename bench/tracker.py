"""`ketenbus bench tracker`: events applied per second into PostgreSQL, and duplicates skipped.

The traffic is the case log as the router writes it: signed events on
`ketenbus.cases`, keyed by case, in a private embedded broker. Each case runs
a realistic course (`case_log`): belastingdienst opens it and adds context,
asks gm0363 to take it over, gm0363 rejects (citing a rule), a second request
is accepted, gm0363 adds context and closes the case. Cases advance side by
side in waves, so a batch touches hundreds of cases.

The floor and the tracker run in `rounds` pairs, the floor first in odd
rounds, each pair on a new consumer group, a new floor table and an emptied
store; the rates reported are the medians, the ratio the median of the pairs'
own ratios (a single floor phase moved by a third from one run to the next).

The floor (`_raw_floor`) is the work no tracker can avoid: a raw aiokafka
consumer that parses each event (pydantic, as the tracker does) and inserts one
row per event into a copy of the timeline table (same columns and indexes)
with asyncpg's executemany, one transaction per batch of the tracker's size,
offsets committed after.
The tracker (`services.tracker`) does all its work: skips ids it has seen,
loads and locks the batch's cases, runs the handoff state machine, writes the
timeline rows and the cases' new states, one transaction per batch.

Idempotency: after the last round a further consumer group replays the same log through the tracker;
every event must be skipped, the timeline must still hold one row per event and
the cases must be unchanged. Everything runs in a database of its own on the
given PostgreSQL server, created for the run and dropped after.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.agency_client import AgencyKeys
from contracts.case import ActionTaken, CaseContext, CaseFlag
from contracts.envelope import CaseEvent, source_urn
from contracts.events import (
    CaseClosed,
    CaseClosure,
    CaseContextUpdated,
    CaseOpened,
    CaseOpening,
    ContextUpdate,
    HandoffAcceptance,
    HandoffAccepted,
    HandoffRejected,
    HandoffRejection,
    HandoffRequest,
    HandoffRequested,
)
from contracts.parse import parse_event
from contracts.registry import AgencyRegistry
from contracts.topics import CASES
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.runtime.process.heap import long_lived_frozen
from services.runtime.store.engine import make_engine, migrate
from services.runtime.store.tables import case_timeline, cases
from services.tracker.app import MAX_RECORDS, CaseRecorder, create_tracker
from services.tracker.ledger import BatchResult

DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
TARGET = 10_000.0
"""Events applied per second the tracker must reach on this machine (issue 7)."""

HOLDER = "belastingdienst"
RECEIVER = "gm0363"
CATEGORY = "schulden"
STEPS = 8
"""Events per case: opened, context, requested, rejected, requested, accepted, context, closed."""
WAVE = 250
"""Cases that advance side by side."""
RAW_TABLE = "bench_raw_timeline"
RAW_GROUP = "bench-raw-floor"


@dataclass
class TrackerBench:
    """Rates on the same case log; the tracker's includes the state machine and idempotency."""

    events: int
    cases: int
    rounds: int
    raw_events_per_s: float
    tracker_events_per_s: float
    ratio: float
    """The median of each round's tracker / floor."""
    round_ratios: list[float]
    round_rates: list[tuple[float, float]]
    """Each round's (floor, tracker) events/s."""
    target_events_per_s: float
    applied: int
    timeline_rows: int
    replay_skipped: int
    replay_events_per_s: float
    rows_after_replay: int
    cases_unchanged: bool


def case_log(
    registry: AgencyRegistry, keys: dict[str, AgencyKeys], count: int
) -> list[tuple[bytes, bytes]]:
    """`count` signed (key, value) records of the case log, in the order the router wrote them."""
    holder, receiver = registry.agency(HOLDER), registry.agency(RECEIVER)
    assert holder is not None
    assert receiver is not None
    by_holder = source_urn(holder.oin, "zaaksysteem")
    by_receiver = source_urn(receiver.oin, "zaaksysteem")
    out: list[tuple[bytes, bytes]] = []
    clock = datetime.now(UTC) - timedelta(days=1)
    width = min(WAVE, -(-count // STEPS))  # a small log still runs its cases to the end
    while len(out) < count:
        wave = [uuid.uuid4() for _ in range(width)]
        courses = [_course(case_id, by_holder, by_receiver, clock) for case_id in wave]
        for step in range(STEPS):
            for case_id, course in zip(wave, courses, strict=True):
                emitter, event = course[step]
                out.append((str(case_id).encode(), keys[emitter].sign(event)))
        clock += timedelta(minutes=10)
    return out[:count]


def _course(
    case_id: uuid.UUID, by_holder: str, by_receiver: str, start: datetime
) -> list[tuple[str, CaseEvent[Any]]]:
    """One case from opening to closing: eight events, each valid for the state machine."""
    first, second = uuid.uuid4(), uuid.uuid4()
    deadline = start + timedelta(days=2)

    def at(step: int) -> dict[str, Any]:
        return {"case_id": case_id, "sequence": step + 1, "time": start + timedelta(seconds=step)}

    context = CaseContext(
        actions=[ActionTaken(at=start, agency=HOLDER, description="Aanmaning verstuurd")],
        flags=[CaseFlag(kind="hardship", raised_by=HOLDER, note="Betalingsregeling vastgelopen")],
    )
    opening = CaseOpening(category=CATEGORY, summary="Problematische schulden", context=context)
    action = ActionTaken(at=start, agency=RECEIVER, description="Intake gepland")

    def request(handoff_id: uuid.UUID) -> HandoffRequest:
        return HandoffRequest(
            handoff_id=handoff_id,
            from_agency=HOLDER,
            to_agency=RECEIVER,
            reason="Doorverwijzing naar schuldhulpverlening",
            deadline=deadline,
        )

    return [
        (HOLDER, CaseOpened.new(source=by_holder, data=opening, **at(0))),
        (
            HOLDER,
            CaseContextUpdated.new(source=by_holder, data=ContextUpdate(context=context), **at(1)),
        ),
        (HOLDER, HandoffRequested.new(source=by_holder, data=request(first), **at(2))),
        (
            RECEIVER,
            HandoffRejected.new(
                source=by_receiver,
                data=HandoffRejection(
                    handoff_id=first,
                    from_agency=HOLDER,
                    to_agency=RECEIVER,
                    reason="Eerst beslagvrije voet vaststellen",
                    rule_reference="Fw art. 475d",
                ),
                **at(3),
            ),
        ),
        (HOLDER, HandoffRequested.new(source=by_holder, data=request(second), **at(4))),
        (
            RECEIVER,
            HandoffAccepted.new(
                source=by_receiver,
                data=HandoffAcceptance(handoff_id=second, from_agency=HOLDER, to_agency=RECEIVER),
                **at(5),
            ),
        ),
        (
            RECEIVER,
            CaseContextUpdated.new(
                source=by_receiver,
                data=ContextUpdate(context=CaseContext(actions=[action])),
                **at(6),
            ),
        ),
        (
            RECEIVER,
            CaseClosed.new(source=by_receiver, data=CaseClosure(outcome="Schuldregeling"), **at(7)),
        ),
    ]


def _plain(url: str) -> str:
    """An asyncpg DSN for a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(server: str) -> asyncpg.Connection:
    """A connection to the server's maintenance database; UserError if it does not answer."""
    url = make_url(server)
    if not url.get_backend_name().startswith("postgresql"):
        raise UserError(f"bench tracker needs a PostgreSQL URL, not {url.get_backend_name()}")
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            _plain(server if url.database else str(url.set(database="postgres"))), timeout=5
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        shown = url.render_as_string(hide_password=True)
        why = " ".join(str(exc).split())  # one line, even for several addresses tried
        raise UserError(f"PostgreSQL at {shown} is not reachable: {why}") from None
    return connection


async def _produce_all(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(CASES, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _raw_row(value: bytes) -> tuple[Any, ...]:
    event = parse_event(value)
    return (event.id, event.subject, event.time, event.name, event.source[:32], event.sequence)


async def _raw_floor(  # noqa: PLR0917 - private, every argument says what it is
    bootstrap: str, database: str, count: int, timeout: float, table: str, group: str
) -> float:
    """Parse each event and insert one row per event, executemany per batch: the floor."""
    connection: asyncpg.Connection = await asyncpg.connect(_plain(database))
    await connection.execute(f"CREATE TABLE {table} (LIKE case_timeline INCLUDING ALL)")
    insert = (
        f"INSERT INTO {table} (event_id, case_id, time, event_type, agency, sequence, "  # noqa: S608 - a constant name
        "summary, applied) VALUES ($1, $2, $3, $4, $5, $6, $4, true)"
    )
    consumer = AIOKafkaConsumer(
        CASES,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=500,
        max_poll_records=MAX_RECORDS,
    )
    await consumer.start()
    done, started = 0, 0.0
    deadline = time.monotonic() + timeout
    try:
        while done < count and time.monotonic() < deadline:
            # The tracker's batch size, so both pay the same per-batch costs.
            batches = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
            if batches and not started:
                started = time.perf_counter()
            rows = [_raw_row(r.value or b"") for records in batches.values() for r in records]
            if rows:
                async with connection.transaction():
                    await connection.executemany(insert, rows)
                await consumer.commit()
            done += len(rows)
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
        await connection.close()
    if done < count:
        raise TimeoutError(f"raw floor stored {done} of {count} events in {timeout:.0f} s")
    return count / elapsed


class _TimedRecorder(CaseRecorder):
    """The tracker's recorder, noting its first batch and counting what it did."""

    def __init__(self, engine: AsyncEngine, registry: AgencyRegistry) -> None:
        super().__init__(engine, registry)
        self.first = 0.0
        self.last = 0.0
        self.seen = self.applied = self.refused = self.duplicates = 0

    async def record(self, records: Sequence[Any]) -> BatchResult:
        if not self.first:
            self.first = time.perf_counter()
        result = await super().record(records)
        self.last = time.perf_counter()
        self.seen += len(records)
        self.applied += result.applied
        self.refused += result.refused
        self.duplicates += len(result.duplicates)
        return result


async def _tracker(  # noqa: PLR0917 - private, every argument says what it is
    bootstrap: str,
    registry: AgencyRegistry,
    store: AsyncEngine,
    group: str,
    count: int,
    timeout: float,
) -> _TimedRecorder:
    settings = Settings(kafka_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS)
    recorder = _TimedRecorder(store, registry)
    broker = create_tracker(settings, registry, store, bootstrap, group_id=group, recorder=recorder)
    await broker.start()
    deadline = time.monotonic() + timeout
    try:
        while recorder.seen < count and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll
            await asyncio.sleep(0.002)
    finally:
        await broker.stop()
    if recorder.seen < count:
        raise TimeoutError(f"tracker ({group}) took {recorder.seen} of {count} in {timeout:.0f} s")
    return recorder


async def _empty(store: AsyncEngine) -> None:
    # TRUNCATE, not DELETE: every round starts on tables and indexes as small as the first's.
    async with store.begin() as connection:
        await connection.execute(text("TRUNCATE case_timeline, cases"))


async def _round(  # noqa: PLR0917 - private, every argument says what it is
    bootstrap: str,
    registry: AgencyRegistry,
    store: AsyncEngine,
    database: str,
    events: int,
    timeout: float,
    n: int,
) -> tuple[float, _TimedRecorder]:
    """One pair on an empty store: floor rate and tracker, the floor first in odd rounds."""
    await _empty(store)

    async def floor() -> float:
        return await _raw_floor(
            bootstrap, database, events, timeout, f"{RAW_TABLE}_{n}", f"{RAW_GROUP}-{n}"
        )

    async def tracker() -> _TimedRecorder:
        return await _tracker(bootstrap, registry, store, f"bench-tracker-{n}", events, timeout)

    if n % 2:
        raw = await floor()
        return raw, await tracker()
    recorder = await tracker()
    return await floor(), recorder


async def _rows(store: AsyncEngine) -> int:
    async with store.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(case_timeline)) or 0)


async def _cases(store: AsyncEngine) -> list[tuple[Any, ...]]:
    async with store.connect() as connection:
        result = await connection.execute(select(cases).order_by(cases.c.case_id))
        return [tuple(row) for row in result]


async def bench_tracker(
    events: int, server: str = DEFAULT_SERVER, timeout: float = 300.0, rounds: int = 3
) -> TrackerBench:
    """Run the floor, the tracker and the replay on the same case log; see the module doc."""
    admin = await _admin(server)
    name = f"ketenbus_bench_tracker_{uuid.uuid4().hex[:8]}"
    database = str(make_url(server).set(database=name).render_as_string(hide_password=False))
    settings = Settings()
    registry = load_registry(settings.registry)
    keys = {agency.code: AgencyKeys.generate(agency.code) for agency in registry.agencies}
    messages = case_log(registry, keys, events)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        store = make_engine(database)
        try:
            await migrate(store)
            # As in the tracker's own process (`service_main`), for the floor and the tracker.
            with long_lived_frozen(), EmbeddedBroker(free_port()) as embedded:
                await ensure_topics(
                    embedded.bootstrap, bus_topics(registry), partitions=settings.topic_partitions
                )
                await _produce_all(embedded.bootstrap, messages)
                pairs = [
                    await _round(embedded.bootstrap, registry, store, database, events, timeout, n)
                    for n in range(1, rounds + 1)
                ]
                rows = await _rows(store)
                before = await _cases(store)
                replay = await _tracker(
                    embedded.bootstrap, registry, store, "bench-tracker-replay", events, timeout
                )
                rows_after = await _rows(store)
                unchanged = before == await _cases(store)
        finally:
            await store.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    refused = sum(recorder.refused for _, recorder in pairs)
    if refused:
        raise RuntimeError(f"the tracker refused {refused} benchmark events")
    rates = [(raw, events / (recorder.last - recorder.first)) for raw, recorder in pairs]
    ratios = [round(rate / raw, 3) for raw, rate in rates]
    return TrackerBench(
        events=events,
        cases=len(before),
        rounds=rounds,
        raw_events_per_s=round(median(raw for raw, _ in rates), 1),
        tracker_events_per_s=round(median(rate for _, rate in rates), 1),
        ratio=round(median(ratios), 3),
        round_ratios=ratios,
        round_rates=[(round(raw, 1), round(rate, 1)) for raw, rate in rates],
        target_events_per_s=TARGET,
        applied=pairs[-1][1].applied,
        timeline_rows=rows,
        replay_skipped=replay.duplicates,
        replay_events_per_s=round(events / (replay.last - replay.first), 1),
        rows_after_replay=rows_after,
        cases_unchanged=unchanged,
    )


def as_dict(result: TrackerBench) -> dict[str, Any]:
    return asdict(result)
