"""Topic names: the public contract of where events flow (DESIGN "Topics")."""

from __future__ import annotations

CASES = "ketenbus.cases"
"""The validated case log, one event stream per case (key = case id)."""

ESCALATIONS = "ketenbus.escalations"
"""Alerts for escalation teams."""

DLQ = "ketenbus.dlq"
"""Rejected or poison messages, with the reason in headers."""

AUDIT = "ketenbus.audit"
"""Who received which fields of which case, under which legal basis."""

BUS_TOPICS = (CASES, ESCALATIONS, DLQ, AUDIT)


def outbox(agency_code: str) -> str:
    """What an agency emits; written by that agency only, read by the router."""
    return f"agency.{agency_code}.outbox"


def inbox(agency_code: str) -> str:
    """What is addressed to an agency; written by the router and the escalation service."""
    return f"agency.{agency_code}.inbox"


def agency_of_outbox(topic: str) -> str | None:
    """The agency code of an outbox topic name, or None for any other topic."""
    return _agency_of(topic, "outbox")


def agency_of_inbox(topic: str) -> str | None:
    """The agency code of an inbox topic name, or None for any other topic."""
    return _agency_of(topic, "inbox")


def _agency_of(topic: str, kind: str) -> str | None:
    parts = topic.split(".")
    if len(parts) == 3 and parts[0] == "agency" and parts[2] == kind:
        return parts[1]
    return None


# Headers the bus sets on dead letters; operators and `ketenbus dlq` read them.
DLQ_REASON = "ketenbus-reason"
DLQ_REASON_CODE = "ketenbus-reason-code"
DLQ_ORIGIN_TOPIC = "ketenbus-origin-topic"
DLQ_ORIGIN_PARTITION = "ketenbus-origin-partition"
DLQ_ORIGIN_OFFSET = "ketenbus-origin-offset"
DLQ_REJECTED_BY = "ketenbus-rejected-by"
DLQ_REDACTED = "ketenbus-redacted"
"""On a dead letter whose value had a part removed (personal data sent in clear): which part."""

DLQ_HEADERS = frozenset(
    {
        DLQ_REASON,
        DLQ_REASON_CODE,
        DLQ_ORIGIN_TOPIC,
        DLQ_ORIGIN_PARTITION,
        DLQ_ORIGIN_OFFSET,
        DLQ_REJECTED_BY,
        DLQ_REDACTED,
    }
)
"""The headers above: a record's own headers of these names are not kept on its dead letter."""
