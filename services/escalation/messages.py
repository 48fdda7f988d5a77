"""Where each event the service emits goes, and producing them with the broker's ack.

An alert (or the bus's withdrawal of one) goes to three places:
`ketenbus.escalations` (the teams' and the console's feed), `ketenbus.cases`
(so the tracker puts it on the case's timeline) and the inbox of the alerted
team's agency. An expiry goes to the
case log and to both parties of the handoff. A refused request goes, as it
came, to the dead-letter topic, and the sender is told in its inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts import topics
from contracts.envelope import CONTENT_TYPE, CaseEvent
from contracts.events import (
    DeliveryFailed,
    DeliveryFailure,
    EscalationRaised,
    EscalationResolved,
    HandoffExpired,
)
from services.escalation.model import derived_id
from services.runtime.kafka.clients import Outgoing

REJECTED_BY = "escalation"
"""The `ketenbus-rejected-by` header of the service's dead letters."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a case-log record was read: what a dead letter and a notice point back to."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def _to(topic: str, event: CaseEvent[Any], value: bytes | None = None) -> Outgoing:
    return Outgoing(
        topic,
        str(event.subject).encode(),
        event.to_json() if value is None else value,
        {"content-type": CONTENT_TYPE},
        str(event.correlationid),
    )


def alert_messages(event: EscalationRaised | EscalationResolved) -> list[Outgoing]:
    """A raise, or the bus's own withdrawal of one, to the feed, the case log and the team."""
    team_agency = event.data.team.agency
    value = event.to_json()  # once: the same bytes go to all three
    return [
        _to(topics.ESCALATIONS, event, value),
        _to(topics.CASES, event, value),
        _to(topics.inbox(team_agency), event, value),
    ]


def expired_messages(event: HandoffExpired) -> list[Outgoing]:
    parties = dict.fromkeys((event.data.from_agency, event.data.to_agency))
    value = event.to_json()
    return [
        _to(topics.CASES, event, value),
        *(_to(topics.inbox(code), event, value) for code in parties),
    ]


def refusal_messages(
    origin: Origin,
    event: CaseEvent[Any],
    *,
    sender: str,
    code: str,
    reason: str,
    source: str,
    now: datetime,
) -> list[Outgoing]:
    """The dead letter (the record as it was) and the sender's `delivery-failed` notice."""
    headers = {
        topics.DLQ_REASON: reason,
        topics.DLQ_REASON_CODE: code,
        topics.DLQ_ORIGIN_TOPIC: origin.topic,
        topics.DLQ_ORIGIN_PARTITION: str(origin.partition),
        topics.DLQ_ORIGIN_OFFSET: str(origin.offset),
        topics.DLQ_REJECTED_BY: REJECTED_BY,
    }
    notice = DeliveryFailed.new(
        source=source,
        case_id=event.subject,
        correlationid=event.correlationid,
        causationid=event.id,
        time=now,
        data=DeliveryFailure(
            reason_code=code,
            reason=reason,
            rejected_event_id=str(event.id),
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
        ),
    )
    # Derived from the refused event, so a replayed refusal is the same notice.
    notice = notice.model_copy(update={"id": derived_id(event.id, "delivery-failed")})
    return [
        Outgoing(topics.DLQ, origin.key, origin.value, headers, str(event.correlationid)),
        _to(topics.inbox(sender), notice),
    ]
