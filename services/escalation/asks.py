"""What agencies ask of escalations: to raise one, to acknowledge it, to resolve it.

A request is granted only to an agency that holds or has held the case; any
other is refused the way the router refuses: the record to the dead-letter
topic with the reason in its headers, and a `delivery-failed` notice to the
sender. Acknowledging and resolving are for the team alerted last, or a team
higher up the case's path: a higher level may take an escalation over, and an
acknowledgement from the next level can overtake the record of the climb that
alerted it (the alert is out before the climb is committed). Anything else is
logged and ignored (it changes no state; the tracker still shows it).
A team acting from the console counts as its agency (`contracts.handoff.actor_of`),
so the same rules hold for it.
"""

from __future__ import annotations

from contracts.case import EscalationLevel
from contracts.events import (
    EscalationAcknowledged,
    EscalationRequested,
    EscalationResolved,
    TeamRef,
)
from services.escalation.levels import Cause, Context, raise_escalation
from services.escalation.model import CaseFile, Escalation
from services.escalation.workspace import Cancel, Workspace
from services.runtime.kafka.refusals import Origin, refusal_messages


def manual(
    ws: Workspace, ctx: Context, file: CaseFile, event: EscalationRequested, emitter: str
) -> None:
    cause = Cause(
        "manual",
        f"escalation requested by {emitter}",
        rule_reference=event.data.rule_reference,
        agency_pair=_stuck_between(file),
    )
    level = event.data.level or 1
    raise_escalation(ws, ctx, file, cause, level=level, origin=event.id, causation_id=event.id)


def _stuck_between(file: CaseFile) -> tuple[str, ...]:
    pending = file.state.pending
    return (pending.from_agency, pending.to_agency) if pending is not None else ()


def refused(
    ws: Workspace,
    ctx: Context,
    *,
    event: EscalationRequested,
    emitter: str,
    file: CaseFile | None,
    origin: Origin,
) -> bool:
    """Refuse a request from an agency that never held the case (or for no open case)."""
    if file is None:
        code, reason = "unknown-case", f"case {event.subject} is not known to the bus"
    elif emitter not in file.holders:
        code = "not-a-holder"
        reason = (
            f"agency {emitter!r} has never held case {event.subject}; only an agency that "
            "holds or has held a case may request its escalation"
        )
    elif file.state.status == "closed":
        code, reason = "case-closed", f"case {event.subject} is closed"
    else:
        return False
    ws.send(
        refusal_messages(
            origin,
            event,
            sender=emitter,
            code=code,
            reason=reason,
            source=ctx.source,
            now=ctx.now,
            rejected_by="escalation",
        )
    )
    ws.note(
        "warning",
        "escalation request refused",
        reason_code=code,
        agency=emitter,
        case_id=str(event.subject),
        event_id=str(event.id),
        correlation_id=str(event.correlationid),
    )
    return True


def answer(
    ws: Workspace,
    ctx: Context,
    file: CaseFile,
    event: EscalationAcknowledged | EscalationResolved,
    emitter: str,
) -> None:
    """An acknowledgement stops the climb; a resolution ends the escalation."""
    escalation = ws.escalations.get(event.data.escalation_id)
    fields = {
        "case_id": str(file.case_id),
        "event_id": str(event.id),
        "correlation_id": str(event.correlationid),
        "escalation_id": str(event.data.escalation_id),
    }
    if escalation is None or escalation.case_id != file.case_id or not escalation.open:
        ws.note("info", f"{event.name} for no open escalation of the case, ignored", **fields)
        return
    rung = _rung_of(ctx, file, escalation, event.data.team)
    if rung is None or emitter != event.data.team.agency:
        ws.note(
            "warning",
            f"{event.name} not from the alerted team or one above it, ignored",
            agency=emitter,
            alerted=escalation.team.agency,
            **fields,
        )
        return
    if rung.level > escalation.level:
        escalation.level, escalation.team = rung.level, event.data.team
    if isinstance(event, EscalationAcknowledged):
        if escalation.status == "raised":
            escalation.status, escalation.acknowledged_at = "acknowledged", event.time
            ws.cancel(Cancel(ref=escalation.escalation_id, kinds=("acknowledge", "top-repeat")))
            ws.note("info", "escalation acknowledged", escalation_level=escalation.level, **fields)
    else:
        escalation.status, escalation.resolved_at = "resolved", event.time
        escalation.outcome = event.data.outcome
        ws.cancel(Cancel(ref=escalation.escalation_id, fired_too=True))
        ws.note("info", "escalation resolved", outcome=event.data.outcome, **fields)
    ws.touch_escalation(escalation)


def _rung_of(
    ctx: Context, file: CaseFile, escalation: Escalation, team: TeamRef
) -> EscalationLevel | None:
    """The lowest rung at or above the escalation's level that `team` stands on, if any."""
    path = file.effective_path(ctx.registry)
    if path is None:
        return None
    if team == escalation.team:
        return path.at(escalation.level)
    return next(
        (
            rung
            for rung in path.levels
            if rung.level >= escalation.level
            and (rung.agency, rung.team) == (team.agency, team.team)
        ),
        None,
    )
