"""A team acknowledges or resolves an escalation from the console: checked, then on the bus.

Only a team member acts, and only on an escalation alerting its own team;
operators see the board read-only. The action is not applied here: it is an
event on the case log (`services.console._team_actions`), and the board
shows the new status once the escalation service has applied it. 202 means
the event is on the log; the escalation service may still ignore it (say, the
escalation climbed past the team in the meantime), as it would the agency's own.
"""

from __future__ import annotations

import json
from typing import Any, get_args
from uuid import UUID

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contracts.events import EscalationAcknowledged, EscalationOutcome, EscalationResolved, TeamRef
from services.console import _team_actions as team_actions
from services.console._team_actions import Target
from services.console.access import principal_of
from services.console.state import console_of
from services.runtime.observability.logging import get_logger

OUTCOMES: tuple[str, ...] = get_args(EscalationOutcome)
NOTE_MAX = 2000
"""The events' `note` limit (contracts ShortText)."""

log = get_logger("ketenbus.console")


def _acting_team(request: Request) -> TeamRef:
    principal = principal_of(request)
    if principal.role != "team" or principal.team is None:
        raise HTTPException(403, "operators see the escalation board read-only; teams act")
    return principal.team


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise HTTPException(400, f"{name} must be a string or null")
    if len(value) > NOTE_MAX:
        raise HTTPException(400, f"{name} is longer than {NOTE_MAX} characters")
    return value


async def _target(request: Request, team: TeamRef) -> Target:
    raw = request.path_params["escalation_id"]
    try:
        escalation_id = UUID(raw)
    except ValueError:
        raise HTTPException(404, f"no escalation {raw}") from None
    target = await team_actions.target_of(console_of(request).engine, escalation_id)
    if target is None:
        raise HTTPException(404, f"no escalation {escalation_id}")
    if target.team != team:
        raise HTTPException(403, f"escalation {escalation_id} does not alert your team")
    if not target.open:
        raise HTTPException(409, f"escalation {escalation_id} is already {target.status}")
    return target


async def _send(
    request: Request, event: EscalationAcknowledged | EscalationResolved, target: Target
) -> Response:
    producer = await console_of(request).started_producer()
    await team_actions.publish(producer, event)
    log.info(
        "team action sent from the console",
        event_type=event.name,
        case_id=str(target.case_id),
        correlation_id=str(target.correlation_id),
        escalation_id=str(target.escalation_id),
        event_id=str(event.id),
        team=f"{event.data.team.agency}/{event.data.team.team}",
    )
    return JSONResponse({"event_id": str(event.id)}, status_code=202)


async def acknowledge(request: Request) -> Response:
    """`POST /api/escalations/{id}/acknowledge` `{"note": str|null}`."""
    team = _acting_team(request)
    note = _text(await _body(request), "note")
    target = await _target(request, team)
    if target.status == "acknowledged":
        raise HTTPException(409, f"escalation {target.escalation_id} is already acknowledged")
    registry = console_of(request).registry
    event = team_actions.acknowledgement(registry, target, team, note=note)
    return await _send(request, event, target)


async def resolve(request: Request) -> Response:
    """`POST /api/escalations/{id}/resolve` `{"outcome", "note", "handoff_to"}`."""
    team = _acting_team(request)
    body = await _body(request)
    note = _text(body, "note")
    outcome = body.get("outcome")
    if outcome not in OUTCOMES:
        raise HTTPException(400, f"outcome must be one of {', '.join(OUTCOMES)}")
    registry = console_of(request).registry
    handoff_to = _text(body, "handoff_to")
    if outcome == "handoff-forced":
        if handoff_to is None:
            raise HTTPException(400, "outcome handoff-forced needs handoff_to: the agency")
        if registry.agency(handoff_to) is None:
            raise HTTPException(400, f"handoff_to {handoff_to!r} is not an agency in the registry")
    elif handoff_to is not None:
        raise HTTPException(400, "handoff_to goes only with outcome handoff-forced")
    target = await _target(request, team)
    event = team_actions.resolution(
        registry, target, team, outcome=outcome, note=note, handoff_to=handoff_to
    )
    return await _send(request, event, target)
