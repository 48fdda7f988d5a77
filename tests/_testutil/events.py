"""Build the events of a case as the agencies (and the bus operator) would send them.

One `EventFactory` serves every suite: by default its events come a minute apart
from START on (`at` sets the next one's time), each with sequence 1; `numbered`
gives each case's events the sequence numbers 1, 2, 3, ... The keyword arguments
of its methods set what a test needs exactly (a deadline, a path, flags); the
rest are fixed, recognisable values. The `make` fixture is a fresh factory on
the session's registry.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from contracts.case import ActionTaken, CaseContext, CaseFlag, EscalationPath, PersonalSection
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
TEAM_LEADS = TeamRef(agency="gm0363", team="schuldhulp-teamleiding")
"""Level 1 of the `schulden` category's default escalation path."""
REGIONAL_TEAM = TeamRef(agency="gm0363", team="regionaal-escalatieteam")
"""Level 2 of the `schulden` category's default escalation path."""


def hardship(by: str = "gm0363", level: int = 1) -> CaseFlag:
    """A hardship flag raised by `by`, to be escalated at once to `level`."""
    return CaseFlag(
        kind="hardship",
        raised_by=by,
        escalate_at_level=level,
        note="Dreigende huisuitzetting",
        rule_reference="Wgs art. 3",
    )


class EventFactory:
    """Events with increasing times, one minute apart, from registry sources."""

    def __init__(self, registry: AgencyRegistry, *, numbered: bool = False) -> None:
        self.registry = registry
        self.clock = START
        self._sequences: dict[UUID, int] | None = {} if numbered else None

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

    def _sequence(self, case_id: UUID) -> int:
        if self._sequences is None:
            return 1
        self._sequences[case_id] = self._sequences.get(case_id, 0) + 1
        return self._sequences[case_id]

    def _new(self, cls: type[CaseEvent[Any]], by: str, case_id: UUID, data: Any) -> Any:
        return cls.new(
            source=self.source(by),
            case_id=case_id,
            data=data,
            sequence=self._sequence(case_id),
            time=self.tick(),
        )

    def opened(
        self,
        case_id: UUID,
        by: str = "uwv",
        category: str = "schulden",
        *,
        flags: list[CaseFlag] | None = None,
        path: EscalationPath | None = None,
    ) -> CaseOpened:
        data = CaseOpening(
            category=category,
            summary="Schuldhulptraject",
            context=CaseContext(flags=flags or []),
            escalation_path=path,
        )
        event: CaseOpened = self._new(CaseOpened, by, case_id, data)
        return event

    def requested(
        self,
        case_id: UUID,
        handoff_id: UUID,
        frm: str = "uwv",
        to: str = "svb",
        by: str = "",
        *,
        deadline: datetime | None = None,
    ) -> HandoffRequested:
        data = HandoffRequest(
            handoff_id=handoff_id,
            from_agency=frm,
            to_agency=to,
            reason=f"Overdracht voor {PERSONAL_NAME}",
            deadline=deadline or self.clock + timedelta(days=2),
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
        self,
        case_id: UUID,
        handoff_id: UUID,
        frm: str = "uwv",
        to: str = "svb",
        by: str = "",
        *,
        rule_reference: str | None = "Awir art. 26",
    ) -> HandoffRejected:
        data = HandoffRejection(
            handoff_id=handoff_id,
            from_agency=frm,
            to_agency=to,
            reason=f"Niet onze taak, bel {PERSONAL_NAME}",
            rule_reference=rule_reference,
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
        *,
        deadline: datetime | None = None,
    ) -> HandoffExpired:
        data = HandoffExpiry(
            handoff_id=handoff_id, from_agency=frm, to_agency=to, deadline=deadline or self.clock
        )
        event: HandoffExpired = self._new(HandoffExpired, by, case_id, data)
        return event

    def context_updated(
        self, case_id: UUID, by: str = "uwv", *, context: CaseContext | None = None
    ) -> CaseContextUpdated:
        """The case's context: `context`, or one with an action, a flag and personal data."""
        context = context or CaseContext(
            actions=[ActionTaken(at=self.clock, agency=by, description="Gebeld")],
            flags=[CaseFlag(kind="hardship", raised_by=by, note=f"{PERSONAL_NAME} ziek")],
            personal=PersonalSection(bsn="123456782", name=PERSONAL_NAME),
        )
        data = ContextUpdate(context=context)
        event: CaseContextUpdated = self._new(CaseContextUpdated, by, case_id, data)
        return event

    def escalation_requested(
        self,
        case_id: UUID,
        by: str = "uwv",
        rule_reference: str | None = "Pw art. 18",
        *,
        level: int | None = 2,
    ) -> EscalationRequested:
        data = EscalationRequest(
            reason=f"Vastgelopen voor {PERSONAL_NAME}", level=level, rule_reference=rule_reference
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
        acknowledge_by: datetime | None = None,
        skipped_level: int | None = None,
    ) -> EscalationRaised:
        data = EscalationRaise(
            escalation_id=escalation_id or uuid.uuid4(),
            level=level,
            team=team,
            trigger=trigger,
            cause=f"Heen en weer voor {PERSONAL_NAME}",
            rule_reference=rule_reference,
            acknowledge_by=acknowledge_by or self.clock + timedelta(hours=8),
            skipped_level=skipped_level,
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


@pytest.fixture
def make(registry: AgencyRegistry) -> EventFactory:
    return EventFactory(registry)
