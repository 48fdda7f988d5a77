"""The handoff rules of the protocol: what an event does to a case, or why the bus refuses it.

Pure functions, no I/O: the router, the tracker and the escalation service
decide with them, and an agency system can call `decide` with what it knows of
a case to learn, before it sends, whether the bus would refuse the event.
Whether the emitter may send the event type at all is the registry's (the
agency's `emits`); these rules are about the case: one holder at a time, a
handoff stays pending until its receiver answers or it expires ("warm
handover"), and a closed case stays closed.

Escalation events change the case in one way only: an escalation resolved
with outcome `handoff-forced` gives the case to `handoff_to`. That overrides
the warm handover on purpose (the escalation exists because the handover
stalled), so only those with the power to decide may do it: an agency with a
team on the case's escalation path, or the bus operator.

Who did it (`actor_of`): the agency behind the event's source, except for an
acknowledgement or resolution from the console (`console_source`, the bus
operator's `ketenbus-console` system): a team member acts there for its team,
so it is the act of `data.team.agency`, held to that agency's rules.

A `delivery-failed` is a notice to an agency, not part of a case, with one
exception: the gateway's (`gateway_source`, the bus operator's
`ketenbus-gateway` system) on the case log, when an agency's webhook never took
a handoff request. The bus's notice is recorded there as its other events
are, changing nothing but the last-event time; any agency's is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal
from uuid import UUID

from contracts.envelope import CaseEvent, oin_of_source, source_urn
from contracts.events import (
    CaseClosed,
    CaseOpened,
    DeliveryFailed,
    EscalationAcknowledged,
    EscalationResolved,
    HandoffAccepted,
    HandoffExpired,
    HandoffRejected,
    HandoffRequested,
    ZgwNotificatie,
)
from contracts.registry import AgencyRegistry

OPERATOR = "ketenbus"
"""The name the bus operator emits under (its OIN is `registry.operator.oin`)."""

CONSOLE_SYSTEM = "ketenbus-console"
"""The console's system name: its team actions come from the operator's OIN under it."""

GATEWAY_SYSTEM = "ketenbus-gateway"
"""The gateway's system name: the notices it sends come from the operator's OIN under it."""


@dataclass(frozen=True, slots=True)
class PendingHandoff:
    """A handoff the holder asked for that the receiver has not answered yet."""

    handoff_id: UUID
    from_agency: str
    to_agency: str
    deadline: datetime


@dataclass(frozen=True, slots=True)
class CaseState:
    """What the tracker knows about a case between two events."""

    case_id: UUID
    category: str
    holder: str
    status: Literal["open", "closed"]
    opened_at: datetime
    last_event_at: datetime
    pending: PendingHandoff | None = None
    bounce_count: int = 0


@dataclass(frozen=True, slots=True)
class Applied:
    """The event is applied; `state` is the case afterwards."""

    state: CaseState


@dataclass(frozen=True, slots=True)
class Refused:
    """The event is recorded on the timeline but changes nothing; `reason` says why."""

    reason: str


Decision = Applied | Refused


class _Keep(Enum):
    PENDING = "pending"


def _next(
    case: CaseState,
    at: datetime,
    *,
    holder: str | None = None,
    status: Literal["open", "closed"] | None = None,
    pending: PendingHandoff | Literal[_Keep.PENDING] | None = _Keep.PENDING,
    bounce_count: int | None = None,
) -> CaseState:
    """`case` after an event applied at `at`, with the fields given changed.

    `dataclasses.replace` does the same, at twice the cost: it looks up the
    fields by name on every call, and the tracker makes one state per event.
    """
    return CaseState(
        case.case_id,
        case.category,
        case.holder if holder is None else holder,
        case.status if status is None else status,
        case.opened_at,
        at,
        case.pending if pending is _Keep.PENDING else pending,
        case.bounce_count if bounce_count is None else bounce_count,
    )


def emitter_of(source: str, registry: AgencyRegistry) -> str | None:
    """The agency code behind an event's `source` (OPERATOR for the bus), None if unknown."""
    try:
        oin = oin_of_source(source)
    except ValueError:
        return None
    if oin == registry.operator.oin:
        return OPERATOR
    agency = registry.agency_by_oin(oin)
    return agency.code if agency is not None else None


def console_source(registry: AgencyRegistry) -> str:
    """The `source` of a team's acknowledgement or resolution sent from the console."""
    return source_urn(registry.operator.oin, CONSOLE_SYSTEM)


def gateway_source(registry: AgencyRegistry) -> str:
    """The `source` of the gateway's notices (a webhook delivery it gave up)."""
    return source_urn(registry.operator.oin, GATEWAY_SYSTEM)


def actor_of(event: CaseEvent[Any], registry: AgencyRegistry) -> str | None:
    """Whose act `event` is: its emitter (`emitter_of`), except a team's acknowledgement
    or resolution from the console, which is the act of the team's agency (None if that
    agency is not in the registry). Nothing else from the console speaks for an agency."""
    if isinstance(event, EscalationAcknowledged | EscalationResolved) and (
        event.source == console_source(registry)
    ):
        agency = registry.agency(event.data.team.agency)
        return agency.code if agency is not None else None
    return emitter_of(event.source, registry)


def escalation_agencies(registry: AgencyRegistry, category: str) -> frozenset[str]:
    """The agencies with a team on the registry's escalation path for `category`.

    The tracker does not keep a path a case brings along in its context, so the
    category's default path is what it checks a forced handoff against.
    """
    found = registry.category(category)
    if found is None:
        return frozenset()
    return frozenset(level.agency for level in found.escalation_path.levels)


def decide(  # noqa: PLR0911 - one return per rule reads better than a dispatch table
    case: CaseState | None,
    event: CaseEvent[Any],
    emitter: str | None,
    *,
    path: frozenset[str] = frozenset(),
) -> Decision:
    """Apply `event`, emitted by `emitter` (None: a source not in the registry), to `case`.

    `path`: the agencies on the case's escalation path (`escalation_agencies`),
    needed only to decide an `escalation-resolved` that forces a handoff.
    """
    if emitter is None:
        return Refused(f"source OIN {oin_of_source(event.source)} is not in the agency registry")
    if isinstance(event, DeliveryFailed) and emitter != OPERATOR:
        return Refused("delivery-failed is a notice to an agency, not part of a case")
    if isinstance(event, ZgwNotificatie):
        return Refused("zgw-notificatie relays a ZGW message; it is not part of a case")
    if isinstance(event, CaseOpened):
        return _open(case, event, emitter)
    if case is None:
        return Refused("unknown case")
    if case.status == "closed":
        return Refused("the case is closed")
    at = max(case.last_event_at, event.time)
    if isinstance(event, HandoffRequested):
        return _request(case, at, event, emitter)
    if isinstance(event, _ANSWERS):
        return _answer(case, at, event, emitter)
    if isinstance(event, HandoffExpired):
        return _expire(case, at, event, emitter)
    if isinstance(event, CaseClosed):
        if emitter != case.holder:
            return Refused(f"only the holder ({case.holder}) may close the case, not {emitter}")
        return Applied(_next(case, at, status="closed", pending=None))
    if isinstance(event, EscalationResolved):
        return _resolve(case, at, event, emitter, path)
    # Context updates, escalation events and the bus's notices are recorded; the
    # escalation columns on the timeline carry what they say.
    return Applied(_next(case, at))


_ANSWERS = (HandoffAccepted, HandoffRejected)


def _open(case: CaseState | None, event: CaseOpened, emitter: str) -> Decision:
    if case is not None:
        return Refused(f"the case already exists (status {case.status}, holder {case.holder})")
    if emitter == OPERATOR:
        return Refused("the bus operator cannot hold a case")
    return Applied(
        CaseState(
            case_id=event.subject,
            category=event.data.category,
            holder=emitter,
            status="open",
            opened_at=event.time,
            last_event_at=event.time,
        )
    )


def _request(case: CaseState, at: datetime, event: HandoffRequested, emitter: str) -> Decision:
    data = event.data
    if emitter != case.holder:
        return Refused(f"only the holder ({case.holder}) may request a handoff, not {emitter}")
    if data.from_agency != case.holder:
        return Refused(f"from_agency {data.from_agency} is not the holder ({case.holder})")
    if case.pending is not None:
        return Refused(
            f"handoff {case.pending.handoff_id} to {case.pending.to_agency} is still pending"
        )
    pending = PendingHandoff(data.handoff_id, data.from_agency, data.to_agency, data.deadline)
    return Applied(_next(case, at, pending=pending))


def _matching_pending(
    case: CaseState, handoff_id: UUID, from_agency: str, to_agency: str
) -> PendingHandoff | Refused:
    pending = case.pending
    if pending is None:
        return Refused("no handoff is pending")
    if pending.handoff_id != handoff_id:
        return Refused(f"handoff {handoff_id} is not pending (pending: {pending.handoff_id})")
    if (pending.from_agency, pending.to_agency) != (from_agency, to_agency):
        return Refused(
            f"handoff {handoff_id} is from {pending.from_agency} to {pending.to_agency}, "
            f"not from {from_agency} to {to_agency}"
        )
    return pending


def _answer(
    case: CaseState, at: datetime, event: HandoffAccepted | HandoffRejected, emitter: str
) -> Decision:
    data = event.data
    verb = "accept" if isinstance(event, HandoffAccepted) else "reject"
    pending = _matching_pending(case, data.handoff_id, data.from_agency, data.to_agency)
    if isinstance(pending, Refused):
        return pending
    if emitter != pending.to_agency:
        return Refused(
            f"only {pending.to_agency} may {verb} handoff {pending.handoff_id}, not {emitter}"
        )
    if isinstance(event, HandoffAccepted):
        return Applied(_next(case, at, holder=pending.to_agency, pending=None))
    return Applied(_next(case, at, pending=None, bounce_count=case.bounce_count + 1))


def _expire(case: CaseState, at: datetime, event: HandoffExpired, emitter: str) -> Decision:
    if emitter != OPERATOR:
        return Refused(f"only the bus operator ({OPERATOR}) may expire a handoff, not {emitter}")
    data = event.data
    pending = _matching_pending(case, data.handoff_id, data.from_agency, data.to_agency)
    if isinstance(pending, Refused):
        return pending
    return Applied(_next(case, at, pending=None))


def _resolve(
    case: CaseState, at: datetime, event: EscalationResolved, emitter: str, path: frozenset[str]
) -> Decision:
    data = event.data
    if data.outcome != "handoff-forced" or data.handoff_to is None:
        return Applied(_next(case, at))
    if emitter != OPERATOR and emitter not in path:
        allowed = ", ".join(sorted(path)) or "none for this category"
        return Refused(
            f"only an agency on the escalation path ({allowed}) or the bus operator "
            f"may force a handoff, not {emitter}"
        )
    if data.handoff_to == OPERATOR:
        return Refused("the bus operator cannot hold a case")
    return Applied(_next(case, at, holder=data.handoff_to, pending=None))
