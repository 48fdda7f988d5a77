"""Holder rights: whether an agency may do what an event says to the case, as the bus sees it.

The case moves by the handoff rules of the contract (`contracts.handoff`), so
the router refuses exactly what the tracker would refuse, before it reaches
the case log: only the holder requests a handoff or closes the case, only the
named receiver answers it, a handoff is forced only by an agency on the
escalation path. On top of that, only an agency that holds or has held the
case may ask for its escalation.
"""

from __future__ import annotations

from typing import Any

from contracts.envelope import CaseEvent
from contracts.events import (
    CaseOpened,
    EscalationRequested,
    EscalationResolved,
    HandoffRequested,
)
from contracts.handoff import Applied, Refused, decide, escalation_agencies
from contracts.registry import AgencyRegistry
from services.custody import Custody, Ledger


def admit(
    ledger: Ledger, registry: AgencyRegistry, event: CaseEvent[Any], emitter: str
) -> str | None:
    """Apply `event` from `emitter` to the ledger; the reason it is refused, or None."""
    custody = ledger.cases.get(event.subject)
    if custody is None and not isinstance(event, CaseOpened):
        return f"case {event.subject} is not known to the bus (no case-opened for it)"
    if isinstance(event, CaseOpened) and registry.category(event.data.category) is None:
        # Without a category the bus knows no escalation path and no handoff grants.
        return f"case category {event.data.category!r} is not in the registry"
    if (
        custody is not None
        and isinstance(event, EscalationRequested)
        and emitter not in custody.holders
    ):
        return (
            f"agency {emitter!r} has never held case {event.subject}; only an agency that "
            "holds or has held a case may request its escalation"
        )
    unknown = _unregistered_party(registry, event)
    if unknown is not None:
        return unknown
    before = custody.state if custody is not None else None
    # Only a resolution that forces a handoff is decided on the escalation path.
    path = (
        escalation_agencies(registry, before.category)
        if before is not None and isinstance(event, EscalationResolved)
        else frozenset()
    )
    decision = decide(before, event, emitter, path=path)
    if isinstance(decision, Refused):
        return decision.reason
    assert isinstance(decision, Applied)
    state = decision.state
    holders = custody.holders if custody is not None else []
    if state.holder not in holders:
        holders = [*holders, state.holder]
    ledger.put(Custody(state, holders))
    return None


def _unregistered_party(registry: AgencyRegistry, event: CaseEvent[Any]) -> str | None:
    """A case can only go to an agency on the bus: one that has an inbox to receive it."""
    code: str | None
    if isinstance(event, HandoffRequested):
        code, what = event.data.to_agency, "to_agency"
    elif isinstance(event, EscalationResolved) and event.data.outcome == "handoff-forced":
        code, what = event.data.handoff_to, "handoff_to"
    else:
        return None
    if code is None or registry.agency(code) is not None:
        return None
    return f"data.{what}: agency {code!r} is not in the registry"
