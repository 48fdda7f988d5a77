"""The gateway's `delivery-failed` on the case log (a handoff request its receiver's webhook
never took): the tracker shows it on the timeline as the bus's, and it changes nothing of
the case; the same notice from an agency stays refused. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.envelope import CaseEvent
from contracts.events import DeliveryFailed, DeliveryFailure
from contracts.handoff import gateway_source
from contracts.reasons import WEBHOOK_UNDELIVERABLE
from contracts.registry import AgencyRegistry
from services.runtime.store.tables import case_timeline, cases
from services.tracker.ledger import apply_batch
from tests._testutil import EventFactory


def _notice(source: str, about: CaseEvent[Any]) -> DeliveryFailed:
    return DeliveryFailed.new(
        source=source,
        case_id=about.subject,
        causationid=about.id,
        data=DeliveryFailure(
            reason_code=WEBHOOK_UNDELIVERABLE,
            reason="the receiver's webhook did not take the event",
            rejected_event_id=str(about.id),
            topic=topics.inbox("svb"),
            partition=0,
            offset=7,
        ),
    )


async def _rows(store: AsyncEngine, case_id: uuid.UUID) -> tuple[Any, list[Any]]:
    async with store.connect() as connection:
        case = (await connection.execute(select(cases).where(cases.c.case_id == case_id))).one()
        timeline = (
            await connection.execute(
                select(case_timeline)
                .where(case_timeline.c.case_id == case_id)
                .order_by(case_timeline.c.id)
            )
        ).all()
    return case, list(timeline)


async def test_the_gateways_notice_is_on_the_timeline_as_the_buss_and_the_handoff_stays_pending(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    """Recorded and applied, from `ketenbus`, summarised by its reason code; the holder and
    the pending handoff are as they were (the expiry that follows ends the handoff)."""
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    request = make.requested(case_id, handoff_id, "uwv", "svb")
    await apply_batch(store, registry, [make.opened(case_id, by="uwv"), request])
    notice = _notice(gateway_source(registry), request)

    result = await apply_batch(store, registry, [notice])

    case, timeline = await _rows(store, case_id)
    assert (1, 0) == (result.applied, result.refused)
    assert ("uwv", handoff_id, "svb") == (case.holder, case.pending_handoff_id, case.pending_to)
    last = timeline[-1]
    assert (
        notice.id,
        "delivery-failed",
        "ketenbus",
        True,
        None,
        "delivery failed: webhook-undeliverable",
    ) == (last.event_id, last.event_type, last.agency, last.applied, last.refusal, last.summary)


async def test_a_delivery_failed_from_an_agency_on_the_case_log_is_refused(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    """Only the bus tells of a failed delivery; an agency's notice changes nothing."""
    case_id = uuid.uuid4()
    request = make.requested(case_id, uuid.uuid4(), "uwv", "svb")
    await apply_batch(store, registry, [make.opened(case_id, by="uwv"), request])
    before, _ = await _rows(store, case_id)

    result = await apply_batch(store, registry, [_notice(make.source("uwv"), request)])

    after, timeline = await _rows(store, case_id)
    assert (0, 1) == (result.applied, result.refused)
    assert before == after
    assert (False, "delivery-failed is a notice to an agency, not part of a case") == (
        timeline[-1].applied,
        timeline[-1].refusal,
    )
