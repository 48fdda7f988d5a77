"""What a due timer does: expire the handoff, raise for idleness, or climb a level.

A timer may have gone stale between being set and coming due (the handoff
was answered, the case moved, the escalation was acknowledged); such a timer
fires without effect. Every id here derives from the timer's id, so a timer
fired twice (a lease that ran out under a slow instance) yields the same
events, which consumers deduplicate.
"""

from __future__ import annotations

from dataclasses import replace

from contracts.events import HandoffExpired, HandoffExpiry
from services.escalation.levels import Cause, Context, climb, describe, raise_escalation
from services.escalation.messages import expired_messages
from services.escalation.model import CaseFile, Timer, bus_event, derived_id
from services.escalation.workspace import Workspace


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
    # The holder keeps the case: a warm handover that did not happen leaves it where it was.
    file.state = replace(file.state, pending=None)
    file.sequence += 1
    ws.touch(file)
    ws.note(
        "info",
        "handoff expired",
        case_id=str(file.case_id),
        event_id=str(expired.id),
        correlation_id=str(file.correlation_id),
        handoff_id=str(pending.handoff_id),
    )
    cause = Cause(
        "handoff-expired",
        f"handoff {pending.from_agency} -> {pending.to_agency} not answered by its deadline",
        agency_pair=(pending.from_agency, pending.to_agency),
    )
    raise_escalation(ws, ctx, file, cause, level=1, origin=timer.id, causation_id=expired.id)


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
