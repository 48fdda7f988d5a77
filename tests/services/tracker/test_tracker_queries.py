"""Reading the store back: one case with its timeline, and the most recent cases."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.registry import AgencyRegistry
from services.casefile.queries import PendingHandoffView, case_view, recent_cases, timeline
from services.tracker.ledger import apply_batch
from tests._testutil import EventFactory


async def test_case_view_gives_the_state_and_the_timeline_in_the_order_applied(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    opened = make.opened(case_id, by="uwv")
    request = make.requested(case_id, handoff_id, "uwv", "svb")
    # An emitter with a slow clock: its event is later in the log, earlier in time.
    update = make.context_updated(case_id, by="uwv").model_copy(
        update={"time": opened.time - timedelta(hours=1)}
    )
    wrong = make.accepted(case_id, handoff_id, by="cak")
    await apply_batch(store, registry, [opened, request])
    await apply_batch(store, registry, [update, wrong])

    view = await case_view(store, case_id)

    assert view is not None
    assert [opened.id, request.id, update.id, wrong.id] == [e.event_id for e in view.timeline]
    assert [True, True, True, False] == [e.applied for e in view.timeline]
    assert view.timeline[3].refusal == f"only svb may accept handoff {handoff_id}, not cak"
    assert ("uwv", "open", 0) == (view.holder, view.status, view.bounce_count)
    assert view.pending_handoff == PendingHandoffView(
        handoff_id=handoff_id, from_agency="uwv", to_agency="svb", deadline=request.data.deadline
    )
    assert view.opened_at == opened.time


async def test_case_view_of_a_case_never_seen_is_none(store: AsyncEngine) -> None:
    assert await case_view(store, uuid.uuid4()) is None


async def test_a_case_never_opened_has_no_view_but_its_refused_events_on_the_timeline(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    await apply_batch(store, registry, [make.closed(case_id, by="uwv")])

    view = await case_view(store, case_id)
    entries = await timeline(store, case_id)

    assert view is None
    assert [("case-closed", "unknown case")] == [(e.type, e.refusal) for e in entries]


async def test_recent_cases_lists_the_most_recently_active_first_up_to_the_limit(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    for case_id in ids:
        await apply_batch(store, registry, [make.opened(case_id, by="gm0363")])
    # The oldest case becomes the most recently active one.
    await apply_batch(store, registry, [make.context_updated(ids[0], by="gm0363")])

    recent = await recent_cases(store, limit=3)

    assert [ids[0], ids[3], ids[2]] == [case.case_id for case in recent]
    assert {("gm0363", "open")} == {(case.holder, case.status) for case in recent}


async def test_recent_cases_of_an_empty_store_is_an_empty_list(store: AsyncEngine) -> None:
    assert await recent_cases(store) == []
