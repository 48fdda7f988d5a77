"""The gateway's HTTP application: events and Notificaties in, subscriptions, its OpenAPI."""

from __future__ import annotations

import httpx
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contracts.registry import AgencyRegistry
from services.gateway.ingress import Ingress
from services.gateway.notificaties import Notificaties
from services.gateway.openapi import DOCUMENT
from services.gateway.subscriptions_api import SubscriptionsApi
from services.runtime.config.settings import Settings
from services.runtime.store.visits import StoreVisits


async def _openapi(_: Request) -> JSONResponse:
    return JSONResponse(DOCUMENT)


def create_gateway(
    settings: Settings,
    registry: AgencyRegistry,
    engine: AsyncEngine,
    broker: KafkaBroker,
    *,
    client: httpx.AsyncClient | None = None,
    visits: StoreVisits | None = None,
) -> Starlette:
    """The gateway app; `broker` must be started before the first request is served.

    `client`: what the subscription handshake calls receivers with (None: one per call).
    `visits`: how ingress visits `engine`'s store (None: its own, left to the collector);
    the caller closes one it passes, after the app has stopped.
    """
    ingress = Ingress(settings, registry, visits or StoreVisits(engine), broker)
    api = SubscriptionsApi(registry, engine, client)
    notificaties = Notificaties(registry, engine, broker, ingress)
    return Starlette(
        routes=[
            Route("/v1/events", ingress.endpoint, methods=["POST"]),
            Route("/api/v1/notificaties", notificaties.endpoint, methods=["POST"]),
            Route("/v1/subscriptions", api.create, methods=["POST"]),
            Route("/v1/subscriptions", api.listing, methods=["GET"]),
            Route("/v1/subscriptions/{id}", api.remove, methods=["DELETE"]),
            Route("/openapi.json", _openapi, methods=["GET"]),
        ]
    )
