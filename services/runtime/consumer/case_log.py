"""A record of the case log read back: the event the router put there, or why it is none.

The router validated everything it wrote to `ketenbus.cases`; a record that
does not parse there is a bug or a foreign writer (the embedded broker lets
any client write). Every reader of the case log reads it this one way, so
the tracker and the escalation service skip the same records.
"""

from __future__ import annotations

from typing import Any

from contracts.envelope import CaseEvent
from contracts.parse import EventRejected, parse_event, read_json
from contracts.screening import screen
from services.runtime.observability.logging import get_logger

log = get_logger("ketenbus.case_log")


def case_event_of(record: Any) -> CaseEvent[Any]:
    """The event in `record` (an aiokafka ConsumerRecord); raise EventRejected, logged, if none."""
    try:
        return _event_in(record.value or b"")
    except EventRejected as exc:
        rejected = exc
    log.error(
        "unreadable record on the case log skipped",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason_code=rejected.code,
        field=rejected.field,
    )
    raise rejected


def _event_in(raw: bytes) -> CaseEvent[Any]:
    event = parse_event(raw)
    if b"\\u0000" in raw and (finding := screen(read_json(raw))) is not None:
        # A NUL would fail the store's transaction over and over (PostgreSQL
        # text cannot hold one); the router refuses it, a foreign writer may not.
        raise EventRejected(*finding)
    return event
