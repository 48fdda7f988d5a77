"""What one case-log event does to escalations: the triggers that act at once, and timers.

The case itself moves by the handoff rules of the contract (`contracts.handoff`),
so this service and the tracker agree on who holds a case and which handoff
is pending. On top of that:
- a handoff request sets a deadline timer; an answer cancels it; the
  gateway's `delivery-failed` (`webhook-undeliverable`) about the pending
  request, from the receiver's inbox, brings the timer forward to now: a
  request that cannot reach its receiver is a stalled handoff at once;
- every agency event moves the case's idle timer to its time + idle limit
  (the bus's own events are not activity: they must not keep a case "alive");
- the `ping_pong_limit`-th rejection since the last ping-pong escalation,
  a hardship or vulnerability flag, and an escalation request by an agency
  that holds or has held the case raise an escalation at once;
- a request from any other agency is refused: dead letter and notice;
- acknowledging stops the climb; resolving clears every timer of the
  escalation; closing the case clears every timer of the case.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from contracts import topics
from contracts.case import CaseFlag
from contracts.envelope import CaseEvent
from contracts.events import (
    CaseClosed,
    CaseContextUpdated,
    CaseOpened,
    DeliveryFailed,
    EscalationAcknowledged,
    EscalationRequested,
    EscalationResolved,
    HandoffExpired,
    HandoffRejected,
    HandoffRequested,
)
from contracts.handoff import OPERATOR, Applied, CaseState, decide, gateway_source
from contracts.reasons import WEBHOOK_UNDELIVERABLE
from services.escalation.asks import answer, manual, refused
from services.escalation.fire import (
    deadline_timer_id,
    expiry_escalation_id,
    pending_deadline_id,
    raise_expiry_escalation,
    void_expiry,
)
from services.escalation.levels import Cause, Context, raise_escalation
from services.escalation.model import CaseFile, Timer
from services.escalation.workspace import Cancel, Hasten, Workspace
from services.runtime.kafka.refusals import Origin


def react(
    ws: Workspace, ctx: Context, event: CaseEvent[Any], emitter: str | None, origin: Origin
) -> None:
    """Apply one event from the case log, the act of `emitter` (None: not in the registry).

    `emitter` is `contracts.handoff.actor_of`: a team's acknowledgement or resolution
    from the console arrives as its agency's, not the operator's.
    """
    if emitter is None or inert(event, emitter):
        return  # foreign sources are the tracker's to record
    file = ws.files.get(event.subject)
    if emitter == OPERATOR:  # its expiries and the gateway's notices only (`inert`)
        if isinstance(event, HandoffExpired) and file is not None:
            _expired(ws, ctx, file, event)
        elif isinstance(event, DeliveryFailed) and file is not None:
            _undeliverable(ws, ctx, file, event)
        return
    if isinstance(event, EscalationRequested) and refused(
        ws, ctx, event=event, emitter=emitter, file=file, origin=origin
    ):
        return
    if file is None:
        if isinstance(event, CaseOpened):
            _open(ws, ctx, event, emitter)
        return
    before = file.state
    decision = decide(before, event, emitter, path=_deciders(ctx, file))
    if not isinstance(decision, Applied):
        return  # the tracker refuses it too: it changes nothing
    file.state = decision.state
    ws.touch(file)
    _follow(ws, file, before, event)
    if isinstance(event, CaseClosed):
        _close(ws, file, event)
        return
    _trigger(ws, ctx, file, event, emitter)
    _idle(ws, ctx, file, before, event)


def inert(event: CaseEvent[Any], emitter: str) -> bool:
    """A bus event this service does nothing with, so need not load its case for: of the
    bus's own events only its expiries and the gateway's notices count (the rest are this
    service's own raises and resolutions)."""
    return emitter == OPERATOR and not isinstance(event, HandoffExpired | DeliveryFailed)


def _trigger(
    ws: Workspace, ctx: Context, file: CaseFile, event: CaseEvent[Any], emitter: str
) -> None:
    """What an applied agency event sets in motion besides moving the case."""
    if isinstance(event, CaseContextUpdated):
        if event.data.escalation_path is not None:
            file.path = event.data.escalation_path
        _flags(ws, ctx, file, event.data.context.flags, event)
    elif isinstance(event, HandoffRequested):
        data = event.data
        ws.schedule(
            Timer.new("handoff-deadline", file.case_id, data.handoff_id, data.deadline, event.id)
        )
    elif isinstance(event, HandoffRejected):
        _ping_pong(ws, ctx, file, event)
    elif isinstance(event, EscalationRequested):
        manual(ws, ctx, file, event, emitter)
    elif isinstance(event, EscalationAcknowledged | EscalationResolved):
        answer(ws, ctx, file, event, emitter)


def _expired(ws: Workspace, ctx: Context, file: CaseFile, event: HandoffExpired) -> None:
    """The bus's expiry, in case-log order: it ends the pending handoff, unless an
    answer came first (then the tracker refuses it, and so does this service)."""
    decision = decide(file.state, event, OPERATOR)
    if isinstance(decision, Applied):
        # Only the pending handoff changes: the bus's own events are no activity (idle).
        file.state = replace(file.state, pending=decision.state.pending)
        ws.touch(file)
        if expiry_escalation_id(event) not in ws.known_escalations:
            # The round that expired it has not recorded its escalation (yet, or ever:
            # it died after producing). Record it as raised then: the same ids and
            # times as the round's, so a raise already out is the same event again.
            at_expiry = replace(ctx, now=event.time)
            raise_expiry_escalation(ws, at_expiry, file, event, deadline_timer_id(event))
    elif file.state.status == "open":
        void_expiry(ws, ctx, file, event)


def _undeliverable(ws: Workspace, ctx: Context, file: CaseFile, event: DeliveryFailed) -> None:
    """The gateway gave up delivering the pending handoff's request to its receiver's
    webhook: bring the handoff's deadline timer forward to now, so the timer loop expires
    it and escalates, as at the deadline (the same ids: it is the same timer).

    Only the gateway's `webhook-undeliverable`, from the receiver's inbox, about the request
    that set the timer counts (the store checks the timer's cause); a notice about another
    event, another party's copy, or a handoff answered or expired already changes nothing.
    """
    data = event.data
    pending = file.state.pending
    if (
        event.source != gateway_source(ctx.registry)
        or data.reason_code != WEBHOOK_UNDELIVERABLE
        or pending is None
        or data.topic != topics.inbox(pending.to_agency)
        or data.rejected_event_id is None
    ):
        return
    try:
        request_id = UUID(data.rejected_event_id)
    except ValueError:
        return
    ws.hasten(Hasten(pending_deadline_id(file, pending), request_id, ctx.now))
    # Whether it was the request, the store says: the round that expires it logs that.
    ws.note(
        "info",
        "the gateway could not deliver an event to the pending handoff's receiver",
        case_id=str(file.case_id),
        event_id=str(event.id),
        correlation_id=str(file.correlation_id),
        handoff_id=str(pending.handoff_id),
        rejected_event_id=str(request_id),
        to_agency=pending.to_agency,
    )


def _deciders(ctx: Context, file: CaseFile) -> frozenset[str]:
    """Who may force a handoff, as the tracker sees it: agencies on the category's path."""
    category = ctx.registry.category(file.state.category)
    if category is None:
        return frozenset()
    return frozenset(level.agency for level in category.escalation_path.levels)


def _open(ws: Workspace, ctx: Context, event: CaseOpened, emitter: str) -> None:
    decision = decide(None, event, emitter)
    if not isinstance(decision, Applied):
        return
    file = CaseFile(decision.state, [emitter], event.correlationid, path=event.data.escalation_path)
    ws.touch(file)
    _flags(ws, ctx, file, event.data.context.flags, event)
    _set_idle(ws, ctx, file, event)


def _follow(ws: Workspace, file: CaseFile, before: CaseState, event: CaseEvent[Any]) -> None:
    """Keep the holders and the deadline timer in step with the case."""
    after = file.state
    if after.holder not in file.holders:
        file.holders.append(after.holder)
    old = before.pending
    if old is not None and (after.pending is None or after.pending.handoff_id != old.handoff_id):
        ws.cancel(Cancel(ref=old.handoff_id, kinds=("handoff-deadline",)))


def _close(ws: Workspace, file: CaseFile, event: CaseClosed) -> None:
    ws.cancel(Cancel(case_id=file.case_id, fired_too=True))
    for escalation in ws.open_escalations(file.case_id):
        escalation.status, escalation.resolved_at = "withdrawn", event.time
        ws.touch_escalation(escalation)


def _flags(
    ws: Workspace, ctx: Context, file: CaseFile, flags: list[CaseFlag], event: CaseEvent[Any]
) -> None:
    """A hardship or vulnerability flag is escalated at once, at the level it asks for."""
    if not flags:
        return
    flag = max(flags, key=lambda f: f.escalate_at_level)
    cause = Cause(
        "hardship",
        f"{flag.kind} flag set by {flag.raised_by}",
        rule_reference=flag.rule_reference,
        flag=flag,
    )
    raise_escalation(
        ws, ctx, file, cause, level=flag.escalate_at_level, origin=event.id, causation_id=event.id
    )


def _ping_pong(ws: Workspace, ctx: Context, file: CaseFile, event: HandoffRejected) -> None:
    rejections = file.state.bounce_count
    if rejections - file.rejections_escalated < ctx.ping_pong_limit:
        return
    data = event.data
    cause = Cause(
        "ping-pong",
        f"rejected {rejections} times; last by {data.to_agency}",
        rule_reference=data.rule_reference,
        agency_pair=(data.from_agency, data.to_agency),
    )
    if raise_escalation(ws, ctx, file, cause, level=1, origin=event.id, causation_id=event.id):
        file.rejections_escalated = rejections


def _idle(
    ws: Workspace, ctx: Context, file: CaseFile, before: CaseState, event: CaseEvent[Any]
) -> None:
    if file.state.status == "open" and file.state.last_event_at > before.last_event_at:
        _set_idle(ws, ctx, file, event)


def _set_idle(ws: Workspace, ctx: Context, file: CaseFile, event: CaseEvent[Any]) -> None:
    limit = file.idle_limit(ctx.registry)
    if limit is None:
        return
    ws.cancel(Cancel(ref=file.case_id, kinds=("idle",)))
    due = file.state.last_event_at + limit
    ws.schedule(Timer.new("idle", file.case_id, file.case_id, due, event.id))
