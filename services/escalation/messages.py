"""Where each event the service emits goes, and producing them with the broker's ack.

An alert (or the bus's withdrawal of one) goes to three places:
`ketenbus.escalations` (the teams' and the console's feed), `ketenbus.cases`
(so the tracker puts it on the case's timeline) and the inbox of the alerted
team's agency. An expiry goes to the
case log and to both parties of the handoff. A refused request goes, as it
came, to the dead-letter topic, and the sender is told in its inbox.
"""

from __future__ import annotations

from typing import Any

from contracts import topics
from contracts.envelope import CONTENT_TYPE, CaseEvent
from contracts.events import (
    EscalationRaised,
    EscalationResolved,
    HandoffExpired,
)
from services.runtime.kafka.clients import Outgoing


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
