"""What the timeline says about an event: a summary and the ids worth indexing.

The summary is built from codes, ids, counts and dates only. Free text in an
event (reasons, notes, outcomes) is written by case workers and may name the
citizen, so it stays in the event and never reaches the store or the logs.
The one exception is the law or rule reference an agency cites (`Awir art.
26`): a citation, not personal data, and the policy signals are counted by it.
Together with the agency pair (`from>to`) it lets `ketenbus signals` group
escalations in SQL instead of re-reading events.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple
from uuid import UUID

from contracts import events
from contracts.envelope import CaseEvent

SUMMARY_MAX = 300
"""The width of the timeline's summary column."""


class TimelineFacts(NamedTuple):
    """The summary and index columns of one timeline row (a tuple: one is made per event)."""

    summary: str
    handoff_id: UUID | None = None
    escalation_id: UUID | None = None
    escalation_level: int | None = None
    escalation_trigger: str | None = None
    escalation_outcome: str | None = None
    rule_reference: str | None = None
    agency_pair: str | None = None
    """`from>to`: the two agencies a handoff runs between, or an escalated case is stuck between."""


_RAISED_TEAM = re.compile(r"^escalation raised: level \d+, [a-z-]+, team ([a-z0-9-]+/[a-z0-9-]+),")
"""Reads back the alerted team from a summary `_escalation_facts` wrote (no column holds it)."""


def team_of_raise(summary: str) -> str | None:
    """The `agency/team` alerted by an escalation-raised row, from its summary."""
    found = _RAISED_TEAM.match(summary)
    return found.group(1) if found else None


def pair(from_agency: str, to_agency: str) -> str:
    """The agency pair as the timeline stores it: `uwv>svb`."""
    return f"{from_agency}>{to_agency}"


def _when(moment: datetime) -> str:
    # `2026-12-07 13:05Z`; isoformat costs a third of strftime, and most
    # moments are in UTC already.
    offset = moment.utcoffset()
    if offset is None or offset:
        moment = moment.astimezone(UTC)
    return moment.isoformat(" ", "minutes")[:16] + "Z"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _context_summary(event: events.CaseContextUpdated) -> str:
    context = event.data.context
    parts = [
        _plural(len(items), noun)
        for items, noun in (
            (context.actions, "action"),
            (context.promises, "promise"),
            (context.deadlines, "deadline"),
        )
        if items
    ]
    kinds = Counter(flag.kind for flag in context.flags)
    parts += [_plural(count, f"{kind} flag") for kind, count in sorted(kinds.items())]
    if event.data.escalation_path is not None:
        parts.append("escalation path")
    return "context updated: " + ", ".join(parts) if parts else "context updated"


def facts_of(event: CaseEvent[Any]) -> TimelineFacts:
    """The summary and index columns of an event's timeline row."""
    facts = _facts_for(type(event))(event)
    if len(facts.summary) > SUMMARY_MAX:
        return facts._replace(summary=facts.summary[: SUMMARY_MAX - 3] + "...")
    return facts


def _opened(event: events.CaseOpened) -> TimelineFacts:
    return TimelineFacts(f"opened in category {event.data.category}")


def _context(event: events.CaseContextUpdated) -> TimelineFacts:
    return TimelineFacts(_context_summary(event))


def _escalation_requested(event: events.EscalationRequested) -> TimelineFacts:
    level = f" at level {event.data.level}" if event.data.level else ""
    rule = f" ({event.data.rule_reference})" if event.data.rule_reference else ""
    return TimelineFacts(
        f"escalation requested{level}{rule}",
        escalation_level=event.data.level,
        escalation_trigger="manual",
        rule_reference=event.data.rule_reference,
    )


def _closed(_: events.CaseClosed) -> TimelineFacts:
    return TimelineFacts("closed")


def _delivery_failed(event: events.DeliveryFailed) -> TimelineFacts:
    return TimelineFacts(f"delivery failed: {event.data.reason_code}")


def _named(event: CaseEvent[Any]) -> TimelineFacts:
    return TimelineFacts(event.name)


_Facts = Callable[[Any], TimelineFacts]


@cache
def _facts_for(kind: type[CaseEvent[Any]]) -> _Facts:
    # Looked up by the event's class, once per class: the tracker asks for
    # every event, and a chain of isinstance checks cost more than the facts.
    for cls in kind.__mro__:
        if (found := _FACTS.get(cls)) is not None:
            return found
    return _named


def _handoff_facts(
    event: events.HandoffRequested
    | events.HandoffAccepted
    | events.HandoffRejected
    | events.HandoffExpired,
) -> TimelineFacts:
    data = event.data
    route = f"handoff {data.from_agency} -> {data.to_agency}"
    rule_reference = None
    if isinstance(event, events.HandoffRequested):
        summary = f"{route} requested, deadline {_when(event.data.deadline)}"
    elif isinstance(event, events.HandoffAccepted):
        summary = f"{route} accepted"
    elif isinstance(event, events.HandoffRejected):
        rule_reference = event.data.rule_reference
        summary = f"{route} rejected" + (f" ({rule_reference})" if rule_reference else "")
    else:
        summary = f"{route} expired at {_when(event.data.deadline)}"
    return TimelineFacts(
        summary,
        handoff_id=data.handoff_id,
        rule_reference=rule_reference,
        agency_pair=pair(data.from_agency, data.to_agency),
    )


def _escalation_facts(
    event: events.EscalationRaised | events.EscalationAcknowledged | events.EscalationResolved,
) -> TimelineFacts:
    team = f"{event.data.team.agency}/{event.data.team.team}"
    if isinstance(event, events.EscalationRaised):
        raised = event.data
        skipped = (
            f"; level {raised.skipped_level} did not acknowledge" if raised.skipped_level else ""
        )
        # A hardship flag may cite the rule that works out harshly; the
        # escalation service is expected to copy it, the flag is the fallback.
        flag_rule = raised.flag.rule_reference if raised.flag else None
        return TimelineFacts(
            f"escalation raised: level {raised.level}, {raised.trigger}, team {team}, "
            f"acknowledge by {_when(raised.acknowledge_by)}{skipped}",
            escalation_id=raised.escalation_id,
            escalation_level=raised.level,
            escalation_trigger=raised.trigger,
            rule_reference=raised.rule_reference or flag_rule,
            agency_pair=pair(*raised.agency_pair) if len(raised.agency_pair) == 2 else None,
        )
    if isinstance(event, events.EscalationAcknowledged):
        return TimelineFacts(
            f"escalation acknowledged at level {event.data.level} by {team}",
            escalation_id=event.data.escalation_id,
            escalation_level=event.data.level,
        )
    resolved = event.data
    handed = f", handed to {resolved.handoff_to}" if resolved.handoff_to else ""
    return TimelineFacts(
        f"escalation resolved: {resolved.outcome} by {team}{handed}",
        escalation_id=resolved.escalation_id,
        escalation_outcome=resolved.outcome,
    )


_FACTS: dict[type, _Facts] = {
    events.CaseOpened: _opened,
    events.CaseContextUpdated: _context,
    events.HandoffRequested: _handoff_facts,
    events.HandoffAccepted: _handoff_facts,
    events.HandoffRejected: _handoff_facts,
    events.HandoffExpired: _handoff_facts,
    events.EscalationRequested: _escalation_requested,
    events.EscalationRaised: _escalation_facts,
    events.EscalationAcknowledged: _escalation_facts,
    events.EscalationResolved: _escalation_facts,
    events.CaseClosed: _closed,
    events.DeliveryFailed: _delivery_failed,
}
