"""Raising an escalation along the case's path, and climbing it when nobody acknowledges.

Raising at level L alerts the team of rung L and gives it the rung's
acknowledge_within; an acknowledge timer holds that deadline. When it passes
unacknowledged, the next rung is alerted under the same escalation id, and the
event names the level that was skipped and why. The top rung never goes
silent: it is alerted again every `escalation_repeat` (default: its own
acknowledge_within) until someone acknowledges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from contracts.case import CaseFlag, EscalationLevel
from contracts.events import (
    EscalationRaise,
    EscalationRaised,
    TeamRef,
)
from contracts.registry import AgencyRegistry
from services.escalation.messages import alert_messages
from services.escalation.model import (
    CaseFile,
    Escalation,
    Timer,
    TimerKind,
    Trigger,
    bus_event,
    derived_id,
)
from services.escalation.workspace import Workspace


@dataclass(frozen=True, slots=True)
class Context:
    """What the rules need besides the state: the registry, the settings and the time."""

    registry: AgencyRegistry
    source: str
    now: datetime
    ping_pong_limit: int
    repeat: timedelta | None


@dataclass(frozen=True, slots=True)
class Cause:
    """Why an escalation is raised: what the policy signals count."""

    trigger: Trigger
    cause: str
    rule_reference: str | None = None
    agency_pair: tuple[str, ...] = ()
    flag: CaseFlag | None = None


def describe(duration: timedelta) -> str:
    """`1d 2h 30m`: a duration for a skip reason."""
    seconds = int(duration.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
    ]
    return " ".join(part for part in parts if not part.startswith("0")) or "0s"


def raised_event_id(origin: UUID, trigger: Trigger) -> UUID:
    """The id of the `escalation-raised` that `origin` (a timer or event) raises for `trigger`."""
    return derived_id(origin, f"escalation-raised:{trigger}")


def raise_escalation(
    ws: Workspace,
    ctx: Context,
    file: CaseFile,
    cause: Cause,
    *,
    level: int,
    origin: UUID,
    causation_id: UUID | None,
) -> Escalation | None:
    """Raise a new escalation at `level`; `origin` (a timer or event id) derives its ids.

    None when one for the same trigger is still open on the case, when the case
    has no escalation path, or when the announcing event may not go out.
    """
    fields = {"case_id": str(file.case_id), "correlation_id": str(file.correlation_id)}
    if (open_one := ws.open_escalation(file.case_id, cause.trigger)) is not None:
        ws.note(
            "info",
            "escalation for this trigger already open, not raised again",
            trigger=cause.trigger,
            escalation_id=str(open_one.escalation_id),
            **fields,
        )
        return None
    path = file.effective_path(ctx.registry)
    if path is None:
        ws.note(
            "error", "no escalation path for the case's category", trigger=cause.trigger, **fields
        )
        return None
    rung = path.at(level)
    escalation_id = derived_id(origin, f"escalation:{cause.trigger}")
    acknowledge_by = ctx.now + rung.acknowledge_within
    event = bus_event(
        EscalationRaised,
        raised_event_id(origin, cause.trigger),
        source=ctx.source,
        file=file,
        time=ctx.now,
        causation_id=causation_id,
        data=EscalationRaise(
            escalation_id=escalation_id,
            level=rung.level,
            team=_team(rung),
            trigger=cause.trigger,
            cause=cause.cause,
            rule_reference=cause.rule_reference,
            acknowledge_by=acknowledge_by,
            flag=cause.flag,
            agency_pair=list(cause.agency_pair),
        ),
    )
    if not ws.emit(event.id, alert_messages(event)):
        return None
    file.sequence += 1
    ws.touch(file)
    escalation = Escalation(
        escalation_id=escalation_id,
        case_id=file.case_id,
        trigger=cause.trigger,
        cause=cause.cause,
        rule_reference=cause.rule_reference,
        agency_pair=cause.agency_pair,
        flag_kind=cause.flag.kind if cause.flag is not None else None,
        level=rung.level,
        team=event.data.team,
        status="raised",
        raised_at=ctx.now,
        alerted_at=ctx.now,
        acknowledge_by=acknowledge_by,
        raises=1,
        last_raised_id=event.id,
    )
    ws.touch_escalation(escalation)
    ws.schedule(Timer.new("acknowledge", file.case_id, escalation_id, acknowledge_by, event.id))
    _note_raised(ws, event, file)
    return escalation


def climb(
    ws: Workspace, ctx: Context, file: CaseFile, escalation: Escalation, timer: Timer
) -> None:
    """The wait that `timer` holds ran out: alert the next rung, or the top one again."""
    if escalation.status != "raised" or escalation.acknowledge_by != timer.due_at:
        return  # acknowledged, resolved or already moved on: the timer is stale
    path = file.effective_path(ctx.registry)
    if path is None:
        return
    top = path.levels[-1]
    waited = describe(escalation.acknowledge_by - escalation.alerted_at)
    who = f"{escalation.team.agency}/{escalation.team.team}"
    kind: TimerKind
    if escalation.level < top.level:
        rung, kind = path.at(escalation.level + 1), "acknowledge"
        wait = rung.acknowledge_within
        reason = f"level {escalation.level} ({who}) did not acknowledge within {waited}"
    else:
        rung, kind = top, "top-repeat"
        wait = ctx.repeat or top.acknowledge_within
        reason = (
            f"top level {escalation.level} ({who}) did not acknowledge within {waited}; "
            f"alerted again every {describe(wait)} until acknowledged"
        )
    acknowledge_by = ctx.now + wait
    event = bus_event(
        EscalationRaised,
        derived_id(timer.id, "escalation-raised"),
        source=ctx.source,
        file=file,
        time=ctx.now,
        causation_id=escalation.last_raised_id,
        data=EscalationRaise(
            escalation_id=escalation.escalation_id,
            level=rung.level,
            team=_team(rung),
            trigger=escalation.trigger,
            cause=escalation.cause,
            rule_reference=escalation.rule_reference,
            acknowledge_by=acknowledge_by,
            skipped_level=escalation.level,
            skip_reason=reason,
            agency_pair=list(escalation.agency_pair),
        ),
    )
    if not ws.emit(event.id, alert_messages(event)):
        return
    file.sequence += 1
    ws.touch(file)
    escalation.level, escalation.team = rung.level, event.data.team
    escalation.alerted_at, escalation.acknowledge_by = ctx.now, acknowledge_by
    escalation.raises += 1
    escalation.last_raised_id = event.id
    ws.touch_escalation(escalation)
    ws.schedule(Timer.new(kind, file.case_id, escalation.escalation_id, acknowledge_by, event.id))
    _note_raised(ws, event, file)


def _team(rung: EscalationLevel) -> TeamRef:
    return TeamRef(agency=rung.agency, team=rung.team)


def _note_raised(ws: Workspace, event: EscalationRaised, file: CaseFile) -> None:
    data = event.data
    ws.note(
        "info",
        "escalation raised",
        case_id=str(file.case_id),
        event_id=str(event.id),
        correlation_id=str(event.correlationid),
        escalation_id=str(data.escalation_id),
        trigger=data.trigger,
        escalation_level=data.level,
        team=f"{data.team.agency}/{data.team.team}",
        skipped_level=data.skipped_level,
    )
