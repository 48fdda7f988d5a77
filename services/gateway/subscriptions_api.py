"""`/v1/subscriptions`: an agency makes, reads and ends its webhooks over HTTP.

Notificaties-style fields (`callbackUrl`, `auth`), filters on event types
(`types`) and Notificaties channels (`channels`), and the delivery `format`
(`cloudevents` or `notificaties`); the answer shows the signing secret once, when the
subscription is made, and never the `auth` it sends.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contracts.registry import AgencyRegistry
from services.gateway import subscriptions
from services.gateway.ingress import agency_of_request
from services.gateway.problems import Problem
from services.runtime.store.engine import write_transaction


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    callback_url: str = Field(alias="callbackUrl", max_length=2000)
    auth: str | None = Field(default=None, max_length=2000)
    types: list[str] = Field(default_factory=list, max_length=50)
    channels: list[Annotated[str, StringConstraints(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=50
    )
    format: Literal["cloudevents", "notificaties"] = "cloudevents"


class SubscriptionsApi:
    def __init__(
        self, registry: AgencyRegistry, engine: AsyncEngine, client: httpx.AsyncClient | None
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.client = client

    async def create(self, request: Request) -> Response:
        try:
            agency = await agency_of_request(self.engine, request)
            wanted = _body(await request.body())
            try:
                made = await self._subscribe(agency, wanted)
            except subscriptions.SubscriptionRefused as exc:
                raise Problem(
                    400, "subscription-refused", "Subscription refused", str(exc)
                ) from None
        except Problem as problem:
            return problem.response()
        return JSONResponse({**made.public(), "signingSecret": made.signing_secret}, 201)

    async def _subscribe(self, agency: str, wanted: NewSubscription) -> subscriptions.Subscription:
        async with contextlib.AsyncExitStack() as stack:
            client: httpx.AsyncClient = (
                self.client
                if self.client is not None
                else await stack.enter_async_context(httpx.AsyncClient(timeout=10))
            )
            return await subscriptions.subscribe(
                self.engine,
                self.registry,
                client,
                agency=agency,
                callback_url=wanted.callback_url,
                authorization=wanted.auth,
                event_types=wanted.types,
                channels=wanted.channels,
                delivery_format=wanted.format,
            )

    async def listing(self, request: Request) -> Response:
        try:
            agency = await agency_of_request(self.engine, request)
        except Problem as problem:
            return problem.response()
        found = await subscriptions.listing(self.engine, agency)
        return JSONResponse([s.public() for s in found])

    async def remove(self, request: Request) -> Response:
        try:
            agency = await agency_of_request(self.engine, request)
            found = await _own(self.engine, request.path_params["id"], agency)
            async with write_transaction(self.engine) as connection:
                await subscriptions.end(
                    connection, found.subscription_id, "ended by the agency (DELETE)"
                )
        except Problem as problem:
            return problem.response()
        return Response(status_code=204)


def _body(raw: bytes) -> NewSubscription:
    try:
        return NewSubscription.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(body)"
        raise Problem(
            400, "invalid-subscription", "Invalid subscription", f"{where}: {first['msg']}"
        ) from None


async def _own(engine: AsyncEngine, text: str, agency: str) -> Any:
    try:
        subscription_id = uuid.UUID(text)
    except ValueError:
        raise _missing(text) from None
    found = await subscriptions.find(engine, subscription_id)
    if found is None or found.agency != agency:
        raise _missing(text)
    return found


def _missing(text: str) -> Problem:
    return Problem(404, "no-such-subscription", "No such subscription", f"no subscription {text}")
