"""Case tracer: find a case by id and show its timeline, holder, escalations and audit trail.

`GET /cases` is the search form (and the most recently active cases);
`GET /cases/{case_id}` the case page and `GET /api/cases/{case_id}` the same as
JSON: the tracker's view of the case (`services.casefile.queries.case_view`,
as `ketenbus case` shows it) and its audit trail (`services.audit.trace`, as
`ketenbus trace` shows it: who received which fields under which legal basis).
Neither holds personal data. Operators only.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from services.audit import trace
from services.casefile.queries import case_view, recent_cases, timeline
from services.console._pages import api_error, when
from services.console._templates import render
from services.console.access import require_operator
from services.console.state import console_of

RECENT = 20
"""How many of the most recently active cases the search page lists."""

STORE_DOWN = "the case store cannot be read"


class CaseNotFound(LookupError):
    """No case with that id; the message says what the tracker knows of it."""


async def case_document(request: Request, case_id: UUID) -> dict[str, Any]:
    """The case as the API answers it: the tracker's view, plus `audit` (and `audit_error`)."""
    engine = console_of(request).engine
    view = await case_view(engine, case_id)
    if view is None:
        refused = len(await timeline(engine, case_id))
        if refused:
            raise CaseNotFound(f"unknown case {case_id}: never opened; {refused} event(s) refused")
        raise CaseNotFound(f"unknown case {case_id}: the tracker has recorded no event for it")
    document = view.model_dump(mode="json")
    try:
        records = await trace(engine, case_id)
    except ValidationError:
        # The case is still worth showing; the trail is what cannot be trusted.
        document["audit"] = []
        document["audit_error"] = (
            f"an audit record of case {case_id} is no longer valid; "
            "run `ketenbus audit verify` to find where the chain was changed"
        )
    else:
        document["audit"] = [record.model_dump(mode="json") for record in records]
        document["audit_error"] = None
    return document


def _case_id(text: str) -> UUID | None:
    try:
        return UUID(text.strip())
    except ValueError:
        return None


async def search(request: Request) -> Response:
    """The search form; with `?case_id=`, on to that case's page."""
    require_operator(request)
    wanted = request.query_params.get("case_id")
    error = None
    if wanted is not None:
        case_id = _case_id(wanted)
        if case_id is not None:
            return RedirectResponse(f"/cases/{case_id}", status_code=303)
        error = f"{wanted!r} is not a case id (a case id is a UUID)"
    try:
        recent = await recent_cases(console_of(request).engine, RECENT)
    except SQLAlchemyError:
        recent, error = [], error or STORE_DOWN
    context = {"recent": recent, "error": error, "wanted": wanted or "", "when": when}
    return render(request, "cases.html", context, 400 if wanted is not None else 200)


async def page(request: Request) -> Response:
    require_operator(request)
    text = request.path_params["case_id"]
    case_id = _case_id(text)
    if case_id is None:
        message = f"{text!r} is not a case id (a case id is a UUID)"
        context = {"recent": [], "error": message, "wanted": text, "when": when}
        return render(request, "cases.html", context, 404)
    try:
        document = await case_document(request, case_id)
    except CaseNotFound as exc:
        context = {"recent": [], "error": str(exc), "wanted": text, "when": when}
        return render(request, "cases.html", context, 404)
    except SQLAlchemyError:
        context = {"recent": [], "error": STORE_DOWN, "wanted": text, "when": when}
        return render(request, "cases.html", context, 503)
    return render(request, "case.html", {"case": document, "when": when})


async def api(request: Request) -> Response:
    require_operator(request)
    text = request.path_params["case_id"]
    case_id = _case_id(text)
    if case_id is None:
        return api_error(404, f"unknown case {text!r}: a case id is a UUID")
    try:
        return JSONResponse(await case_document(request, case_id))
    except CaseNotFound as exc:
        return api_error(404, str(exc))
    except SQLAlchemyError:
        return api_error(503, STORE_DOWN)


routes: list[BaseRoute] = [
    Route("/cases", search),
    Route("/cases/{case_id}", page),
    Route("/api/cases/{case_id}", api),
]
