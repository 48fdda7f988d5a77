"""The overview: topic sizes and rates, lag, dead letters, open escalations and stuck handoffs.

Against the session's embedded broker and the console's own store, with real
records produced and real events applied. The console's sampler takes a
snapshot every 2 s, so a change shows within a few seconds; each wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import insert

from contracts import topics
from contracts.envelope import CaseEvent
from contracts.registry import AgencyRegistry
from services.console._snapshot import OverviewSource
from services.console.app import SESSION_COOKIE
from services.console.live import NoSnapshot, OverviewSampler
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import free_port
from services.runtime.kafka.lag import bus_groups
from services.runtime.kafka.topics import bus_topics
from services.runtime.store.tables import escalations
from services.tracker.ledger import apply_batch
from tests._testutil import EventFactory
from tests.services.console.conftest import ConsoleHarness

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]

Snapshot = dict[str, Any]


async def _until(
    client: httpx.AsyncClient, ready: Callable[[Snapshot], bool], timeout: float = 20.0
) -> Snapshot:
    """The first overview that is `ready`, polled for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get("/api/overview")
        assert 200 == response.status_code, response.text
        snapshot: Snapshot = response.json()
        if ready(snapshot) or time.monotonic() > deadline:
            return snapshot
        await asyncio.sleep(0.5)


def _topic(snapshot: Snapshot, name: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [row for row in snapshot["topics"] if row["topic"] == name]
    assert 1 == len(rows), name
    return rows[0]


async def _escalation(console: ConsoleHarness, level: int, status: str, age: timedelta) -> None:
    """A row of the escalation service's own table, first raised `age` ago."""
    raised = datetime.now(UTC) - age
    async with console.state.engine.begin() as connection:
        await connection.execute(
            insert(escalations).values(
                escalation_id=uuid.uuid4(),
                case_id=uuid.uuid4(),
                trigger="ping-pong",
                cause="rejected 3 times",
                level=level,
                team_agency="gm0363",
                team="regionaal-escalatieteam",
                status=status,
                raised_at=raised,
                alerted_at=raised,
                acknowledge_by=raised + timedelta(hours=8),
                raises=1,
                last_raised_id=uuid.uuid4(),
            )
        )


async def _stuck_handoff(console: ConsoleHarness, registry: AgencyRegistry) -> UUID:
    """A case whose handoff uwv -> svb passed its deadline (the factory's clock is in 2025)."""
    make = EventFactory(registry)
    case_id = uuid.uuid4()
    events: list[CaseEvent[Any]] = [
        make.opened(case_id, by="uwv"),
        make.requested(case_id, uuid.uuid4(), "uwv", "svb"),
    ]
    await apply_batch(console.state.engine, registry, events)
    return case_id


async def test_the_overview_api_has_every_topic_every_groups_lag_and_a_time(
    console: ConsoleHarness, registry: AgencyRegistry
) -> None:
    operator = await console.operator()

    response = await operator.get("/api/overview")

    assert 200 == response.status_code, response.text
    body = response.json()
    assert {
        "topics",
        "lag",
        "dead_letters",
        "open_escalations",
        "stuck_handoffs",
        "at",
    } <= body.keys()
    assert sorted(bus_topics(registry)) == [row["topic"] for row in body["topics"]]
    assert all(
        isinstance(row["messages"], int) and isinstance(row["rate_per_s"], float)
        for row in body["topics"]
    )
    groups = bus_groups(registry)
    assert sorted((group, topic) for group, names in groups.items() for topic in names) == [
        (row["group"], row["topic"]) for row in body["lag"]
    ]
    assert all(row["lag"] >= 0 for row in body["lag"])
    assert [] == body["errors"]
    assert datetime.fromisoformat(body["at"]) <= datetime.now(UTC)


async def test_messages_and_rate_change_after_records_are_produced(
    console: ConsoleHarness, kafka: str
) -> None:
    topic = topics.inbox("cak")
    operator = await console.operator()
    before = _topic((await operator.get("/api/overview")).json(), topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, b"{}", key=b"k") for _ in range(10)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    after = _topic(
        await _until(operator, lambda s: _topic(s, topic)["messages"] >= before["messages"] + 10),
        topic,
    )

    assert before["messages"] + 10 == after["messages"]
    assert after["rate_per_s"] > 0


async def test_open_escalations_are_counted_by_level_with_the_age_of_the_oldest(
    console: ConsoleHarness,
) -> None:
    await _escalation(console, 1, "raised", timedelta(hours=3))
    await _escalation(console, 1, "acknowledged", timedelta(hours=1))
    await _escalation(console, 2, "raised", timedelta(minutes=5))
    await _escalation(console, 2, "resolved", timedelta(days=2))
    await _escalation(console, 3, "withdrawn", timedelta(days=2))
    operator = await console.operator()

    body = (await operator.get("/api/overview")).json()

    assert [(1, 2), (2, 1)] == [(row["level"], row["count"]) for row in body["open_escalations"]]
    oldest = [row["oldest_age_s"] for row in body["open_escalations"]]
    assert 3 * 3600 <= oldest[0] < 3 * 3600 + 60
    assert 5 * 60 <= oldest[1] < 5 * 60 + 60


async def test_a_handoff_past_its_deadline_is_a_stuck_handoff(
    console: ConsoleHarness, registry: AgencyRegistry
) -> None:
    case_id = await _stuck_handoff(console, registry)
    operator = await console.operator()

    body = (await operator.get("/api/overview")).json()

    [stuck] = body["stuck_handoffs"]
    assert (str(case_id), "uwv", "svb") == (stuck["case_id"], stuck["from"], stuck["to"])
    deadline = datetime.fromisoformat(stuck["deadline"])
    assert deadline < datetime.now(UTC)
    assert stuck["overdue_s"] == pytest.approx(
        (datetime.now(UTC) - deadline).total_seconds(), abs=60
    )


async def test_dead_letters_are_counted_by_reason(console: ConsoleHarness, kafka: str) -> None:
    code = f"test-{uuid.uuid4().hex[:12]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        for _ in range(2):
            await producer.send_and_wait(
                topics.DLQ, b"{}", headers=[(topics.DLQ_REASON_CODE, code.encode())]
            )
    finally:
        await producer.stop()
    operator = await console.operator()

    body = await _until(operator, lambda s: any(r["reason"] == code for r in s["dead_letters"]))

    assert {"reason": code, "count": 2} in body["dead_letters"]


async def test_the_overview_page_has_every_hook_of_the_live_overview(
    console: ConsoleHarness, registry: AgencyRegistry, kafka: str
) -> None:
    await _escalation(console, 1, "raised", timedelta(hours=1))
    await _stuck_handoff(console, registry)
    operator = await console.operator()
    await _until(operator, lambda s: bool(s["dead_letters"]))  # other tests wrote some

    page = await operator.get("/")

    assert 200 == page.status_code, page.text
    html = page.text
    for hook in (
        "overview",
        "topic-row",
        "topic-messages",
        "overview-updated",
        "lag-row",
        "dead-letter-reason",
        "open-escalations-level",
        "stuck-handoff",
    ):
        assert f'data-testid="{hook}"' in html, hook
    assert f'data-topic="{topics.CASES}"' in html
    assert '<script src="/static/overview.js"' in html
    script = await operator.get("/static/overview.js")
    assert 200 == script.status_code
    assert "/api/stream/overview" in html


async def _first_event(console: ConsoleHarness, cookie: str, timeout: float = 15.0) -> bytes:
    """Open the stream as a browser would, read up to its first event, then disconnect.

    httpx's ASGI transport waits for the whole response, which a stream never
    ends; so the app is called directly, and the client "goes away" once an
    event has arrived. Returns what was sent until then; fails if the app does
    not end its response after the disconnect.
    """
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/stream/overview",
        "raw_path": b"/api/stream/overview",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"accept", b"text/event-stream"),
            (b"cookie", f"{SESSION_COOKIE}={cookie}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    gone = asyncio.Event()
    asked = False
    received: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        received.append(message)
        if b"event: overview" in message.get("body", b""):
            gone.set()

    app = asyncio.create_task(console.app(scope, receive, send))
    try:
        await asyncio.wait_for(gone.wait(), timeout)
        await asyncio.wait_for(app, 5.0)
    finally:
        app.cancel()
    [start] = [m for m in received if m["type"] == "http.response.start"]
    assert 200 == start["status"]
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    return b"".join(m.get("body", b"") for m in received if m["type"] == "http.response.body")


async def test_the_stream_sends_the_overview_as_an_event_and_ends_when_the_client_leaves(
    console: ConsoleHarness,
) -> None:
    operator = await console.operator()
    cookie = operator.cookies[SESSION_COOKIE]

    body = await _first_event(console, cookie)

    text = body.decode().replace("\r\n", "\n")
    event = next(block for block in text.split("\n\n") if "event: overview" in block)
    data = "".join(
        line.removeprefix("data: ") for line in event.splitlines() if line.startswith("data: ")
    )
    snapshot = json.loads(data)
    assert {"topics", "lag", "dead_letters", "open_escalations", "stuck_handoffs", "at"} <= (
        snapshot.keys()
    )


@pytest.mark.parametrize("path", ["/", "/api/overview", "/api/stream/overview"])
async def test_a_team_member_is_refused_the_overview(console: ConsoleHarness, path: str) -> None:
    member = await console.member()

    assert 403 == (await member.get(path)).status_code


@pytest.mark.parametrize("path", ["/api/overview", "/api/stream/overview"])
async def test_unauthenticated_the_overview_api_is_401(console: ConsoleHarness, path: str) -> None:
    assert 401 == (await console.client().get(path)).status_code


class _CountingSource:
    """Stands in for the broker and store: counts how often a snapshot is taken."""

    def __init__(self) -> None:
        self.taken = 0

    async def take(self) -> Snapshot:
        self.taken += 1
        return {"n": self.taken}


async def test_one_sampler_takes_each_snapshot_once_for_all_its_subscribers() -> None:
    source = _CountingSource()
    sampler = OverviewSampler(source, interval=0.05)
    try:
        async with sampler.subscribed(), sampler.subscribed():
            first, second = await asyncio.gather(
                sampler.next_after(0, timeout=5), sampler.next_after(0, timeout=5)
            )
            later = await sampler.next_after(first[0], timeout=5)
    finally:
        await sampler.close()

    assert first == second
    assert later[0] > first[0]
    assert source.taken == sampler.version


async def test_a_closed_sampler_takes_no_more_snapshots() -> None:
    source = _CountingSource()
    sampler = OverviewSampler(source, interval=0.05)
    await sampler.latest(timeout=5)

    await sampler.close()
    taken = source.taken
    await asyncio.sleep(0.2)

    assert taken == source.taken
    with pytest.raises(NoSnapshot):
        await sampler.latest(timeout=1)


async def test_with_the_broker_down_a_snapshot_names_the_problem_and_still_reads_the_store(
    console: ConsoleHarness, registry: AgencyRegistry
) -> None:
    case_id = await _stuck_handoff(console, registry)
    nowhere = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    source = OverviewSource(nowhere, console.state.engine, registry)

    snapshot = await source.take()

    assert [str(case_id)] == [row["case_id"] for row in snapshot["stuck_handoffs"]]
    assert ([], []) == (snapshot["lag"], snapshot["dead_letters"])
    assert {0} == {row["messages"] for row in snapshot["topics"]}
    assert snapshot["errors"]
    assert all("no Kafka broker answers" in error for error in snapshot["errors"])
