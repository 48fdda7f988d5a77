"""Batches applied to the store, on SQLite and PostgreSQL: in order, atomically, once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.registry import AgencyRegistry
from services.runtime.store.engine import migrate
from services.runtime.store.tables import case_timeline, cases
from services.tracker.ledger import apply_batch
from tests._testutil import PERSONAL_NAME, EventFactory


async def _case(engine: AsyncEngine, case_id: uuid.UUID) -> dict[str, Any] | None:
    async with engine.connect() as connection:
        row = (await connection.execute(select(cases).where(cases.c.case_id == case_id))).first()
    return dict(row._mapping) if row is not None else None


async def _timeline(engine: AsyncEngine, case_id: uuid.UUID) -> list[dict[str, Any]]:
    query = (
        select(case_timeline).where(case_timeline.c.case_id == case_id).order_by(case_timeline.c.id)
    )
    async with engine.connect() as connection:
        return [dict(row._mapping) for row in await connection.execute(query)]


async def test_open_request_accept_makes_the_receiver_the_holder(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    await apply_batch(store, registry, [make.opened(case_id, by="uwv")])
    await apply_batch(store, registry, [make.requested(case_id, handoff_id, "uwv", "svb")])
    accept = make.accepted(case_id, handoff_id, "uwv", "svb")

    result = await apply_batch(store, registry, [accept])

    case = await _case(store, case_id)
    assert case is not None
    assert (result.applied, result.refused) == (1, 0)
    assert ("svb", "open", None, None, 0) == (
        case["holder"],
        case["status"],
        case["pending_handoff_id"],
        case["pending_to"],
        case["bounce_count"],
    )
    assert case["last_event_at"] == accept.time
    timeline = await _timeline(store, case_id)
    assert [
        ("case-opened", "uwv", True),
        ("handoff-requested", "uwv", True),
        ("handoff-accepted", "svb", True),
    ] == [(row["event_type"], row["agency"], row["applied"]) for row in timeline]
    assert timeline[2]["handoff_id"] == handoff_id


async def test_events_in_one_batch_see_the_effects_of_those_before_them(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    batch = [
        make.opened(case_id, by="uwv"),
        make.requested(case_id, handoff_id, "uwv", "svb"),
        make.rejected(case_id, handoff_id, "uwv", "svb"),
        make.requested(case_id, handoff_id := uuid.uuid4(), "uwv", "cak"),
        make.accepted(case_id, handoff_id, "uwv", "cak"),
    ]

    result = await apply_batch(store, registry, batch)

    case = await _case(store, case_id)
    assert case is not None
    assert (5, 0) == (result.applied, result.refused)
    assert ("cak", 1) == (case["holder"], case["bounce_count"])


async def test_accept_without_a_pending_handoff_is_refused_and_recorded(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    await apply_batch(store, registry, [make.opened(case_id, by="uwv")])
    before = await _case(store, case_id)

    result = await apply_batch(store, registry, [make.accepted(case_id, uuid.uuid4())])

    assert (0, 1) == (result.applied, result.refused)
    assert await _case(store, case_id) == before
    last = (await _timeline(store, case_id))[-1]
    assert ("handoff-accepted", False, "no handoff is pending") == (
        last["event_type"],
        last["applied"],
        last["refusal"],
    )


async def test_accept_by_another_agency_than_the_receiver_is_refused_and_the_holder_stays(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    await apply_batch(
        store,
        registry,
        [make.opened(case_id, by="uwv"), make.requested(case_id, handoff_id, "uwv", "svb")],
    )

    await apply_batch(store, registry, [make.accepted(case_id, handoff_id, by="cak")])

    case = await _case(store, case_id)
    assert case is not None
    assert ("uwv", handoff_id, "svb") == (
        case["holder"],
        case["pending_handoff_id"],
        case["pending_to"],
    )
    last = (await _timeline(store, case_id))[-1]
    assert (False, f"only svb may accept handoff {handoff_id}, not cak", "cak") == (
        last["applied"],
        last["refusal"],
        last["agency"],
    )


async def test_applying_the_same_event_again_changes_nothing(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    batch = [
        make.opened(case_id, by="uwv"),
        make.requested(case_id, handoff_id, "uwv", "svb"),
        make.rejected(case_id, handoff_id, "uwv", "svb"),
    ]
    await apply_batch(store, registry, batch)
    case_before, timeline_before = await _case(store, case_id), await _timeline(store, case_id)

    again = await apply_batch(store, registry, batch)

    assert ([], [event.id for event in batch]) == (
        again.recorded,
        [event.id for event in again.duplicates],
    )
    assert await _case(store, case_id) == case_before
    assert await _timeline(store, case_id) == timeline_before


async def test_a_duplicate_inside_one_batch_is_applied_once(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    opened = make.opened(case_id, by="uwv")
    requested = make.requested(case_id, handoff_id, "uwv", "svb")
    rejected = make.rejected(case_id, handoff_id, "uwv", "svb")

    result = await apply_batch(store, registry, [opened, requested, rejected, rejected, opened])

    case = await _case(store, case_id)
    assert case is not None
    assert (3, 0, [rejected.id, opened.id]) == (
        result.applied,
        result.refused,
        [event.id for event in result.duplicates],
    )
    assert case["bounce_count"] == 1
    assert len(await _timeline(store, case_id)) == 3


async def test_the_same_batch_applied_by_two_writers_at_once_is_applied_once(
    engines: Callable[[], AsyncEngine], registry: AgencyRegistry, make: EventFactory
) -> None:
    """A rebalance can hand a batch to a second consumer before the first commits."""
    first, second = engines(), engines()
    await migrate(first)
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    await apply_batch(first, registry, [make.opened(case_id, by="uwv")])
    batch = [
        make.requested(case_id, handoff_id, "uwv", "svb"),
        make.rejected(case_id, handoff_id, "uwv", "svb"),
    ]

    results = await asyncio.gather(
        apply_batch(first, registry, batch), apply_batch(second, registry, batch)
    )

    assert sorted((r.applied, len(r.duplicates)) for r in results) == [(0, 2), (2, 0)]
    case = await _case(first, case_id)
    assert case is not None
    assert case["bounce_count"] == 1


async def test_an_event_for_an_unknown_case_is_recorded_as_refused_without_a_case_row(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()

    await apply_batch(store, registry, [make.closed(case_id, by="uwv")])

    assert await _case(store, case_id) is None
    timeline = await _timeline(store, case_id)
    assert [("case-closed", False, "unknown case")] == [
        (row["event_type"], row["applied"], row["refusal"]) for row in timeline
    ]


async def test_escalation_events_fill_the_escalation_columns(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, escalation_id = uuid.uuid4(), uuid.uuid4()
    await apply_batch(
        store,
        registry,
        [
            make.opened(case_id, by="uwv"),
            make.escalation_raised(case_id, escalation_id, level=2),
            make.escalation_resolved(case_id, escalation_id),
        ],
    )

    raised, resolved = (await _timeline(store, case_id))[1:]

    assert (escalation_id, 2, "ping-pong", None, "ketenbus") == (
        raised["escalation_id"],
        raised["escalation_level"],
        raised["escalation_trigger"],
        raised["escalation_outcome"],
        raised["agency"],
    )
    assert (escalation_id, "maatwerk-granted") == (
        resolved["escalation_id"],
        resolved["escalation_outcome"],
    )


async def test_no_free_text_from_the_events_reaches_the_timeline(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    batch = [
        make.opened(case_id, by="uwv"),
        make.context_updated(case_id, by="uwv"),
        make.requested(case_id, handoff_id, "uwv", "svb"),
        make.rejected(case_id, handoff_id, "uwv", "svb"),
        make.escalation_raised(case_id),
        make.closed(case_id, by="uwv"),
    ]

    await apply_batch(store, registry, batch)

    timeline = await _timeline(store, case_id)
    assert len(timeline) == len(batch)
    for row in timeline:
        assert PERSONAL_NAME not in row["summary"]
        assert "123456782" not in row["summary"]
    assert timeline[1]["summary"] == "context updated: 1 action, 1 hardship flag"
    assert timeline[3]["summary"] == "handoff uwv -> svb rejected (Awir art. 26)"


async def test_a_large_batch_takes_one_transaction_and_records_every_event(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    batch = []
    for _ in range(1200):  # more than one IN (...) chunk
        case_id = uuid.uuid4()
        batch += [make.opened(case_id, by="gm0363"), make.context_updated(case_id, by="gm0363")]

    result = await apply_batch(store, registry, batch)

    async with store.connect() as connection:
        counted = (
            await connection.execute(select(func.count()).select_from(case_timeline))
        ).scalar_one()
        opened = (await connection.execute(select(func.count()).select_from(cases))).scalar_one()
    assert (2400, 2400, 1200) == (result.applied, counted, opened)


async def test_two_writers_racing_to_open_the_same_case_apply_it_once(
    engines: Callable[[], AsyncEngine], registry: AgencyRegistry, make: EventFactory
) -> None:
    """No row to lock yet: the unique event id makes the loser fail whole (and be replayed)."""
    first, second = engines(), engines()
    await migrate(first)
    case_id = uuid.uuid4()
    batch = [make.opened(case_id, by="uwv"), make.context_updated(case_id, by="uwv")]

    outcomes = await asyncio.gather(
        apply_batch(first, registry, batch),
        apply_batch(second, registry, batch),
        return_exceptions=True,
    )
    replayed = await apply_batch(first, registry, batch)

    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(failure, IntegrityError) for failure in failures)
    assert sum(o.applied for o in outcomes if not isinstance(o, BaseException)) == 2
    assert (0, 2) == (replayed.applied, len(replayed.duplicates))
    assert len(await _timeline(first, case_id)) == 2
