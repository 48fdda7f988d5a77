"""What a due timer does: expire the handoff, raise for idleness, or climb a level.

A handoff's deadline timer falls due at its deadline, or sooner: when the
gateway could not deliver the request to its receiver's webhook, the case-log
consumer brings the timer forward to that moment (`react`), so the expiry and
its escalation are the same events, with the same ids, as at the deadline.

A timer may have gone stale between being set and coming due (the handoff
was answered, the case moved, the escalation was acknowledged); such a timer
fires without effect. Every id here derives from the timer's id, so a timer
fired twice (a lease that ran out under a slow instance) yields the same
events, which consumers deduplicate.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from contracts.events import (
    EscalationResolution,
    EscalationResolved,
    HandoffExpired,
    HandoffExpiry,
    TeamRef,
)
from contracts.handoff import PendingHandoff
from services.escalation.levels import (
    Cause,
    Context,
    climb,
    describe,
    raise_escalation,
    raised_event_id,
)
from services.escalation.messages import alert_messages, expired_messages
from services.escalation.model import CaseFile, Timer, bus_event, derived_id
from services.escalation.workspace import Cancel, Workspace


def fire(ws: Workspace, ctx: Context, timer: Timer) -> None:
    """Do what `timer` is for, on the state in `ws`, at `ctx.now`."""
    file = ws.files.get(timer.case_id)
    if file is None or file.state.status != "open":
        return
    if timer.kind == "handoff-deadline":
        _expire(ws, ctx, file, timer)
    elif timer.kind == "idle":
        _idle(ws, ctx, file, timer)
    else:
        escalation = ws.escalations.get(timer.ref)
        if escalation is not None:
            climb(ws, ctx, file, escalation, timer)


def _expire(ws: Workspace, ctx: Context, file: CaseFile, timer: Timer) -> None:
    """The receiver did not answer by the deadline: expire the handoff, then escalate."""
    pending = file.state.pending
    if pending is None or pending.handoff_id != timer.ref:
        return
    expired = bus_event(
        HandoffExpired,
        derived_id(timer.id, "handoff-expired"),
        source=ctx.source,
        file=file,
        time=ctx.now,
        causation_id=timer.causation_id,
        data=HandoffExpiry(
            handoff_id=pending.handoff_id,
            from_agency=pending.from_agency,
            to_agency=pending.to_agency,
            deadline=pending.deadline,
        ),
    )
    if not ws.emit(expired.id, expired_messages(expired)):
        return
    # The pending handoff stays until the expiry comes back on the case log: an answer
    # may be ahead of it there, and then the tracker refuses the expiry (`react`).
    file.sequence += 1
    ws.touch(file)
    ws.note(
        "info",
        "handoff expired",
        case_id=str(file.case_id),
        event_id=str(expired.id),
        correlation_id=str(file.correlation_id),
        handoff_id=str(pending.handoff_id),
        undelivered=undelivered(expired),
    )
    raise_expiry_escalation(ws, ctx, file, expired, timer.id)


def deadline_timer_id(expired: HandoffExpired) -> UUID:
    """The id of the deadline timer that expired the handoff (it derives the escalation's)."""
    data = expired.data
    return handoff_deadline_id(expired.subject, data.handoff_id, data.deadline)


def pending_deadline_id(file: CaseFile, pending: PendingHandoff) -> UUID:
    """The id of the deadline timer of the case's pending handoff."""
    return handoff_deadline_id(file.case_id, pending.handoff_id, pending.deadline)


def handoff_deadline_id(case_id: UUID, handoff_id: UUID, deadline: datetime) -> UUID:
    """A handoff's deadline timer id: from its deadline, however early the timer fires."""
    return Timer.new("handoff-deadline", case_id, handoff_id, deadline).id


def undelivered(expired: HandoffExpired) -> bool:
    """Expired before its deadline: the request never reached its receiver (its timer was
    brought forward when the gateway gave its webhook delivery up)."""
    return expired.time < expired.data.deadline


def expiry_escalation_id(expired: HandoffExpired) -> UUID:
    return derived_id(deadline_timer_id(expired), "escalation:handoff-expired")


def expiry_raise_id(timer_id: UUID) -> UUID:
    """The id of the `escalation-raised` that the expiry of deadline timer `timer_id` raises."""
    return raised_event_id(timer_id, "handoff-expired")


def raise_expiry_escalation(
    ws: Workspace, ctx: Context, file: CaseFile, expired: HandoffExpired, timer_id: UUID
) -> None:
    """Escalate an expired handoff, at level 1, with ids derived from its deadline timer."""
    data = expired.data
    route = f"handoff {data.from_agency} -> {data.to_agency}"
    why = (
        f"request not delivered to {data.to_agency} (its webhook did not take it)"
        if undelivered(expired)
        else "not answered by its deadline"
    )
    cause = Cause(
        "handoff-expired", f"{route} {why}", agency_pair=(data.from_agency, data.to_agency)
    )
    raise_escalation(ws, ctx, file, cause, level=1, origin=timer_id, causation_id=expired.id)


def _idle(ws: Workspace, ctx: Context, file: CaseFile, timer: Timer) -> None:
    limit = file.idle_limit(ctx.registry)
    if limit is None or timer.due_at != file.state.last_event_at + limit:
        return  # an event came since: a later idle timer stands in for this one
    pending = file.state.pending
    pair = (pending.from_agency, pending.to_agency) if pending is not None else ()
    cause = Cause("idle", f"no event on the case for {describe(limit)}", agency_pair=pair)
    raise_escalation(
        ws, ctx, file, cause, level=1, origin=timer.id, causation_id=timer.causation_id
    )


def void_expiry(ws: Workspace, ctx: Context, file: CaseFile, expired: HandoffExpired) -> None:
    """The bus expired a handoff whose answer is ahead of the expiry on the case log.

    The tracker refuses such an expiry, so the escalation raised with it stands
    on nothing: the bus resolves it (`no-action-needed`), telling the team it
    alerted, and clears its timers. Its id derives from the deadline timer's,
    so this works whether or not the timer round has recorded the escalation
    yet (if not, the round finds the handoff answered and records nothing).
    """
    data = expired.data
    escalation_id = expiry_escalation_id(expired)
    escalation = ws.escalations.get(escalation_id)
    path = file.effective_path(ctx.registry)
    if escalation is not None:
        team = escalation.team
    elif path is not None:
        rung = path.at(1)
        team = TeamRef(agency=rung.agency, team=rung.team)
    else:
        return
    event = bus_event(
        EscalationResolved,
        derived_id(expired.id, "escalation-resolved"),
        source=ctx.source,
        file=file,
        time=ctx.now,
        causation_id=expired.id,
        data=EscalationResolution(
            escalation_id=escalation_id,
            team=team,
            outcome="no-action-needed",
            note="The handoff was answered before the bus expired it: nothing to escalate.",
        ),
    )
    if not ws.emit(event.id, alert_messages(event)):
        return
    file.sequence += 1
    ws.touch(file)
    ws.cancel(Cancel(ref=escalation_id, fired_too=True))
    if escalation is not None and escalation.open:
        escalation.status, escalation.resolved_at = "withdrawn", ctx.now
        escalation.outcome = "no-action-needed"
        ws.touch_escalation(escalation)
    ws.note(
        "info",
        "expiry overtaken by the handoff's answer, its escalation withdrawn",
        case_id=str(file.case_id),
        event_id=str(event.id),
        correlation_id=str(file.correlation_id),
        escalation_id=str(escalation_id),
        handoff_id=str(data.handoff_id),
    )
