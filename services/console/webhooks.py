"""Webhook deliveries: per subscription what is pending, failing, delivered and given up,
each delivery's attempts, and replay (operators only, audited).

Stands on `services.webhook_deliveries`, as `ketenbus webhooks deliveries` and
`ketenbus webhooks replay` do, so it shows and replays what they do: never a
subscription's Authorization value or signing secret, nor a delivery's body. A
replay needs `{"confirm": true}` and says what to replay as the CLI's options
do (`delivery`, `subscription`, `since`, `until`); `services.webhook_deliveries`
logs it for the audit with the logged-in operator as `operator`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services import webhook_deliveries as wd
from services.console._pages import api_error, when
from services.console._templates import render
from services.console.access import require_operator
from services.console.state import console_of
from services.runtime.errors import UserError
from services.runtime.store.tables import DELIVERY_STATUSES

LIST_LIMIT = 200
"""How many deliveries a subscription's page shows, the most recent first."""
STORE_DOWN = "the store cannot be read"
NOTHING_TO_REPLAY = "only what was delivered or given up, to an active subscription, is replayed"


def _plain(value: Any) -> Any:
    """`value` with its ids and times as JSON has them."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _subscription(found: wd.Overview) -> dict[str, Any]:
    fields = asdict(found)
    fields["id"] = fields.pop("subscription_id")
    fields["counts"] = {**fields.pop("tally"), "total": found.tally.total}
    shown: dict[str, Any] = _plain(fields)
    return shown


async def _overview(request: Request) -> wd.Overview:
    subscription_id: UUID = request.path_params["subscription_id"]
    found = await wd.overview(console_of(request).engine, subscription_id)
    if found is None:
        raise HTTPException(404, f"no webhook subscription {subscription_id}")
    return found


def _status(request: Request) -> str | None:
    status = request.query_params.get("status") or None
    if status is not None and status not in DELIVERY_STATUSES:
        raise HTTPException(400, f"status must be one of {', '.join(DELIVERY_STATUSES)}")
    return status


async def _listing(request: Request) -> dict[str, Any]:
    found = await wd.overviews(console_of(request).engine)
    return {"subscriptions": [_subscription(s) for s in found]}


async def _deliveries(request: Request) -> dict[str, Any]:
    """One subscription and its most recent deliveries (of `?status=`, if given)."""
    status = _status(request)
    found = await _overview(request)
    recent = await wd.recent(console_of(request).engine, found.subscription_id, status, LIST_LIMIT)
    return {
        "subscription": _subscription(found),
        "status": status,
        "limit": LIST_LIMIT,
        "deliveries": [_plain(asdict(d)) for d in recent],
    }


async def _delivery(request: Request) -> dict[str, Any]:
    """One delivery of the subscription in the path, with every attempt."""
    found = await _overview(request)
    engine = console_of(request).engine
    delivery_id: int = request.path_params["delivery_id"]
    shown = await wd.delivery(engine, delivery_id)
    if shown is None or shown.subscription_id != found.subscription_id:
        raise HTTPException(
            404, f"no delivery {delivery_id} of subscription {found.subscription_id}"
        )
    return {
        "subscription": _subscription(found),
        "delivery": _plain(asdict(shown)),
        "attempts": [_plain(asdict(a)) for a in await wd.attempts(engine, delivery_id)],
    }


async def list_page(request: Request) -> Response:
    require_operator(request)
    try:
        listing = await _listing(request)
    except SQLAlchemyError:
        return render(request, "webhooks.html", {"listing": None, "error": STORE_DOWN}, 503)
    return render(request, "webhooks.html", {"listing": listing, "error": None, "when": when})


async def subscription_page(request: Request) -> Response:
    require_operator(request)
    try:
        shown = await _deliveries(request)
    except SQLAlchemyError:
        return render(request, "webhook.html", {"shown": None, "error": STORE_DOWN}, 503)
    context = {"shown": shown, "error": None, "when": when, "statuses": DELIVERY_STATUSES}
    return render(request, "webhook.html", context)


async def delivery_page(request: Request) -> Response:
    require_operator(request)
    try:
        shown = await _delivery(request)
    except SQLAlchemyError:
        return render(request, "webhook_delivery.html", {"shown": None, "error": STORE_DOWN}, 503)
    return render(request, "webhook_delivery.html", {"shown": shown, "error": None, "when": when})


async def list_api(request: Request) -> Response:
    require_operator(request)
    try:
        return JSONResponse(await _listing(request))
    except SQLAlchemyError:
        return api_error(503, STORE_DOWN)


async def subscription_api(request: Request) -> Response:
    require_operator(request)
    try:
        return JSONResponse(await _deliveries(request))
    except SQLAlchemyError:
        return api_error(503, STORE_DOWN)


async def delivery_api(request: Request) -> Response:
    require_operator(request)
    try:
        return JSONResponse(await _delivery(request))
    except SQLAlchemyError:
        return api_error(503, STORE_DOWN)


async def _confirmed_body(request: Request) -> dict[str, Any] | None:
    """The JSON object sent with `"confirm": true`; None for anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return None
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("confirm") is not True:
        return None
    return body


def _chosen(body: dict[str, Any]) -> dict[str, Any]:
    """What to replay, as `ketenbus webhooks replay`'s options say it (UserError: not so)."""
    delivery = body.get("delivery")
    if delivery is not None and (isinstance(delivery, bool) or not isinstance(delivery, int)):
        raise UserError("delivery must be a delivery id (an integer)")
    subscription = body.get("subscription") or None
    if subscription is not None:
        try:
            subscription = UUID(str(subscription))
        except ValueError:
            raise UserError(f"subscription {subscription!r} is not a UUID") from None
    times = {}
    for name in ("since", "until"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise UserError(f"{name} must be an ISO 8601 time")
        times[name] = wd.parse_moment(value, name)
    chosen = {"delivery_id": delivery, "subscription_id": subscription, **times}
    if all(value is None for value in chosen.values()):
        raise UserError("say what to replay: delivery, subscription, since or until")
    return chosen


async def replay_api(request: Request) -> Response:
    """Make the chosen finished deliveries pending again, once confirmed; audited."""
    operator = require_operator(request)
    body = await _confirmed_body(request)
    if body is None:
        return api_error(400, 'confirm the replay: send JSON {"confirm": true, ...}')
    try:
        chosen = _chosen(body)
    except UserError as exc:
        return api_error(400, str(exc))
    try:
        count = await wd.replay(console_of(request).engine, **chosen, actor=operator.name)
    except SQLAlchemyError:
        return api_error(503, STORE_DOWN)
    message = wd.replayed_message(count)
    if count == 0:
        message += f" ({NOTHING_TO_REPLAY})"
    return JSONResponse({"replayed": count, "message": message})


routes: list[BaseRoute] = [
    Route("/webhooks", list_page),
    Route("/webhooks/{subscription_id:uuid}", subscription_page),
    Route("/webhooks/{subscription_id:uuid}/deliveries/{delivery_id:int}", delivery_page),
    Route("/api/webhooks", list_api),
    Route("/api/webhooks/replay", replay_api, methods=["POST"]),
    Route("/api/webhooks/{subscription_id:uuid}", subscription_api),
    Route("/api/webhooks/{subscription_id:uuid}/deliveries/{delivery_id:int}", delivery_api),
]
