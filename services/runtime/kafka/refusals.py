"""A refusal after the router: the record to the dead-letter topic as it was, the sender told.

The router refuses at the door; a service further on (the escalation service
refusing a request, the gateway giving up on a webhook) refuses an event that
was already on the bus, and says so the same way: the dead letter with the
`ketenbus-*` headers, and a `delivery-failed` notice in the sender's inbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts import topics
from contracts.envelope import CONTENT_TYPE, CaseEvent
from contracts.events import DeliveryFailed, DeliveryFailure
from services.runtime.kafka.clients import Outgoing


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a case-log record was read: what a dead letter and a notice point back to."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def refusal_messages(
    origin: Origin,
    event: CaseEvent[Any],
    *,
    sender: str,
    code: str,
    reason: str,
    source: str,
    now: datetime,
    rejected_by: str,
) -> list[Outgoing]:
    """The dead letter (the record as it was) and the sender's `delivery-failed` notice.

    `source`: the bus's own system that speaks (the notice's source); `rejected_by`:
    the service named in the dead letter's `ketenbus-rejected-by`.
    """
    headers = {
        topics.DLQ_REASON: reason,
        topics.DLQ_REASON_CODE: code,
        topics.DLQ_ORIGIN_TOPIC: origin.topic,
        topics.DLQ_ORIGIN_PARTITION: str(origin.partition),
        topics.DLQ_ORIGIN_OFFSET: str(origin.offset),
        topics.DLQ_REJECTED_BY: rejected_by,
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
    notice = notice.model_copy(update={"id": uuid.uuid5(event.id, "delivery-failed")})
    return [
        Outgoing(topics.DLQ, origin.key, origin.value, headers, str(event.correlationid)),
        _to(topics.inbox(sender), notice),
    ]


def _to(topic: str, event: CaseEvent[Any]) -> Outgoing:
    return Outgoing(
        topic,
        str(event.subject).encode(),
        event.to_json(),
        {"content-type": CONTENT_TYPE},
        str(event.correlationid),
    )
