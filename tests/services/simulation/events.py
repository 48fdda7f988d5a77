"""Case-log events at exact clock times, for checking the verdict's arithmetic by hand.

The events are the shared `EventFactory`'s; only their times (clock seconds after
START) and the facts the verdict judges are set here.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from contracts.events import (
    CaseClosed,
    CaseOpened,
    EscalationAcknowledged,
    EscalationRaised,
    EscalationResolved,
    EscalationTrigger,
    HandoffAccepted,
    HandoffExpired,
    HandoffRejected,
    HandoffRequested,
)
from contracts.registry import AgencyRegistry
from tests._testutil import REGIONAL_TEAM, START, TEAM_LEADS, EventFactory, hardship


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


class Case:
    """One `schulden` case; every method returns its event at clock second `t`."""

    def __init__(self, registry: AgencyRegistry) -> None:
        self.registry = registry
        self.make = EventFactory(registry)
        self.id = uuid.uuid4()
        self.handoff = uuid.uuid4()
        self.escalation = uuid.uuid4()

    def _at(self, t: float) -> EventFactory:
        return self.make.at(at(t))

    def opened(self, t: float, by: str = "uwv", flag_level: int | None = None) -> CaseOpened:
        flags = [] if flag_level is None else [hardship(by, flag_level)]
        return self._at(t).opened(self.id, by, flags=flags)

    def requested(self, t: float, deadline: float, to: str = "svb") -> HandoffRequested:
        return self._at(t).requested(self.id, self.handoff, to=to, deadline=at(deadline))

    def accepted(self, t: float, to: str = "svb") -> HandoffAccepted:
        return self._at(t).accepted(self.id, self.handoff, to=to)

    def rejected(self, t: float, to: str = "svb") -> HandoffRejected:
        return self._at(t).rejected(self.id, self.handoff, to=to, rule_reference=None)

    def expired(self, t: float, deadline: float) -> HandoffExpired:
        return self._at(t).expired(self.id, self.handoff, deadline=at(deadline))

    def raised(
        self,
        t: float,
        acknowledge_by: float,
        *,
        level: int = 1,
        trigger: EscalationTrigger = "handoff-expired",
        skipped: int | None = None,
    ) -> EscalationRaised:
        return self._at(t).escalation_raised(
            self.id,
            self.escalation,
            level,
            trigger=trigger,
            team=TEAM_LEADS if level == 1 else REGIONAL_TEAM,
            acknowledge_by=at(acknowledge_by),
            skipped_level=skipped,
            agency_pair=("uwv", "svb") if trigger == "handoff-expired" else None,
        )

    def acknowledged(self, t: float, level: int = 1) -> EscalationAcknowledged:
        team = TEAM_LEADS if level == 1 else REGIONAL_TEAM
        return self._at(t).escalation_acknowledged(self.id, self.escalation, level, team)

    def forced(self, t: float, to: str = "svb", by: str = "gm0363") -> EscalationResolved:
        return self._at(t).escalation_resolved(
            self.id, self.escalation, "handoff-forced", handoff_to=to, by=by, team=REGIONAL_TEAM
        )

    def closed(self, t: float, by: str = "uwv") -> CaseClosed:
        return self._at(t).closed(self.id, by)
