"""What the escalation service keeps: its view of a case, an escalation, a timer.

Every id the service mints is derived (uuid5) from what caused it: a timer's
id from its kind, subject and due time; an event's id from the timer or the
case-log event it answers. Whichever instance does the work, and however
often a crash makes it redo it, the same work yields the same ids, so the
unique keys in the store and the consumers' dedupe on event ids make a redo
harmless.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from uuid import UUID

from contracts.case import EscalationPath
from contracts.envelope import CaseEvent, event_type, schema_uri
from contracts.events import TeamRef
from contracts.handoff import CaseState
from contracts.registry import AgencyRegistry

TimerKind = Literal["handoff-deadline", "idle", "acknowledge", "top-repeat"]
Trigger = Literal["handoff-expired", "idle", "ping-pong", "hardship", "manual"]
Status = Literal["raised", "acknowledged", "resolved", "withdrawn"]

ESCALATION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:nld:ketenbus:escalation")
SYSTEM = "ketenbus-escalation"
"""The system name in the `source` of every event the service emits."""


def derived_id(base: UUID, name: str) -> UUID:
    """The id of the `name` thing that `base` (a timer or an event) gives rise to."""
    return uuid.uuid5(base, name)


@dataclass(slots=True)
class CaseFile:
    """The service's view of one case: the tracker's state plus what escalation needs."""

    state: CaseState
    holders: list[str]
    """Every agency that has held the case, first holder first."""
    correlation_id: UUID
    path: EscalationPath | None = None
    """The case's own escalation path; None: the category's default."""
    rejections_escalated: int = 0
    """The rejection count when ping-pong was last escalated."""
    sequence: int = 0
    """The last `sequence` this service used on the case."""

    @property
    def case_id(self) -> UUID:
        return self.state.case_id

    def effective_path(self, registry: AgencyRegistry) -> EscalationPath | None:
        if self.path is not None:
            return self.path
        category = registry.category(self.state.category)
        return category.escalation_path if category is not None else None

    def idle_limit(self, registry: AgencyRegistry) -> timedelta | None:
        category = registry.category(self.state.category)
        return category.idle_limit if category is not None else None


@dataclass(slots=True)
class Escalation:
    escalation_id: UUID
    case_id: UUID
    trigger: Trigger
    cause: str
    rule_reference: str | None
    agency_pair: tuple[str, ...]
    flag_kind: str | None
    level: int
    team: TeamRef
    status: Status
    raised_at: datetime
    alerted_at: datetime
    acknowledge_by: datetime
    raises: int
    last_raised_id: UUID
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    outcome: str | None = None

    @property
    def open(self) -> bool:
        return self.status in ("raised", "acknowledged")


@dataclass(frozen=True, slots=True)
class Timer:
    """A durable deadline: at `due_at` (clock time), do what `kind` says about `ref`."""

    id: UUID
    case_id: UUID
    kind: TimerKind
    ref: UUID
    due_at: datetime
    causation_id: UUID | None = None

    @classmethod
    def new(
        cls,
        kind: TimerKind,
        case_id: UUID,
        ref: UUID,
        due_at: datetime,
        causation_id: UUID | None = None,
    ) -> Timer:
        due = due_at.astimezone(UTC)
        timer_id = uuid.uuid5(ESCALATION_NAMESPACE, f"{kind}:{ref}:{due.isoformat()}")
        return cls(timer_id, case_id, kind, ref, due, causation_id)


E = TypeVar("E", bound=CaseEvent[Any])


def bus_event(
    cls: type[E],
    event_id: UUID,
    *,
    source: str,
    file: CaseFile,
    data: Any,
    time: datetime,
    causation_id: UUID | None,
) -> E:
    """An event the service emits on `file`'s case, with a given (derived) id."""
    return cls(
        specversion="1.0",
        id=event_id,
        source=source,
        type=event_type(cls.name),
        subject=file.case_id,
        time=time,
        dataschema=schema_uri(cls.name),
        correlationid=file.correlation_id,
        causationid=causation_id,
        sequence=file.sequence + 1,
        data=data,
    )
