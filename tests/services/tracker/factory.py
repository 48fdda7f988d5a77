"""Build the events of a case as the agencies (and the bus operator) would send them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from contracts.case import ActionTaken, CaseContext, CaseFlag, PersonalSection
from contracts.envelope import CaseEvent, source_urn
from contracts.events import (
    CaseClosed,
    CaseClosure,
    CaseContextUpdated,
    CaseOpened,
    CaseOpening,
    ContextUpdate,
    EscalationAcknowledged,
    EscalationAcknowledgement,
    EscalationOutcome,
    EscalationRaise,
    EscalationRaised,
    EscalationRequest,
    EscalationRequested,
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

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
UNKNOWN_OIN = "00000099000000009999"
PERSONAL_NAME = "Jan Jansen"
"""A name that must never reach the store's summaries."""
REGIONAL_TEAM = TeamRef(agency="gm0363", team="regionaal-escalatieteam")
"""Level 2 of the `schulden` category's default escalation path."""


class EventFactory:
    """Events with increasing times, one minute apart, from registry sources."""

    def __init__(self, registry: AgencyRegistry) -> None:
        self.registry = registry
        self.clock = START

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def at(self, moment: datetime) -> EventFactory:
        """The next event happens at `moment` (then a minute apart again)."""
        self.clock = moment - timedelta(minutes=1)
        return self

    def source(self, agency: str) -> str:
        if agency == "ketenbus":
            return source_urn(self.registry.operator.oin, "escalatie")
        if agency == "unknown":
            return source_urn(UNKNOWN_OIN, "onbekend")
        found = self.registry.agency(agency)
        assert found is not None, agency
        return source_urn(found.oin, "zaaksysteem")

    def _new(self, cls: type[CaseEvent[Any]], by: str, case_id: UUID, data: Any) -> Any:
        return cls.new(source=self.source(by), case_id=case_id, data=data, time=self.tick())

    def opened(self, case_id: UUID, by: str = "uwv", category: str = "schulden") -> CaseOpened:
        data = CaseOpening(category=category, summary="Schuldhulptraject")
        event: CaseOpened = self._new(CaseOpened, by, case_id, data)
        return event

    def requested(
        self, case_id: UUID, handoff_id: UUID, frm: str = "uwv", to: str = "svb", by: str = ""
    ) -> HandoffRequested:
        data = HandoffRequest(
            handoff_id=handoff_id,
            from_agency=frm,
            to_agency=to,
            reason=f"Overdracht voor {PERSONAL_NAME}",
            deadline=self.clock + timedelta(days=2),
        )
        event: HandoffRequested = self._new(HandoffRequested, by or frm, case_id, data)
        return event

    def accepted(
        self, case_id: UUID, handoff_id: UUID, frm: str = "uwv", to: str = "svb", by: str = ""
    ) -> HandoffAccepted:
        data = HandoffAcceptance(handoff_id=handoff_id, from_agency=frm, to_agency=to)
        event: HandoffAccepted = self._new(HandoffAccepted, by or to, case_id, data)
        return event

    def rejected(
        self, case_id: UUID, handoff_id: UUID, frm: str = "uwv", to: str = "svb", by: str = ""
    ) -> HandoffRejected:
        data = HandoffRejection(
            handoff_id=handoff_id,
            from_agency=frm,
            to_agency=to,
            reason=f"Niet onze taak, bel {PERSONAL_NAME}",
            rule_reference="Awir art. 26",
        )
        event: HandoffRejected = self._new(HandoffRejected, by or to, case_id, data)
        return event

    def expired(
        self,
        case_id: UUID,
        handoff_id: UUID,
        frm: str = "uwv",
        to: str = "svb",
        by: str = "ketenbus",
    ) -> HandoffExpired:
        data = HandoffExpiry(
            handoff_id=handoff_id, from_agency=frm, to_agency=to, deadline=self.clock
        )
        event: HandoffExpired = self._new(HandoffExpired, by, case_id, data)
        return event

    def context_updated(self, case_id: UUID, by: str = "uwv") -> CaseContextUpdated:
        context = CaseContext(
            actions=[ActionTaken(at=self.clock, agency=by, description="Gebeld")],
            flags=[CaseFlag(kind="hardship", raised_by=by, note=f"{PERSONAL_NAME} ziek")],
            personal=PersonalSection(bsn="123456782", name=PERSONAL_NAME),
        )
        data = ContextUpdate(context=context)
        event: CaseContextUpdated = self._new(CaseContextUpdated, by, case_id, data)
        return event

    def escalation_requested(
        self, case_id: UUID, by: str = "uwv", rule_reference: str | None = "Pw art. 18"
    ) -> EscalationRequested:
        data = EscalationRequest(
            reason=f"Vastgelopen voor {PERSONAL_NAME}", level=2, rule_reference=rule_reference
        )
        event: EscalationRequested = self._new(EscalationRequested, by, case_id, data)
        return event

    def escalation_raised(
        self,
        case_id: UUID,
        escalation_id: UUID | None = None,
        level: int = 2,
        *,
        trigger: EscalationTrigger = "ping-pong",
        rule_reference: str | None = None,
        agency_pair: tuple[str, str] | None = None,
        team: TeamRef = REGIONAL_TEAM,
        flag: CaseFlag | None = None,
    ) -> EscalationRaised:
        data = EscalationRaise(
            escalation_id=escalation_id or uuid.uuid4(),
            level=level,
            team=team,
            trigger=trigger,
            cause=f"Heen en weer voor {PERSONAL_NAME}",
            rule_reference=rule_reference,
            acknowledge_by=self.clock + timedelta(hours=8),
            agency_pair=list(agency_pair or ()),
            flag=flag,
        )
        event: EscalationRaised = self._new(EscalationRaised, "ketenbus", case_id, data)
        return event

    def escalation_acknowledged(
        self,
        case_id: UUID,
        escalation_id: UUID,
        level: int = 2,
        team: TeamRef = REGIONAL_TEAM,
        by: str = "",
    ) -> EscalationAcknowledged:
        data = EscalationAcknowledgement(escalation_id=escalation_id, level=level, team=team)
        emitter = by or team.agency
        event: EscalationAcknowledged = self._new(EscalationAcknowledged, emitter, case_id, data)
        return event

    def escalation_resolved(
        self,
        case_id: UUID,
        escalation_id: UUID,
        outcome: EscalationOutcome = "maatwerk-granted",
        *,
        handoff_to: str | None = None,
        by: str = "gm0363",
        team: TeamRef = REGIONAL_TEAM,
    ) -> EscalationResolved:
        data = EscalationResolution(
            escalation_id=escalation_id,
            team=team,
            outcome=outcome,
            note=f"Maatwerk voor {PERSONAL_NAME}",
            handoff_to=handoff_to,
        )
        event: EscalationResolved = self._new(EscalationResolved, by, case_id, data)
        return event

    def closed(self, case_id: UUID, by: str = "uwv") -> CaseClosed:
        data = CaseClosure(outcome=f"Opgelost met {PERSONAL_NAME}")
        event: CaseClosed = self._new(CaseClosed, by, case_id, data)
        return event
