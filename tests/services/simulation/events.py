"""Case-log events at exact clock times, for checking the verdict's arithmetic by hand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.case import CaseContext, CaseFlag
from contracts.envelope import CaseEvent, source_urn
from contracts.events import (
    CaseClosed,
    CaseClosure,
    CaseOpened,
    CaseOpening,
    EscalationAcknowledged,
    EscalationAcknowledgement,
    EscalationRaise,
    EscalationRaised,
    EscalationResolution,
    EscalationResolved,
    EscalationTrigger,
    HandoffAcceptance,
    HandoffAccepted,
    HandoffExpired,
    HandoffExpiry,
    HandoffRejected,
    HandoffRejection,
    HandoffRequest,
    HandoffRequested,
    TeamRef,
)
from contracts.registry import AgencyRegistry

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
LEVEL_1 = TeamRef(agency="gm0363", team="schuldhulp-teamleiding")
LEVEL_2 = TeamRef(agency="gm0363", team="regionaal-escalatieteam")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Case:
    """One `schulden` case; every method returns its event at clock second `t`."""

    def __init__(self, registry: AgencyRegistry) -> None:
        self.registry = registry
        self.id = uuid.uuid4()
        self.handoff = uuid.uuid4()
        self.escalation = uuid.uuid4()

    def _new(self, cls: type[CaseEvent[Any]], by: str, t: float, data: Any) -> Any:
        oin = self.registry.operator.oin if by == "ketenbus" else self.registry.agency(by).oin  # type: ignore[union-attr]
        return cls.new(source=source_urn(oin, "test"), case_id=self.id, data=data, time=at(t))

    def opened(self, t: float, by: str = "uwv", flag_level: int | None = None) -> CaseOpened:
        flags = []
        if flag_level is not None:
            flags = [
                CaseFlag(kind="hardship", raised_by=by, escalate_at_level=flag_level, note="x")
            ]
        data = CaseOpening(category="schulden", summary="s", context=CaseContext(flags=flags))
        event: CaseOpened = self._new(CaseOpened, by, t, data)
        return event

    def requested(self, t: float, deadline: float, to: str = "svb") -> HandoffRequested:
        data = HandoffRequest(
            handoff_id=self.handoff,
            from_agency="uwv",
            to_agency=to,
            reason="r",
            deadline=at(deadline),
        )
        event: HandoffRequested = self._new(HandoffRequested, "uwv", t, data)
        return event

    def accepted(self, t: float, to: str = "svb") -> HandoffAccepted:
        data = HandoffAcceptance(handoff_id=self.handoff, from_agency="uwv", to_agency=to)
        event: HandoffAccepted = self._new(HandoffAccepted, to, t, data)
        return event

    def rejected(self, t: float, to: str = "svb") -> HandoffRejected:
        data = HandoffRejection(
            handoff_id=self.handoff, from_agency="uwv", to_agency=to, reason="r"
        )
        event: HandoffRejected = self._new(HandoffRejected, to, t, data)
        return event

    def expired(self, t: float, deadline: float) -> HandoffExpired:
        data = HandoffExpiry(
            handoff_id=self.handoff, from_agency="uwv", to_agency="svb", deadline=at(deadline)
        )
        event: HandoffExpired = self._new(HandoffExpired, "ketenbus", t, data)
        return event

    def raised(
        self,
        t: float,
        acknowledge_by: float,
        *,
        level: int = 1,
        trigger: EscalationTrigger = "handoff-expired",
        skipped: int | None = None,
    ) -> EscalationRaised:
        data = EscalationRaise(
            escalation_id=self.escalation,
            level=level,
            team=LEVEL_1 if level == 1 else LEVEL_2,
            trigger=trigger,
            cause="c",
            acknowledge_by=at(acknowledge_by),
            skipped_level=skipped,
            agency_pair=["uwv", "svb"] if trigger == "handoff-expired" else [],
        )
        event: EscalationRaised = self._new(EscalationRaised, "ketenbus", t, data)
        return event

    def acknowledged(self, t: float, level: int = 1) -> EscalationAcknowledged:
        team = LEVEL_1 if level == 1 else LEVEL_2
        data = EscalationAcknowledgement(escalation_id=self.escalation, level=level, team=team)
        event: EscalationAcknowledged = self._new(EscalationAcknowledged, "gm0363", t, data)
        return event

    def forced(self, t: float, to: str = "svb", by: str = "gm0363") -> EscalationResolved:
        data = EscalationResolution(
            escalation_id=self.escalation, team=LEVEL_2, outcome="handoff-forced", handoff_to=to
        )
        event: EscalationResolved = self._new(EscalationResolved, by, t, data)
        return event

    def closed(self, t: float, by: str = "uwv") -> CaseClosed:
        event: CaseClosed = self._new(CaseClosed, by, t, CaseClosure(outcome="o"))
        return event
