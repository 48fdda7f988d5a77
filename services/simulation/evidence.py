"""Replay the case log per case: what the contract says must follow from each event.

A deliberately separate reading of the rules (one holder; a handoff applies
only from the holder, and only its named receiver may answer; only the bus
expires a handoff), so that the verdict does not inherit a tracker bug.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from contracts import events
from contracts.envelope import CaseEvent
from contracts.handoff import OPERATOR, emitter_of
from contracts.registry import AgencyRegistry

_Answer = events.HandoffAccepted | events.HandoffRejected | events.HandoffExpired
"""What ends a pending handoff."""

TOLERANCE = timedelta(seconds=1)
"""How late (simulated time) the bus may act on a deadline and still be in time."""


@dataclass(frozen=True, slots=True)
class Stall:
    """A handoff request that its receiver did not answer by the deadline."""

    handoff_id: UUID
    from_agency: str
    to_agency: str
    deadline: datetime


@dataclass(slots=True)
class CaseHistory:
    """What the case log says about one case."""

    case_id: UUID
    idle_limit: dict[str, timedelta]
    deciders: dict[str, frozenset[str]]
    """Per category: the agencies with a team on its default path (may force a handoff)."""
    ping_pong_limit: int
    opened: bool = False
    category: str = ""
    holder: str | None = None
    closed_at: datetime | None = None
    """When the holder closed the case; nothing is escalated after that."""
    pending: Stall | None = None
    held_by: set[str] = field(default_factory=set)
    requested: list[Stall] = field(default_factory=list)
    answered: dict[UUID, datetime] = field(default_factory=dict)
    flags: list[tuple[datetime, int]] = field(default_factory=list)
    requests: list[datetime] = field(default_factory=list)
    rejections: list[datetime] = field(default_factory=list)
    activity: list[datetime] = field(default_factory=list)
    raises: list[events.EscalationRaised] = field(default_factory=list)
    answers: dict[UUID, list[datetime]] = field(default_factory=lambda: defaultdict(list))

    def apply(self, event: CaseEvent[Any], emitter: str | None) -> None:  # noqa: PLR0912
        """Follow one event in log order, the way the contract defines its effect."""
        if isinstance(event, events.EscalationRaised):
            return  # collected from both topics, deduplicated, in `histories`
        if isinstance(event, events.EscalationAcknowledged | events.EscalationResolved):
            self.answers[event.data.escalation_id].append(event.time)
        if emitter is None or self.closed_at is not None:
            return
        if isinstance(event, events.CaseOpened):
            if not self.opened and emitter != OPERATOR:
                self.opened, self.holder, self.category = True, emitter, event.data.category
                self.held_by.add(emitter)
                self._flags(event.time, event.data.context.flags)
        elif not self.opened:
            return
        elif isinstance(event, events.CaseContextUpdated):
            self._flags(event.time, event.data.context.flags)
        elif isinstance(event, events.HandoffRequested):
            data = event.data
            if emitter == self.holder == data.from_agency and self.pending is None:
                stall = Stall(data.handoff_id, data.from_agency, data.to_agency, data.deadline)
                self.pending = stall
                self.requested.append(stall)
        elif isinstance(
            event, events.HandoffAccepted | events.HandoffRejected | events.HandoffExpired
        ):
            self._answer(event, emitter)
        elif isinstance(event, events.EscalationRequested):
            if emitter in self.held_by:
                self.requests.append(event.time)
        elif isinstance(event, events.EscalationResolved):
            self._force(event, emitter)
        elif isinstance(event, events.CaseClosed) and emitter == self.holder:
            self.closed_at = event.time
        if not event.name.startswith("escalation-"):
            self.activity.append(event.time)
        return

    def _flags(self, time: datetime, flags: Sequence[Any]) -> None:
        self.flags.extend((time, flag.escalate_at_level) for flag in flags)

    def _answer(
        self,
        event: events.HandoffAccepted | events.HandoffRejected | events.HandoffExpired,
        emitter: str,
    ) -> None:
        data, pending = event.data, self.pending
        if pending is None or pending.handoff_id != data.handoff_id:
            return
        if isinstance(event, events.HandoffExpired):
            if emitter == OPERATOR:
                self.pending = None
            return
        if emitter != pending.to_agency or data.to_agency != pending.to_agency:
            return
        self.pending = None
        self.answered.setdefault(data.handoff_id, event.time)
        if isinstance(event, events.HandoffAccepted):
            self.holder = pending.to_agency
            self.held_by.add(pending.to_agency)
        else:
            self.rejections.append(event.time)

    def _force(self, event: events.EscalationResolved, emitter: str) -> None:
        """A forced handoff moves the case, if an agency on the category's path decided it."""
        target = event.data.handoff_to
        if event.data.outcome != "handoff-forced" or target is None or target == OPERATOR:
            return
        if emitter == OPERATOR or emitter in self.deciders.get(self.category, ()):
            self.holder, self.pending = target, None
            self.held_by.add(target)

    def open_at(self, moment: datetime) -> bool:
        """Whether the case was still open at `moment` (a closed case escalates no more)."""
        return self.closed_at is None or self.closed_at > moment

    @property
    def stalls(self) -> list[Stall]:
        """Handoffs not answered by their deadline + TOLERANCE, on a case still open then.

        An answer inside the tolerance that the case log has ahead of the bus's
        expiry ends the handoff (the bus may be that late): nothing stalled.
        """
        return [
            s
            for s in self.requested
            if (
                (answer := self.answered.get(s.handoff_id)) is None
                or answer > s.deadline + TOLERANCE
            )
            and self.open_at(s.deadline)
        ]

    def by_escalation(self) -> dict[UUID, list[events.EscalationRaised]]:
        grouped: dict[UUID, list[events.EscalationRaised]] = defaultdict(list)
        for raised in self.raises:
            grouped[raised.data.escalation_id].append(raised)
        return grouped

    def first_raises(self) -> list[events.EscalationRaised]:
        return [raises[0] for raises in self.by_escalation().values()]

    def first_raise_for(self, stall: Stall) -> events.EscalationRaised | None:
        pair = [stall.from_agency, stall.to_agency]
        return next(
            (
                r
                for r in self.first_raises()
                if r.data.trigger == "handoff-expired"
                and r.data.agency_pair in ([], pair)
                and r.time >= stall.deadline
            ),
            None,
        )

    def answered_by(self, raised: events.EscalationRaised, deadline: datetime) -> bool:
        return any(t <= deadline for t in self.answers.get(raised.data.escalation_id, []))


def histories(
    registry: AgencyRegistry,
    case_log: Sequence[CaseEvent[Any]],
    alerts: Sequence[CaseEvent[Any]],
    *,
    ping_pong_limit: int,
) -> dict[UUID, CaseHistory]:
    """Every case's history: the case log in order, raises from both topics, once each."""
    limits = {c.code: c.idle_limit for c in registry.categories}
    deciders = {
        c.code: frozenset(level.agency for level in c.escalation_path.levels)
        for c in registry.categories
    }
    cases: dict[UUID, CaseHistory] = {}

    def case(case_id: UUID) -> CaseHistory:
        if case_id not in cases:
            cases[case_id] = CaseHistory(case_id, limits, deciders, ping_pong_limit)
        return cases[case_id]

    seen: set[UUID] = set()
    for event in case_log:
        if event.id not in seen:
            seen.add(event.id)
            case(event.subject).apply(event, emitter_of(event.source, registry))
    raised: dict[UUID, events.EscalationRaised] = {}
    for event in [*case_log, *alerts]:
        if isinstance(event, events.EscalationRaised):
            raised.setdefault(event.id, event)
    for event in sorted(raised.values(), key=lambda e: e.time):
        case(event.subject).raises.append(event)
    return cases
