"""Which service receives and sends what on which topic: the topics table of DESIGN, per service.

The AsyncAPI document (`ketenbus contracts asyncapi`, the console's
`/docs/asyncapi`) is built from this. An agency's inbox and outbox are one
parameterised channel each (`agency.{code}.inbox`); the payloads are the
contract's models, so the document's schemas are the exported ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from contracts import topics
from contracts.audit import AuditRecord
from contracts.events import (
    EVENT_CLASSES,
    DeliveryFailed,
    EscalationAcknowledged,
    EscalationRaised,
    EscalationResolved,
    ZgwNotificatie,
)

OUTBOX = topics.outbox("{code}")
INBOX = topics.inbox("{code}")

AnyEvent: Any = Union[tuple(EVENT_CLASSES.values())]  # noqa: UP007 - built from a tuple at run time
"""Any event type of the contract (a JSON Schema `anyOf`)."""

Alert: Any = Union[EscalationRaised, EscalationResolved]  # noqa: UP007 - the same form as AnyEvent
TeamAction: Any = Union[EscalationAcknowledged, EscalationResolved]  # noqa: UP007 - the same

DEAD_LETTER = (
    "The refused or poison record as it was (any bytes), with the reason code, origin topic, "
    "partition and offset in headers."
)


@dataclass(frozen=True)
class Channel:
    topic: str
    payload: Any
    """A model, a Union of models, or `bytes`."""
    description: str


@dataclass(frozen=True)
class Service:
    name: str
    description: str
    receives: tuple[Channel, ...]
    sends: tuple[Channel, ...]


SERVICES = (
    Service(
        "router",
        "Checks what agencies emit and hands it on: the only writer of the case log and of "
        "agencies' inboxes.",
        receives=(Channel(OUTBOX, AnyEvent, "What agency {code} emits, signed."),),
        sends=(
            Channel(topics.CASES, AnyEvent, "The validated event, as signed (key = case id)."),
            Channel(INBOX, AnyEvent, "Each receiver's copy, cut down to what it may see."),
            Channel(topics.AUDIT, AuditRecord, "One hash-chained record per inbox copy."),
            Channel(topics.DLQ, bytes, DEAD_LETTER),
        ),
    ),
    Service(
        "tracker",
        "Keeps each case's holder, status, pending handoff and timeline from the case log.",
        receives=(Channel(topics.CASES, AnyEvent, "The case log."),),
        sends=(Channel(topics.DLQ, bytes, DEAD_LETTER),),
    ),
    Service(
        "escalation",
        "Raises escalations (expired handoffs, idle cases, ping-pong, hardship, requests) "
        "and follows them up level by level.",
        receives=(Channel(topics.CASES, AnyEvent, "The case log."),),
        sends=(
            Channel(topics.ESCALATIONS, Alert, "Alerts for escalation teams."),
            Channel(topics.CASES, AnyEvent, "Escalations and expiries, on the case log."),
            Channel(INBOX, AnyEvent, "Alerts and expiries, to the agencies concerned."),
            Channel(topics.AUDIT, AuditRecord, "One hash-chained record per inbox copy."),
            Channel(topics.DLQ, bytes, DEAD_LETTER),
        ),
    ),
    Service(
        "console",
        "The operator console: escalation teams' acknowledgements and resolutions, and "
        "operators' dead-letter replays.",
        receives=(),
        sends=(
            Channel(topics.CASES, TeamAction, "A team's acknowledgement or resolution."),
            Channel(OUTBOX, AnyEvent, "A dead letter replayed to its origin outbox, as sent."),
        ),
    ),
    Service(
        "gateway",
        "CloudEvents over HTTP for agency systems without Kafka: what they POST goes to "
        "their outbox, what arrives in their inbox to their webhooks; ZGW systems' "
        "Notificaties messages to the agencies subscribed to them.",
        receives=(Channel(INBOX, AnyEvent, "What arrives for agency {code}, for its webhooks."),),
        sends=(
            Channel(OUTBOX, AnyEvent, "What agency {code} POSTed, as it signed it."),
            Channel(
                INBOX,
                Union[DeliveryFailed, ZgwNotificatie],  # noqa: UP007 - the same form as AnyEvent
                "A webhook delivery given up: the sender told; a ZGW system's Notificaties "
                "message, to each agency subscribed to it.",
            ),
            Channel(topics.AUDIT, AuditRecord, "One hash-chained record per zgw-notificatie copy."),
            Channel(
                topics.CASES,
                DeliveryFailed,
                "The same notice when the event is a handoff request its receiver's webhook "
                "never took: the escalation service escalates the handoff at once.",
            ),
            Channel(topics.DLQ, bytes, DEAD_LETTER),
        ),
    ),
)
