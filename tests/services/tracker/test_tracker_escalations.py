"""A case's escalations on the store, both backends: forced handoffs and the per-case view."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import TeamRef
from contracts.registry import AgencyRegistry
from services.casefile.queries import case_view
from services.tracker.ledger import apply_batch
from tests._testutil import START, EventFactory

MAATWERK = TeamRef(agency="minszw", team="maatwerkloket")


async def test_a_forced_handoff_moves_the_holder_and_clears_the_pending_handoff(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id, escalation_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await apply_batch(
        store,
        registry,
        [
            make.opened(case_id, by="uwv"),
            make.requested(case_id, handoff_id, "uwv", "svb"),
            make.escalation_raised(case_id, escalation_id, level=3, team=MAATWERK),
        ],
    )

    forced = make.escalation_resolved(
        case_id, escalation_id, "handoff-forced", handoff_to="cak", by="minszw", team=MAATWERK
    )
    result = await apply_batch(store, registry, [forced])

    view = await case_view(store, case_id)
    assert view is not None
    assert (1, "cak", None) == (result.applied, view.holder, view.pending_handoff)


async def test_a_handoff_forced_by_an_agency_off_the_path_is_recorded_as_refused(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, escalation_id = uuid.uuid4(), uuid.uuid4()
    await apply_batch(
        store,
        registry,
        [make.opened(case_id, by="uwv"), make.escalation_raised(case_id, escalation_id)],
    )
    forced = make.escalation_resolved(
        case_id, escalation_id, "handoff-forced", handoff_to="svb", by="svb"
    )

    await apply_batch(store, registry, [forced])

    view = await case_view(store, case_id)
    assert view is not None
    assert ("uwv", False, "raised") == (
        view.holder,
        view.timeline[-1].applied,
        view.escalations[0].status,
    )


async def test_case_view_folds_each_escalation_into_trigger_levels_team_status_and_outcome(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, climbed, waiting = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    level_one = TeamRef(agency="gm0363", team="schuldhulp-teamleiding")
    raised_at = START + timedelta(days=1)
    events = [
        make.opened(case_id, by="uwv"),
        make.at(raised_at).escalation_raised(
            case_id,
            climbed,
            level=1,
            team=level_one,
            trigger="handoff-expired",
            rule_reference="Awir art. 26",
            agency_pair=("uwv", "svb"),
        ),
        make.escalation_raised(case_id, climbed, level=2, trigger="handoff-expired"),
        make.escalation_acknowledged(case_id, climbed, level=2),
        make.escalation_raised(case_id, waiting, level=1, team=level_one, trigger="hardship"),
        make.escalation_acknowledged(case_id, waiting, level=1, team=level_one),
        make.escalation_resolved(case_id, climbed, "no-action-needed"),
    ]
    await apply_batch(store, registry, events)

    view = await case_view(store, case_id)

    assert view is not None
    assert [
        (
            climbed,
            "handoff-expired",
            2,
            2,
            "gm0363/regionaal-escalatieteam",
            "resolved",
            "no-action-needed",
            "Awir art. 26",
            "uwv>svb",
            raised_at,
            events[-1].time,
        ),
        (
            waiting,
            "hardship",
            1,
            1,
            "gm0363/schuldhulp-teamleiding",
            "acknowledged",
            None,
            None,
            None,
            events[4].time,
            None,
        ),
    ] == [
        (
            e.escalation_id,
            e.trigger,
            e.level,
            e.highest_level,
            e.team,
            e.status,
            e.outcome,
            e.rule_reference,
            e.agency_pair,
            e.raised_at,
            e.resolved_at,
        )
        for e in view.escalations
    ]


async def test_a_case_without_escalations_has_an_empty_escalation_list(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    await apply_batch(store, registry, [make.opened(case_id, by="uwv")])

    view = await case_view(store, case_id)

    assert view is not None
    assert [] == view.escalations
