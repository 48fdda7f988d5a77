"""A case's escalations, as its timeline tells them: trigger, level, team, status, outcome.

Derived from the timeline rather than kept in a table of its own: the tracker
records every escalation event anyway, and one case has few of them, so
folding its rows on read is cheap and can never disagree with the timeline.
Only applied rows count: a refused resolution resolved nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from services.casefile.timeline import team_of_raise

EscalationStatus = Literal["raised", "acknowledged", "resolved"]


class EscalationView(BaseModel):
    """One escalation of a case: where it stands now and how it started."""

    model_config = ConfigDict(frozen=True)
    escalation_id: UUID
    trigger: str | None
    """What raised it first: handoff-expired, idle, ping-pong, hardship, manual."""
    level: int
    """The level of its latest raise: who is alerted now."""
    highest_level: int
    team: str | None
    """`agency/team` alerted by its latest raise."""
    status: EscalationStatus
    outcome: str | None
    rule_reference: str | None
    agency_pair: str | None
    raised_at: datetime
    resolved_at: datetime | None


class _Row(Protocol):
    """What folding needs of a timeline entry (`queries.TimelineEntry` has it)."""

    @property
    def type(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def applied(self) -> bool: ...
    @property
    def summary(self) -> str: ...
    @property
    def escalation_id(self) -> UUID | None: ...
    @property
    def escalation_level(self) -> int | None: ...
    @property
    def escalation_trigger(self) -> str | None: ...
    @property
    def escalation_outcome(self) -> str | None: ...
    @property
    def rule_reference(self) -> str | None: ...
    @property
    def agency_pair(self) -> str | None: ...


@dataclass(slots=True)
class _Fold:
    first: _Row
    latest: _Row
    highest: int
    status: EscalationStatus = "raised"
    resolution: _Row | None = None

    def view(self, escalation_id: UUID) -> EscalationView:
        first, resolution = self.first, self.resolution
        return EscalationView(
            escalation_id=escalation_id,
            trigger=first.escalation_trigger,
            level=self.latest.escalation_level or self.highest,
            highest_level=self.highest,
            team=team_of_raise(self.latest.summary),
            status=self.status,
            outcome=resolution.escalation_outcome if resolution else None,
            rule_reference=first.rule_reference,
            agency_pair=first.agency_pair,
            raised_at=first.time,
            resolved_at=resolution.time if resolution else None,
        )


def escalations_of(timeline: Iterable[_Row]) -> list[EscalationView]:
    """The escalations raised on a timeline (oldest first), folded from its applied rows.

    Acknowledgements and resolutions of an escalation whose raise the tracker
    never applied are left out: there is no trigger or level to show for them.
    """
    folds: dict[UUID, _Fold] = {}
    for row in timeline:
        key = row.escalation_id
        if not row.applied or key is None:
            continue
        fold = folds.get(key)
        if row.type == "escalation-raised":
            level = row.escalation_level or 0
            if fold is None:
                folds[key] = _Fold(first=row, latest=row, highest=level)
                continue
            fold.latest, fold.highest = row, max(fold.highest, level)
            if fold.status != "resolved":
                fold.status = "raised"
        elif fold is None or fold.status == "resolved":
            continue
        elif row.type == "escalation-acknowledged":
            fold.status = "acknowledged"
        elif row.type == "escalation-resolved":
            fold.status, fold.resolution = "resolved", row
    return [fold.view(key) for key, fold in folds.items()]
