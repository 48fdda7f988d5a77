"""The fault suite's harness: a private broker, a fresh PostgreSQL database, the services as
processes, a signed stream of cases, bad messages, and counts read back from the store.

Everything runs on 127.0.0.1. Every process started here is stopped by `Bus.close`
(SIGTERM, then SIGKILL), and the database is dropped by `fresh_database`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.envelope import source_urn
from contracts.events import (
    CaseClosed,
    CaseClosure,
    CaseOpened,
    CaseOpening,
    HandoffAcceptance,
    HandoffAccepted,
    HandoffRequest,
    HandoffRequested,
)
from contracts.registry import AgencyRegistry
from services.audit import ChainReport, verify
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.runtime.store.engine import make_engine, migrate
from services.runtime.store.tables import (
    audit_records,
    case_timeline,
    cases,
    escalation_seen_events,
    router_seen_events,
)

REPO = Path(__file__).resolve().parents[2]

POSTGRES_ADMIN_URL = os.environ.get(
    "KETENBUS_TEST_POSTGRES_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
"""Where the suite creates (and drops) one database per test."""

SERVICES = ("router", "tracker", "escalation")

STOP_GRACE_S = 15.0
"""How long a service has to exit after SIGTERM before it is killed."""

HOLDER, RECEIVER = "belastingdienst", "gm0363"
"""Every case of the stream is opened by HOLDER and handed to RECEIVER, who closes it."""

CI_EVENTS = 1_000
"""Events per test in `make test`: enough for each fault to land mid-stream (each test
asserts that it did); `make faults` runs 10000."""


def fault_events(ci_size: int = CI_EVENTS) -> int:
    """Events per test: KETENBUS_FAULT_EVENTS (the full run: 10000), else `ci_size`."""
    return int(os.environ.get("KETENBUS_FAULT_EVENTS", ci_size))


def scaled(seconds: float) -> float:
    """A timeout for the CI size, stretched in proportion for a larger run."""
    return seconds * max(1.0, fault_events() / CI_EVENTS)


# --- PostgreSQL -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database for one test (its URL); dropped afterwards."""
    name = f"ketenbus_fault_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        await migrate(url)
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


# --- The stream of cases ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Script:
    """One case's four events, signed: opened and handed on by HOLDER, accepted and closed by
    RECEIVER."""

    case_id: UUID
    first: tuple[tuple[UUID, bytes], ...]
    """(event id, wire) for HOLDER's outbox: case-opened, handoff-requested."""
    second: tuple[tuple[UUID, bytes], ...]
    """(event id, wire) for RECEIVER's outbox: handoff-accepted, case-closed."""

    @property
    def request_id(self) -> UUID:
        return self.first[1][0]

    @property
    def event_ids(self) -> list[UUID]:
        return [event_id for event_id, _ in (*self.first, *self.second)]


def case_scripts(
    count: int,
    registry: AgencyRegistry,
    keys: dict[str, AgencyKeys],
    *,
    unanswered_within: tuple[float, float] | None = None,
) -> list[Script]:
    """`count` cases, each valid for holder rights; handoff deadlines a year away.

    `unanswered_within` (seconds from now, low and high): cases RECEIVER never answers, each
    handoff's deadline drawn evenly from that span (`second` is empty)."""
    holder, receiver = registry.agency(HOLDER), registry.agency(RECEIVER)
    assert holder is not None
    assert receiver is not None
    by_holder = source_urn(holder.oin, "zaaksysteem")
    by_receiver = source_urn(receiver.oin, "schuldhulp")
    scripts = []
    for _ in range(count):
        deadline = datetime.now(UTC) + (
            timedelta(days=365)
            if unanswered_within is None
            else timedelta(seconds=random.uniform(*unanswered_within))
        )
        case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
        opened = CaseOpened.new(
            source=by_holder,
            case_id=case_id,
            data=CaseOpening(category="schulden", summary="Schuldhulptraject (fault suite)"),
        )
        requested = HandoffRequested.new(
            source=by_holder,
            case_id=case_id,
            sequence=2,
            causationid=opened.id,
            data=HandoffRequest(
                handoff_id=handoff_id,
                from_agency=HOLDER,
                to_agency=RECEIVER,
                reason="Schuldhulp door de gemeente",
                deadline=deadline,
            ),
        )
        accepted = HandoffAccepted.new(
            source=by_receiver,
            case_id=case_id,
            causationid=requested.id,
            data=HandoffAcceptance(handoff_id=handoff_id, from_agency=HOLDER, to_agency=RECEIVER),
        )
        closed = CaseClosed.new(
            source=by_receiver,
            case_id=case_id,
            sequence=2,
            data=CaseClosure(outcome="Schuldhulptraject afgerond"),
        )
        scripts.append(
            Script(
                case_id,
                (
                    (opened.id, keys[HOLDER].sign(opened)),
                    (requested.id, keys[HOLDER].sign(requested)),
                ),
                ()
                if unanswered_within is not None
                else (
                    (accepted.id, keys[RECEIVER].sign(accepted)),
                    (closed.id, keys[RECEIVER].sign(closed)),
                ),
            )
        )
    return scripts


# --- Bad messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bad:
    """A message the router must refuse, and the reason code it must give."""

    code: str
    topic: str
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def _signed_document(keys: AgencyKeys, document: dict[str, Any]) -> bytes:
    return keys.sign(json.dumps(document).encode())


def _opened_document(registry: AgencyRegistry, code: str, case_id: UUID) -> dict[str, Any]:
    agency = registry.agency(code)
    assert agency is not None
    event = CaseOpened.new(
        source=source_urn(agency.oin, "zaaksysteem"),
        case_id=case_id,
        data=CaseOpening(category="schulden", summary="Schuldhulptraject (fault suite)"),
    )
    document: dict[str, Any] = json.loads(event.to_json())
    return document


def bad_messages(
    per_kind: int, registry: AgencyRegistry, keys: dict[str, AgencyKeys], scripts: Sequence[Script]
) -> list[Bad]:
    """`per_kind` of each kind of bad message, kinds interleaved; keyed by cases of `scripts`."""
    holder_outbox = topics.outbox(HOLDER)
    made: list[Bad] = []
    for n in range(per_kind):
        script = scripts[n % len(scripts)]
        key = str(script.case_id).encode()
        stray = uuid.uuid4()

        wrong_types = _opened_document(registry, HOLDER, stray)
        wrong_types["data"]["category"] = 42
        unknown = _opened_document(registry, HOLDER, stray)
        unknown["type"] = "nl.overheid.ketenzaken.case-teleported"
        forged = json.loads(
            _signed_document(keys[HOLDER], _opened_document(registry, HOLDER, stray))
        )
        forged["data"]["summary"] = "Changed after signing"
        unauthorised = _opened_document(registry, "cak", stray)  # cak may not open cases
        uwv = registry.agency("uwv")
        assert uwv is not None
        close_by_stranger = CaseClosed.new(
            source=source_urn(uwv.oin, "zaaksysteem"),
            case_id=script.case_id,
            data=CaseClosure(outcome="Gesloten door wie de zaak nooit had"),
        )
        made += [
            Bad("malformed-json", holder_outbox, key, b'{"specversion": "1.0", "id": '),
            Bad(
                "invalid-data",
                holder_outbox,
                str(stray).encode(),
                _signed_document(keys[HOLDER], wrong_types),
            ),
            Bad("oversize", holder_outbox, key, b'{"padding": "' + b"x" * (65 * 1024) + b'"}'),
            Bad("malformed-json", holder_outbox, key, bytes(range(256)) * 4),
            Bad(
                "unknown-type",
                holder_outbox,
                str(stray).encode(),
                _signed_document(keys[HOLDER], unknown),
            ),
            Bad("bad-signature", holder_outbox, str(stray).encode(), json.dumps(forged).encode()),
            Bad(
                "unauthorised-type",
                topics.outbox("cak"),
                str(stray).encode(),
                _signed_document(keys["cak"], unauthorised),
            ),
            Bad("not-permitted", topics.outbox("uwv"), key, keys["uwv"].sign(close_by_stranger)),
            *_hostile(registry, keys, key),
        ]
    return made


def _hostile(registry: AgencyRegistry, keys: dict[str, AgencyKeys], key: bytes) -> list[Bad]:
    """What a careless or hostile agency sends that once lost or stalled others' events."""
    made: list[Bad] = []
    for code in ("malformed-headers", "quoted-key", "unsealed-personal-data", "nul-character"):
        stray = uuid.uuid4()
        document = _opened_document(registry, RECEIVER, stray)
        plain = str(stray).encode()
        headers: tuple[tuple[str, bytes], ...] = (
            ("content-type", b"application/cloudevents+json"),
        )
        if code == "malformed-headers":
            headers += (("x-trace", b"\xff\xfe not utf-8"),)
        if code == "quoted-key":
            plain = b'"' + plain + b'"'
        if code == "unsealed-personal-data":
            document["data"]["summary"] = "Schuldhulp, BSN 123456782"
        if code == "nul-character":
            document["data"]["summary"] = "Schuld\u0000hulp"
        value = _signed_document(keys[RECEIVER], document)
        made.append(Bad(code, topics.outbox(RECEIVER), plain, value, headers))
    made += [
        Bad("tombstone", topics.outbox("uwv"), key, None),
        Bad("malformed-json", topics.outbox("svb"), key, b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    ]
    return made


# --- Producing ------------------------------------------------------------------------------


async def _producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=10_000
    )
    await producer.start()
    return producer


async def _stop_producer(producer: AIOKafkaProducer) -> None:
    # With the broker gone, stopping waits for in-flight requests: bound it.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), 15)


@dataclass(slots=True)
class Emitted:
    """What the emitter has produced so far, and where it stands."""

    event_ids: list[UUID] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)
    done: bool = False


async def emit(
    bootstrap: str,
    scripts: Sequence[Script],
    routed: Callable[[Sequence[UUID]], Awaitable[set[UUID]]],
    *,
    bad: Sequence[Bad] = (),
    chunk: int = 25,
    interval: float = 0.05,
    emitted: Emitted | None = None,
    answer: Callable[[Sequence[bytes]], Awaitable[None]] | None = None,
) -> Emitted:
    """Produce the stream as the two agencies would: HOLDER opens and hands on `chunk` cases
    every `interval`; RECEIVER accepts and closes a case once the router has admitted its
    handoff request (`routed` says which request ids it has). `bad` messages are spread
    evenly over the chunks. Keyed by the case id.

    `answer`: how RECEIVER sends its events instead (a gateway's HTTP API), given each
    round's in case order."""
    emitted = emitted or Emitted()
    producer = await _producer(bootstrap)
    try:
        chunks = [scripts[i : i + chunk] for i in range(0, len(scripts), chunk)]
        bad_per_chunk = -(-len(bad) // max(1, len(chunks)))
        bad_left = list(bad)
        waiting: dict[UUID, Script] = {}
        pending: list[Any] = []
        while chunks or waiting or bad_left:
            if chunks:
                for script in chunks.pop(0):
                    for event_id, wire in script.first:
                        pending.append(
                            await producer.send(
                                topics.outbox(HOLDER), wire, key=str(script.case_id).encode()
                            )
                        )
                        emitted.event_ids.append(event_id)
                    waiting[script.request_id] = script
            for item in bad_left[:bad_per_chunk]:
                pending.append(
                    await producer.send(
                        item.topic, item.value, key=item.key, headers=list(item.headers) or None
                    )
                )
                emitted.bad.append(item)
            del bad_left[:bad_per_chunk]
            answers: list[bytes] = []
            for request_id in await routed(list(waiting)) if waiting else set():
                script = waiting.pop(request_id)
                for event_id, wire in script.second:
                    if answer is None:
                        pending.append(
                            await producer.send(
                                topics.outbox(RECEIVER), wire, key=str(script.case_id).encode()
                            )
                        )
                    else:
                        answers.append(wire)
                    emitted.event_ids.append(event_id)
            await asyncio.gather(*pending)
            pending.clear()
            if answer is not None and answers:
                await answer(answers)
            await asyncio.sleep(interval)
        emitted.done = True
        return emitted
    finally:
        await _stop_producer(producer)


# --- The services ---------------------------------------------------------------------------


class Service:
    """One `python -m services.<module>` process, started, killed and restarted by the test;
    `name` tells instances of one module apart (router, router-2)."""

    def __init__(
        self, name: str, env: dict[str, str], log_dir: Path, module: str | None = None
    ) -> None:
        self.name = name
        self.module = module or name
        self.env = env
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.health_port = 0
        self.starts = 0
        self.terminated = False

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} runs"
        self.starts += 1
        self.terminated = False
        self.health_port = free_port()
        env = {**self.env, "KETENBUS_HEALTH_PORT": str(self.health_port)}
        with (self.log_dir / f"{self.name}.{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.module}"],
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def gateway_port(self) -> int:
        """The port a gateway process serves on (0: not a gateway)."""
        return int(self.env.get("KETENBUS_GATEWAY_PORT", 0))

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, no commit, nothing flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM, once, if it runs: it stops as on `ketenbus up`'s Ctrl-C."""
        if self.process is not None and self.process.poll() is None and not self.terminated:
            self.process.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, then SIGKILL after `grace` s; the exit code (None if it was not started)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            self.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        return process.returncode

    async def healthy(self) -> bool:
        """The process answers 200 on its /healthz."""
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                response = await client.get(f"http://127.0.0.1:{self.health_port}/healthz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def log_tail(self, lines: int = 15) -> str:
        path = self.log_dir / f"{self.name}.{self.starts}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def instance_names(instances: int) -> list[str]:
    """The services' names with `instances` of each: router, router-2, ..., tracker, ..."""
    return [
        name if number == 1 else f"{name}-{number}"
        for name in SERVICES
        for number in range(1, instances + 1)
    ]


class Bus:
    """A private embedded broker, the three services on one database (`instances` processes
    of each, in their consumer groups), and the store's counts."""

    def __init__(
        self, tmp: Path, registry: AgencyRegistry, database_url: str, *, instances: int = 1
    ) -> None:
        self.tmp = tmp
        self.registry = registry
        self.database_url = database_url
        self.broker = EmbeddedBroker(free_port(), log_file=tmp / "broker.log")
        registry_file = tmp / "registry.yaml"
        registry_file.write_text(yaml.safe_dump(registry.model_dump(mode="json")), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KETENBUS_")}
        env |= {
            "KETENBUS_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "KETENBUS_DATABASE_URL": database_url,
            "KETENBUS_REGISTRY": str(registry_file),
            "KETENBUS_KAFKA_SESSION_TIMEOUT_MS": str(EMBEDDED_SESSION_TIMEOUT_MS),
            "KETENBUS_LOG_FORMAT": "json",
            "KETENBUS_DATA_DIR": str(tmp / "state"),
        }
        logs = tmp / "logs"
        logs.mkdir(exist_ok=True)
        self.services = {
            name: Service(name, env, logs, module=name.split("-")[0])
            for name in instance_names(instances)
        }
        self.engine: AsyncEngine = make_engine(database_url)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def add_gateway(self, name: str = "gateway", also_taken: Iterable[int] = ()) -> Service:
        """A gateway process beside the bus, on a port of its own (`port_of`), not started."""
        # Chosen once the others are: a port handed out twice would stop the gateway.
        taken = {int(self.bootstrap.rsplit(":", 1)[1]), *also_taken}
        taken |= {service.health_port for service in self.services.values()}
        taken |= {service.gateway_port for service in self.services.values()}
        port = next(p for p in iter(free_port, 0) if p not in taken)
        env = {
            **self.services["router"].env,
            "KETENBUS_GATEWAY_PORT": str(port),
            # The tests measure loss, not the agency's rate.
            "KETENBUS_GATEWAY_RATE": "1000000",
            "KETENBUS_GATEWAY_BURST": "1000000",
            # The receiver answers on loopback in milliseconds: what a killed gateway had
            # claimed is free again after 2 + 5 s (its lease), not 10 + 5 s.
            "KETENBUS_WEBHOOK_TIMEOUT_S": "2",
        }
        gateway = self.services[name] = Service(name, env, self.tmp / "logs", module="gateway")
        return gateway

    async def start_broker(self) -> None:
        self.broker.start()
        await ensure_topics(self.bootstrap, bus_topics(self.registry), partitions=3)

    async def start(self) -> None:
        await self.start_broker()
        for service in self.services.values():
            service.start()

    def stop_services(self, grace: float = STOP_GRACE_S) -> dict[str, int | None]:
        """SIGTERM to every service at once, SIGKILL to any still running `grace` s later;
        the exit codes (None for one never started)."""
        for service in self.services.values():
            service.terminate()
        deadline = time.monotonic() + grace
        return {
            name: service.stop(max(0.0, deadline - time.monotonic()))
            for name, service in self.services.items()
        }

    async def close(self, grace: float = STOP_GRACE_S) -> dict[str, int | None]:
        """Stop every service (SIGKILL after `grace` s) and the broker; the exit codes."""
        codes = self.stop_services(grace)
        self.broker.stop()
        await self.engine.dispose()
        return codes

    def log_tails(self) -> str:
        return "\n".join(f"--- {n}:\n{s.log_tail()}" for n, s in self.services.items())

    def dead(self) -> list[str]:
        return [name for name, service in self.services.items() if not service.alive]

    # Counts from the store.

    async def count(self, table: Any) -> int:
        async with self.engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(table)) or 0)

    async def applied(self, service: str) -> int:
        """How many case events `service` has recorded as done."""
        table = {
            "router": router_seen_events,
            "tracker": case_timeline,
            "escalation": escalation_seen_events,
        }[service]
        return await self.count(table)

    async def routed(self, event_ids: Sequence[UUID]) -> set[UUID]:
        """Which of `event_ids` the router has admitted (committed)."""
        async with self.engine.connect() as connection:
            query = select(router_seen_events.c.event_id).where(
                router_seen_events.c.event_id.in_(list(event_ids))
            )
            return set(await connection.scalars(query))

    async def ids(self, table: Any) -> list[UUID]:
        async with self.engine.connect() as connection:
            return list(await connection.scalars(select(table.c.event_id)))

    async def timeline(self) -> list[tuple[UUID, bool]]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(case_timeline.c.event_id, case_timeline.c.applied)
            )
            return [(row.event_id, bool(row.applied)) for row in rows]

    async def refused(self) -> list[dict[str, Any]]:
        """The timeline's rows the tracker recorded as refused (not applied)."""
        t = case_timeline.c
        query = select(t.event_id, t.case_id, t.event_type, t.agency, t.refusal).where(
            t.applied.is_(False)
        )
        async with self.engine.connect() as connection:
            return [row._asdict() for row in await connection.execute(query)]

    async def case_states(self, case_ids: Iterable[UUID]) -> Counter[tuple[str, str]]:
        """(status, holder) of these cases, counted."""
        wanted = set(case_ids)
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(cases.c.case_id, cases.c.status, cases.c.holder))
            return Counter((row.status, row.holder) for row in rows if row.case_id in wanted)

    async def audit(self) -> tuple[ChainReport, int, int]:
        """The chain's report, its records, and its distinct (event, receiver) deliveries."""
        report = await verify(self.engine)
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(select(audit_records.c.event_id, audit_records.c.receiver))
            ).all()
        return report, len(rows), len({(row.event_id, row.receiver) for row in rows})

    @contextlib.asynccontextmanager
    async def stalled(self) -> AsyncIterator[int]:
        """Hold every service's batch at its first write of a seen id, while in this block:
        a transaction of the test's own locks the three tables against writes (reads go on).
        Yields how many service transactions wait on the lock after a moment."""
        async with self.engine.connect() as connection, connection.begin():
            await connection.execute(
                text(
                    "LOCK TABLE router_seen_events, case_timeline, escalation_seen_events "
                    "IN EXCLUSIVE MODE"
                )
            )
            await asyncio.sleep(1.0)
            async with self.engine.connect() as probe:
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted "
                        "AND database = (SELECT oid FROM pg_database "
                        "WHERE datname = current_database())"
                    )
                )
            yield int(waiting or 0)

    async def missing(self, event_ids: Iterable[UUID]) -> dict[str, int]:
        """How many of `event_ids` each service has not applied yet."""
        wanted = set(event_ids)
        tables = {
            "router": router_seen_events,
            "tracker": case_timeline,
            "escalation": escalation_seen_events,
        }
        return {name: len(wanted - set(await self.ids(table))) for name, table in tables.items()}

    async def wait_applied(
        self, event_ids: Iterable[UUID], timeout: float, *, what: str
    ) -> dict[str, int]:
        """Poll until every service has applied all of `event_ids`; fail as `wait_until` does."""
        wanted = list(event_ids)
        deadline = time.monotonic() + timeout
        while True:
            missing = await self.missing(wanted)
            if not any(missing.values()):
                return missing
            dead = self.dead()
            if dead or time.monotonic() > deadline:
                tails = self.log_tails()
                problem = f"services died: {dead}" if dead else f"not reached in {timeout:.0f} s"
                raise AssertionError(f"{what}: {problem}; still missing {missing}\n{tails}")
            await asyncio.sleep(0.2)

    async def progress(self) -> dict[str, int]:
        return {name: await self.applied(name) for name in SERVICES}

    async def wait_until(
        self,
        reached: Callable[[dict[str, int]], bool],
        timeout: float,
        *,
        what: str,
        alive: bool = True,
    ) -> dict[str, int]:
        """Poll the counts until `reached`; fail naming `what`, the counts and any dead service."""
        deadline = time.monotonic() + timeout
        while True:
            counts = await self.progress()
            if reached(counts):
                return counts
            dead = self.dead() if alive else []
            if dead or time.monotonic() > deadline:
                tails = self.log_tails()
                problem = f"services died: {dead}" if dead else f"not reached in {timeout:.0f} s"
                raise AssertionError(f"{what}: {problem}; counts {counts}\n{tails}")
            await asyncio.sleep(0.1)


# --- Reading topics back ---------------------------------------------------------------------


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    enough: Callable[[list[Any]], bool] | None = None,
    quiet: float = 1.5,
    timeout: float = 30.0,
    to_end: bool = False,
) -> list[Any]:
    """Every record of `topic` from the start, read until `enough` holds of what was read
    (if given) and then nothing new came for `quiet` s; at most `timeout` s.

    `to_end`: read up to the topic's end as of the call, and no further: for a topic whose
    writers are done, all it holds without waiting out a quiet time."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        assert partitions, f"no partitions known for {topic}"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions) if to_end else {}
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            if to_end:
                if all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                    return found
            elif time.monotonic() - last_new >= quiet and (enough is None or enough(found)):
                break
            batches = await consumer.getmany(timeout_ms=200)
            got = [record for records in batches.values() for record in records]
            if got:
                found += got
                last_new = time.monotonic()
        if to_end:
            raise AssertionError(f"{topic} not read to its end in {timeout:.0f} s")
        return found
    finally:
        await consumer.stop()


def notices(records: Sequence[Any]) -> Counter[tuple[str, str]]:
    """delivery-failed notices by (inbox, reason code), one per refused record (a redelivered
    batch's repeated notice counted once)."""
    by_origin: dict[tuple[str, int, int], tuple[str, str]] = {}
    for record in records:
        document = json.loads(record.value)
        if document.get("type") != "nl.overheid.ketenzaken.delivery-failed":
            continue
        data = document["data"]
        origin = (data["topic"], data["partition"], data["offset"])
        by_origin[origin] = (record.topic, data["reason_code"])
    return Counter(by_origin.values())


async def group_positions(bootstrap: str, group: str, names: Sequence[str]) -> dict[str, str]:
    """For each partition of `names` with data or a commit: "committed/end" of `group`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        ends = await consumer.end_offsets(partitions)
        shown = {}
        for tp in partitions:
            done = await consumer.committed(tp)
            if ends[tp] or done is not None:
                shown[f"{tp.topic}/{tp.partition}"] = f"{done}/{ends[tp]}"
        return shown
    finally:
        await consumer.stop()


def reason_codes(dead_letters: Sequence[Any]) -> Counter[str]:
    """Dead letters by `ketenbus-reason-code`, one per origin record (a redelivered copy of
    the same refusal counted once)."""
    by_origin: dict[tuple[str, str, str], str] = {}
    for record in dead_letters:
        # A dead letter keeps the sender's headers, which need not be text.
        headers = {name: value.decode(errors="replace") for name, value in record.headers}
        origin = (
            headers.get(topics.DLQ_ORIGIN_TOPIC, ""),
            headers.get(topics.DLQ_ORIGIN_PARTITION, ""),
            headers.get(topics.DLQ_ORIGIN_OFFSET, ""),
        )
        by_origin[origin] = headers.get(topics.DLQ_REASON_CODE, "(none)")
    return Counter(by_origin.values())


def event_ids_of(records: Sequence[Any]) -> list[str]:
    """The `id` of each record's event (records that hold no JSON object are left out)."""
    found = []
    for record in records:
        with contextlib.suppress(ValueError):
            document = json.loads(record.value)
            if isinstance(document, dict) and "id" in document:
                found.append(str(document["id"]))
    return found
