"""Dead letters: browse, inspect and replay (operators only, audited).

Stands on `services.dead_letters`, as `ketenbus dlq` does: the list shows the
headers' facts only (`summary`), never a value; one dead letter's detail shows
its headers and its value as `dlq show --json` renders it (the router has
already removed personal data sent in clear, see `ketenbus-redacted`). A
replay needs `{"confirm": true}`; it and every refusal to replay are logged for
the audit by `services.dead_letters`, with the logged-in operator as `operator`.
The detail names what that confirmation overrides (`replay_caution`: a replay
that cannot cure the refusal, or the refusal of an earlier replay), and the
audit of such a replay records it as `confirmed_despite`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services import dead_letters as dl
from services.console._pages import api_error, kafka_settings, when
from services.console._templates import render
from services.console.access import require_operator
from services.console.state import console_of
from services.dead_letters.show import hex_preview
from services.runtime.errors import UserError

LIST_LIMIT = 200
"""How many dead letters a list shows, the most recent first."""


def _id(request: Request) -> str:
    return f"{request.path_params['partition']}:{request.path_params['offset']}"


async def _listing(request: Request) -> dict[str, Any]:
    """The most recent dead letters (of `?reason=`, if given), newest first, and the tally."""
    reason = request.query_params.get("reason") or None
    letters = await dl.read_dead_letters(kafka_settings(console_of(request)))
    shown = dl.with_reason(letters, reason)
    return {
        "reason": reason,
        "total": len(shown),
        "dead_letters": [dl.summary(letter) for letter in reversed(shown[-LIST_LIMIT:])],
        "counts": [{"reason": code, "count": count} for code, count in dl.counts(letters)],
    }


async def _detail(request: Request) -> dict[str, Any]:
    """One dead letter as `dlq show --json` has it, whether (or why not) it can be replayed,
    and what confirming its replay overrides (`replay_caution`, None if nothing)."""
    settings = kafka_settings(console_of(request))
    letter, history, replay_of = await dl.read_with_history(settings, _id(request))
    shown = dl.show_json(letter, history, replay_of)
    try:
        dl.plan_replay(letter)
    except dl.NotReplayable as exc:
        shown["replayable"], shown["not_replayable_because"] = False, exc.why
        shown["replay_caution"] = None
    else:
        shown["replayable"], shown["not_replayable_because"] = True, None
        shown["replay_caution"] = dl.replay_caution(letter, replay_of)
    return shown


def _pretty(value: Any) -> str:
    """The value as `dlq show` prints it: indented JSON, control characters escaped."""
    lines = json.dumps(value, indent=2, ensure_ascii=False).splitlines()
    return "\n".join(dl.clean(line) for line in lines)


async def list_page(request: Request) -> Response:
    require_operator(request)
    try:
        listing = await _listing(request)
    except UserError as exc:
        return render(request, "dead_letters.html", {"listing": None, "error": str(exc)}, 503)
    return render(request, "dead_letters.html", {"listing": listing, "error": None, "when": when})


async def detail_page(request: Request) -> Response:
    require_operator(request)
    try:
        shown = await _detail(request)
    except dl.NoSuchDeadLetter as exc:
        return render(request, "dead_letter.html", {"letter": None, "error": str(exc)}, 404)
    except UserError as exc:
        return render(request, "dead_letter.html", {"letter": None, "error": str(exc)}, 503)
    context = {
        "letter": shown,
        "error": None,
        "when": when,
        "value_text": _pretty(shown["value"]) if "value" in shown else None,
        "hex_lines": hex_preview(bytes.fromhex(shown.get("value_hex_preview", ""))),
    }
    return render(request, "dead_letter.html", context)


async def list_api(request: Request) -> Response:
    require_operator(request)
    try:
        return JSONResponse(await _listing(request))
    except UserError as exc:
        return api_error(503, str(exc))


async def detail_api(request: Request) -> Response:
    require_operator(request)
    try:
        return JSONResponse(await _detail(request))
    except dl.NoSuchDeadLetter as exc:
        return api_error(404, str(exc))
    except UserError as exc:
        return api_error(503, str(exc))


async def _confirmed(request: Request) -> bool:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return False
    try:
        body = await request.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("confirm") is True


async def replay_api(request: Request) -> Response:
    """Put the dead letter back on its origin outbox, once confirmed; audited either way."""
    operator = require_operator(request)
    if not await _confirmed(request):
        return api_error(400, 'confirm the replay: send JSON {"confirm": true}')
    dlq_id = _id(request)
    settings = kafka_settings(console_of(request))
    try:
        letter = dl.find(await dl.read_dead_letters(settings), dlq_id)
    except dl.NoSuchDeadLetter as exc:
        return api_error(404, str(exc))
    except UserError as exc:
        return api_error(503, str(exc))
    try:
        plan = dl.plan_replay(letter)
    except dl.NotReplayable as exc:
        dl.log_refused(exc, operator.name)
        return api_error(409, str(exc))
    # Confirmed: the operator replays it despite the caution, if any (it goes in the audit).
    marks = await dl.replay_marks(settings, [letter])
    plan = plan.confirmed(dl.replay_caution(letter, marks.get(letter.id)))
    try:
        [done] = await dl.publish_replays(settings, [plan], lambda _: None, actor=operator.name)
    except UserError as exc:
        return api_error(503, str(exc))
    return JSONResponse(
        {
            "replayed": dlq_id,
            "topic": done.replay.topic,
            "partition": done.partition,
            "offset": done.offset,
            "message": dl.render_replayed(done),
            "confirmed_despite": plan.despite,
        }
    )


routes: list[BaseRoute] = [
    Route("/dead-letters", list_page),
    Route("/dead-letters/{partition:int}/{offset:int}", detail_page),
    Route("/api/dead-letters", list_api),
    Route("/api/dead-letters/{partition:int}/{offset:int}", detail_api),
    Route("/api/dead-letters/{partition:int}/{offset:int}/replay", replay_api, methods=["POST"]),
]
