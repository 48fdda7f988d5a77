"""Router and tracker on the real broker: a handoff written by a plain Kafka client, end to end.

The events are written by hand (`raw_event`) and signed with the agencies' test
keys, as an agency system without the project's code would sign them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.casefile.queries import CaseView, case_view
from services.router.app import create_router
from services.runtime.config.settings import Settings
from services.tracker.app import create_tracker
from tests._testutil import (
    EventFactory,
    event_id,
    headers_of,
    keyed,
    produce,
    raw_event,
    read_until,
    start_group_at_end,
)

pytestmark = pytest.mark.broker


@pytest.fixture
async def bus(
    kafka: str, settings: Settings, signed_registry: AgencyRegistry, store: AsyncEngine
) -> AsyncIterator[AsyncEngine]:
    """Router and tracker running on this test's store, each in a group of its own.

    The router's group starts at the outboxes' current end: it routes only this test's events.
    """
    group = f"router-{uuid.uuid4()}"
    outboxes = [topics.outbox(agency.code) for agency in signed_registry.agencies]
    await start_group_at_end(kafka, group, outboxes)
    router = create_router(settings, signed_registry, kafka, store, group_id=group)
    tracker = create_tracker(
        settings, signed_registry, store, kafka, group_id=f"tracker-{uuid.uuid4()}"
    )
    await asyncio.gather(router.start(), tracker.start())
    yield store
    await asyncio.gather(router.stop(), tracker.stop())


async def _timeline_of(store: AsyncEngine, case_id: uuid.UUID, entries: int) -> CaseView:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = await case_view(store, case_id)
        if view is not None and len(view.timeline) >= entries:
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"case {case_id} did not reach {entries} timeline entries")


def _oin(registry: AgencyRegistry, code: str) -> str:
    agency = registry.agency(code)
    assert agency is not None
    return agency.oin


async def test_the_tracker_shows_the_new_holder_after_the_accept_and_never_sees_a_wrong_acceptor(
    kafka: str,
    registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    bus: AsyncEngine,
) -> None:
    case_id, handoff_id = uuid.uuid4(), str(uuid.uuid4())
    key = str(case_id).encode()
    handoff: dict[str, object] = {
        "handoff_id": handoff_id,
        "from_agency": "belastingdienst",
        "to_agency": "gm0363",
    }
    deadline = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    belastingdienst = agency_keys["belastingdienst"]
    await produce(
        kafka,
        topics.outbox("belastingdienst"),
        [
            (
                key,
                belastingdienst.sign(
                    raw_event(
                        _oin(registry, "belastingdienst"),
                        "case-opened",
                        case_id,
                        {"category": "schulden", "summary": "Belastingschuld"},
                    )
                ),
            ),
            (
                key,
                belastingdienst.sign(
                    raw_event(
                        _oin(registry, "belastingdienst"),
                        "handoff-requested",
                        case_id,
                        {**handoff, "reason": "Schuldhulp", "deadline": deadline},
                        sequence=2,
                    )
                ),
            ),
        ],
    )
    await read_until(kafka, topics.inbox("gm0363"), keyed(case_id))
    wrong = agency_keys["cjib"].sign(
        raw_event(_oin(registry, "cjib"), "handoff-accepted", case_id, handoff)
    )
    await produce(kafka, topics.outbox("cjib"), [(key, wrong)])
    wrong_id = json.loads(wrong)["id"]
    dead = await read_until(kafka, topics.DLQ, lambda r: r.key == key and event_id(r) == wrong_id)
    await produce(
        kafka,
        topics.outbox("gm0363"),
        [
            (
                key,
                agency_keys["gm0363"].sign(
                    raw_event(_oin(registry, "gm0363"), "handoff-accepted", case_id, handoff)
                ),
            )
        ],
    )

    view = await _timeline_of(bus, case_id, 3)

    assert ["not-permitted"] == [headers_of(r)[topics.DLQ_REASON_CODE] for r in dead]
    assert "gm0363" == view.holder
    assert [
        ("case-opened", True, "belastingdienst"),
        ("handoff-requested", True, "belastingdienst"),
        ("handoff-accepted", True, "gm0363"),
    ] == [(entry.type, entry.applied, entry.agency) for entry in view.timeline]


async def test_a_foreign_record_on_the_case_log_is_set_aside_and_other_cases_recorded(
    kafka: str,
    settings: Settings,
    registry: AgencyRegistry,
    store: AsyncEngine,
    make: EventFactory,
) -> None:
    """On SQLite and PostgreSQL: a header value that is not UTF-8 drops nothing, and an
    event with a NUL written straight onto `ketenbus.cases` is dead-lettered by the tracker
    with `nul-character` instead of failing the store's transaction; the cases on both
    sides of it are recorded."""
    before, nul_case, after = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    nul_event = make.escalation_requested(nul_case, rule_reference="Pw art.\u0000 18")
    writes = [
        (before, make.opened(before, by="uwv").to_json(), [("trace", b"\xff\xfe")]),
        (nul_case, make.opened(nul_case, by="uwv").to_json(), []),
        (nul_case, nul_event.to_json(), []),
        (after, make.opened(after, by="uwv").to_json(), []),
    ]
    tracker = create_tracker(settings, registry, store, kafka, group_id=f"tracker-{uuid.uuid4()}")
    await tracker.start()
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        await producer.start()
        try:
            for case_id, value, headers in writes:
                key = str(case_id).encode()
                await producer.send_and_wait(topics.CASES, value, key=key, headers=headers)
        finally:
            await producer.stop()
        [dead] = await read_until(
            kafka, topics.DLQ, lambda r: event_id(r) == str(nul_event.id), timeout=30
        )
        seen = [await _timeline_of(store, case_id, 1) for case_id in (before, nul_case, after)]
    finally:
        await tracker.stop()

    assert ("nul-character", "tracker", topics.CASES) == (
        headers_of(dead)[topics.DLQ_REASON_CODE],
        headers_of(dead)[topics.DLQ_REJECTED_BY],
        headers_of(dead)[topics.DLQ_ORIGIN_TOPIC],
    )
    assert [1, 1, 1] == [len(view.timeline) for view in seen]
