"""What agencies ask of escalations: to raise one, to acknowledge it, to resolve it.

A request is granted only to an agency that holds or has held the case; any
other is refused the way the router refuses: the record to the dead-letter
topic with the reason in its headers, and a `delivery-failed` notice to the
sender. Acknowledging and resolving are for the agency of the team that was
alerted last; anything else is logged and ignored (it changes no state, and
the tracker still shows it on the timeline).
"""

from __future__ import annotations

from contracts.events import EscalationAcknowledged, EscalationRequested, EscalationResolved
from services.escalation.levels import Cause, Context, raise_escalation
from services.escalation.messages import Origin, refusal_messages
from services.escalation.model import CaseFile
from services.escalation.workspace import Cancel, Workspace


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
            origin, event, sender=emitter, code=code, reason=reason, source=ctx.source, now=ctx.now
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
    if emitter != escalation.team.agency:
        ws.note(
            "warning",
            f"{event.name} not from the alerted team's agency, ignored",
            agency=emitter,
            alerted=escalation.team.agency,
            **fields,
        )
        return
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
