"""Policy-signals report (issue 3) with a server-rendered chart.

`GET /api/signals[?since=YYYY-MM-DD]` answers `services.casefile.signals.
PolicySignals` as JSON, the same object `ketenbus signals --json` prints;
`GET /signals` shows it with an inline SVG bar chart of escalations by cause
(`_chart`). Operators only.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.casefile.signals import PolicySignals, policy_signals
from services.console._chart import bar_chart
from services.console._pages import api_error, when
from services.console._templates import render
from services.console.access import require_operator
from services.console.state import console_of
from services.runtime.errors import UserError
from services.runtime.text.terminal import format_duration, parse_since

STORE_DOWN = "the case store cannot be read"


async def _report(request: Request) -> PolicySignals:
    """The report for `?since=` (UserError: not a date)."""
    since: date | None = parse_since(request.query_params.get("since") or None)
    return await policy_signals(console_of(request).engine, since)


async def page(request: Request) -> Response:
    require_operator(request)
    since = request.query_params.get("since") or ""
    try:
        report = await _report(request)
    except UserError as exc:
        return render(
            request, "signals.html", {"report": None, "error": str(exc), "since": since}, 400
        )
    except SQLAlchemyError:
        return render(
            request, "signals.html", {"report": None, "error": STORE_DOWN, "since": since}, 503
        )
    chart = bar_chart(
        "Escalations by cause",
        [(cause.cause or "(unknown)", cause.escalations) for cause in report.by_cause],
        chart_id="signals-by-cause",
        testid="signals-chart",
    )
    context = {
        "report": report,
        "error": None,
        "since": since,
        "chart": chart,
        "duration": format_duration,
        "when": when,
    }
    return render(request, "signals.html", context)


async def api(request: Request) -> Response:
    require_operator(request)
    try:
        report = await _report(request)
    except UserError as exc:
        return api_error(400, str(exc))
    except SQLAlchemyError:
        return api_error(503, STORE_DOWN)
    return JSONResponse(report.model_dump(mode="json"))


routes: list[BaseRoute] = [Route("/signals", page), Route("/api/signals", api)]
