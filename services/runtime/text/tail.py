"""What `ketenbus tail` prints for one record: pure, so it is tested without a broker.

A line names the record (time, partition:offset), the event's type, case and
sending agency, and a short summary built only from closed fields (agency and
team codes, levels, triggers, outcomes). It never shows the context, its
`personal` section (sealed or not), or any free text (reasons, notes, causes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts import events
from contracts.envelope import CaseEvent, oin_of_source
from contracts.parse import EventRejected, parse_event
from contracts.registry import AgencyRegistry
from services.runtime.text.terminal import clean

OPERATOR = "ketenbus"
"""How the bus operator's own OIN is shown as a source."""

_HANDOFFS = (
    events.HandoffRequested,
    events.HandoffAccepted,
    events.HandoffRejected,
    events.HandoffExpired,
)


@dataclass(frozen=True)
class TailLine:
    """One record as `tail` shows it; `event_type` is None when it is not an event."""

    time: datetime
    partition: int
    offset: int
    size: int
    event_type: str | None = None
    case_id: str | None = None
    source: str | None = None
    summary: str = ""


def describe(
    registry: AgencyRegistry,
    *,
    partition: int,
    offset: int,
    timestamp_ms: int,
    value: bytes | None,
) -> TailLine:
    """The line for one record: its event's type, case, sender and summary, if it is one."""
    raw = value or b""
    time = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    try:
        event = parse_event(raw)
    except EventRejected:
        return TailLine(time, partition, offset, len(raw))
    return TailLine(
        time,
        partition,
        offset,
        len(raw),
        event_type=event.name,
        case_id=str(event.subject),
        source=source_name(registry, event.source),
        summary=summary(event),
    )


def source_name(registry: AgencyRegistry, source: str) -> str:
    """The agency code for a source URN's OIN; `ketenbus` for the operator, else `oin:<OIN>`."""
    oin = oin_of_source(source)
    if oin == registry.operator.oin:
        return OPERATOR
    agency = registry.agency_by_oin(oin)
    return agency.code if agency is not None else f"oin:{oin}"


def summary(event: CaseEvent[Any]) -> str:
    """Handoffs: `from -> to`; escalations: level, team, trigger or outcome; else nothing."""
    if isinstance(event, _HANDOFFS):
        return f"{event.data.from_agency} -> {event.data.to_agency}"
    if isinstance(event, events.EscalationRaised):
        team = event.data.team
        return (
            f"level {event.data.level} team {team.agency}/{team.team} trigger {event.data.trigger}"
        )
    if isinstance(event, events.EscalationAcknowledged):
        team = event.data.team
        return f"level {event.data.level} team {team.agency}/{team.team}"
    if isinstance(event, events.EscalationResolved):
        team = event.data.team
        return f"team {team.agency}/{team.team} outcome {event.data.outcome}"
    if isinstance(event, events.EscalationRequested) and event.data.level is not None:
        return f"level {event.data.level}"
    return ""


def keep(line: TailLine, *, case_id: str | None, event_type: str | None) -> bool:
    """Whether `line` passes the --case and --type filters (a non-event passes none)."""
    if case_id is not None and line.case_id != case_id:
        return False
    return event_type is None or line.event_type == event_type


def render(line: TailLine) -> str:
    """One line of text: time, partition:offset, type, case, source, summary."""
    head = f"{line.time.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}Z  {line.partition}:{line.offset}"
    if line.event_type is None:
        return f"{head}  (not an event: {line.size} bytes)"
    parts = [head, line.event_type, line.case_id or "", line.source or "", line.summary]
    return clean("  ".join(part for part in parts if part))


def as_json(line: TailLine) -> dict[str, Any]:
    """The line as one JSON object; `type` is null (and `bytes` says how many) for a non-event."""
    return {
        "time": line.time.isoformat().replace("+00:00", "Z"),
        "partition": line.partition,
        "offset": line.offset,
        "type": line.event_type,
        "case_id": line.case_id,
        "source": line.source,
        "summary": line.summary or None,
        "bytes": line.size,
    }
