"""Benchmark traffic: valid handoff requests, as an agency system would send them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from contracts.case import ActionTaken, CaseContext
from contracts.envelope import source_urn
from contracts.events import HandoffRequest, HandoffRequested
from contracts.registry import AgencyRegistry


def handoff_requests(registry: AgencyRegistry, count: int) -> list[tuple[bytes, bytes]]:
    """`count` (key, value) pairs from belastingdienst to gm0363, about 700 bytes each."""
    sender = registry.agency("belastingdienst")
    assert sender is not None
    source = source_urn(sender.oin, "bench")
    now = datetime.now(UTC)
    context = CaseContext(
        actions=[ActionTaken(at=now, agency="belastingdienst", description="Aanmaning verstuurd")]
    )
    out = []
    for _ in range(count):
        case_id = uuid.uuid4()
        event = HandoffRequested.new(
            source=source,
            case_id=case_id,
            data=HandoffRequest(
                handoff_id=uuid.uuid4(),
                from_agency="belastingdienst",
                to_agency="gm0363",
                reason="Doorverwijzing naar schuldhulpverlening",
                deadline=now + timedelta(days=2),
                context=context,
            ),
        )
        out.append((str(case_id).encode(), event.to_json()))
    return out
