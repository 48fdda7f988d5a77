"""What the simulated agencies write in their events: codes and stock phrases.

No personal section and no names: the simulation is about where cases go and
when, so nothing a log or a verdict shows could ever be about a citizen.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.case import ActionTaken, CaseContext, CaseFlag
from contracts.envelope import CaseEvent
from contracts.events import (
    CaseClosure,
    CaseOpening,
    ContextUpdate,
    EscalationRequest,
    HandoffAcceptance,
    HandoffAccepted,
    HandoffRejected,
    HandoffRejection,
    HandoffRequest,
    HandoffRequested,
)
from services.demo.agencies import REJECTIONS
from services.simulation.plan import CasePlan, Story

FLAG_RULE = "Wet gemeentelijke schuldhulpverlening, art. 3"


def flag(plan: CasePlan, raised_by: str) -> CaseFlag:
    return CaseFlag(
        kind="hardship",
        raised_by=raised_by,
        escalate_at_level=plan.flag_level,
        note="Dreigende huisuitzetting",
        rule_reference=FLAG_RULE,
    )


def opening(plan: CasePlan, now: datetime) -> CaseOpening:
    """The case as its opener describes it; a hardship story may flag it at once."""
    flagged = plan.story is Story.HARDSHIP and plan.flag_at_open
    action = ActionTaken(at=now, agency=plan.opener, description="Betalingsregeling aangeboden")
    return CaseOpening(
        category=plan.category,
        summary="Meerdere schulden bij overheden",
        context=CaseContext(actions=[action], flags=[flag(plan, plan.opener)] if flagged else []),
        escalation_path=plan.path,
    )


def flag_update(plan: CasePlan, raised_by: str) -> ContextUpdate:
    return ContextUpdate(context=CaseContext(flags=[flag(plan, raised_by)]))


def handoff_request(
    handoff_id: UUID, holder: str, receiver: str, deadline: datetime
) -> HandoffRequest:
    return HandoffRequest(
        handoff_id=handoff_id,
        from_agency=holder,
        to_agency=receiver,
        reason="Overdracht voor vervolgstap in het traject",
        deadline=deadline,
    )


def answer(
    request: HandoffRequested, *, refuse: bool, rng: random.Random
) -> tuple[type[CaseEvent[Any]], HandoffAcceptance | HandoffRejection]:
    """The receiver's answer: a rejection cites a rule, as the policy signals need."""
    data = request.data
    parties = {
        "handoff_id": data.handoff_id,
        "from_agency": data.from_agency,
        "to_agency": data.to_agency,
    }
    if refuse:
        reason, rule = rng.choice(REJECTIONS)
        return HandoffRejected, HandoffRejection(**parties, reason=reason, rule_reference=rule)
    return HandoffAccepted, HandoffAcceptance(**parties)


def escalation_request() -> EscalationRequest:
    return EscalationRequest(reason="Burger dreigt tussen wal en schip te raken")


def closure() -> CaseClosure:
    return CaseClosure(outcome="Traject afgerond")
