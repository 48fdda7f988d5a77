"""Router and tracker on the real broker: a handoff written by a plain Kafka client, end to end."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.registry import AgencyRegistry
from services.router.app import create_router
from services.runtime.settings import Settings
from services.tracker.app import create_tracker
from services.tracker.queries import CaseView, case_view
from tests.kafka_helpers import keyed, produce, raw_event, read_until

pytestmark = pytest.mark.broker


@pytest.fixture
async def bus(
    kafka: str, settings: Settings, registry: AgencyRegistry, store: AsyncEngine
) -> AsyncIterator[AsyncEngine]:
    """Router and tracker running; the tracker in a group of its own on this test's store."""
    router = create_router(settings, registry, kafka)
    tracker = create_tracker(settings, registry, store, kafka, group_id=f"tracker-{uuid.uuid4()}")
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


async def test_the_tracker_shows_the_new_holder_after_the_accept_and_refuses_a_wrong_acceptor(
    kafka: str, registry: AgencyRegistry, bus: AsyncEngine
) -> None:
    case_id, handoff_id = uuid.uuid4(), str(uuid.uuid4())
    key = str(case_id).encode()
    handoff = {"handoff_id": handoff_id, "from_agency": "belastingdienst", "to_agency": "gm0363"}
    deadline = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    await produce(
        kafka,
        topics.outbox("belastingdienst"),
        [
            (
                key,
                raw_event(
                    _oin(registry, "belastingdienst"),
                    "case-opened",
                    case_id,
                    {"category": "schulden", "summary": "Belastingschuld"},
                ),
            ),
            (
                key,
                raw_event(
                    _oin(registry, "belastingdienst"),
                    "handoff-requested",
                    case_id,
                    {**handoff, "reason": "Schuldhulp", "deadline": deadline},
                    sequence=2,
                ),
            ),
        ],
    )
    await read_until(kafka, topics.inbox("gm0363"), keyed(case_id))
    wrong = {**handoff, "to_agency": "cjib"}
    await produce(
        kafka,
        topics.outbox("cjib"),
        [(key, raw_event(_oin(registry, "cjib"), "handoff-accepted", case_id, wrong))],
    )
    await read_until(kafka, topics.CASES, keyed(case_id), count=3)
    await produce(
        kafka,
        topics.outbox("gm0363"),
        [(key, raw_event(_oin(registry, "gm0363"), "handoff-accepted", case_id, handoff))],
    )

    view = await _timeline_of(bus, case_id, 4)

    assert "gm0363" == view.holder
    assert [
        ("case-opened", True),
        ("handoff-requested", True),
        ("handoff-accepted", False),
        ("handoff-accepted", True),
    ] == [(entry.type, entry.applied) for entry in view.timeline]
    assert view.timeline[2].refusal is not None
    assert "cjib" == view.timeline[2].agency
