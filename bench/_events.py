"""Benchmark traffic: signed cases as an agency system would send them, valid for holder rights."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from contracts.agency_client import AgencyKeys
from contracts.case import ActionTaken, CaseContext, CaseFlag, PersonalSection
from contracts.envelope import source_urn
from contracts.events import CaseOpened, CaseOpening, HandoffRequest, HandoffRequested
from contracts.registry import AgencyRegistry

SENDER = "belastingdienst"
RECEIVER = "gm0363"
CATEGORY = "schulden"


def case_events(
    registry: AgencyRegistry, keys: Mapping[str, AgencyKeys], count: int
) -> list[tuple[bytes, bytes]]:
    """`count` signed (key, value) pairs: per case, case-opened then a handoff request.

    belastingdienst opens each case (category schulden, with actions and a
    hardship flag) and then, as its holder, asks gm0363 to take it over with
    the personal section sealed for gm0363, so every event passes the
    router's holder rights. An odd `count` ends with a case that is only opened.
    """
    sender = registry.agency(SENDER)
    assert sender is not None
    signer = keys[SENDER]
    source = source_urn(sender.oin, "bench")
    now = datetime.now(UTC)
    opened_context = CaseContext(
        actions=[ActionTaken(at=now, agency=SENDER, description="Aanmaning verstuurd")],
        flags=[CaseFlag(kind="hardship", raised_by=SENDER, note="Betalingsregeling vastgelopen")],
    )
    # One sealing for the whole run: the router's cost, not the generator's, is measured.
    sealed = signer.seal(PersonalSection(bsn="123456782"), [RECEIVER], registry)
    handoff_context = CaseContext(
        actions=[ActionTaken(at=now, agency=SENDER, description="Aanmaning verstuurd")],
        personal=sealed,
    )
    out: list[tuple[bytes, bytes]] = []
    for first in range(0, count, 2):
        case_id = uuid.uuid4()
        key = str(case_id).encode()
        opened = CaseOpened.new(
            source=source,
            case_id=case_id,
            data=CaseOpening(
                category=CATEGORY, summary="Problematische schulden", context=opened_context
            ),
        )
        out.append((key, signer.sign(opened)))
        if first + 1 == count:
            break
        out.append((key, signer.sign(handoff_request(source, case_id, handoff_context, now))))
    return out


def handoff_request(
    source: str, case_id: uuid.UUID, context: CaseContext, now: datetime
) -> HandoffRequested:
    """The holder's request to hand `case_id` on to the receiver, due in two days."""
    return HandoffRequested.new(
        source=source,
        case_id=case_id,
        sequence=2,
        data=HandoffRequest(
            handoff_id=uuid.uuid4(),
            from_agency=SENDER,
            to_agency=RECEIVER,
            reason="Doorverwijzing naar schuldhulpverlening",
            deadline=now + timedelta(days=2),
            context=context,
        ),
    )
