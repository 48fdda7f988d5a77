"""The console's ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from services.console.health import BusHealth
from services.runtime.settings import Settings


def create_console(
    bootstrap: str, health_targets: dict[str, str], *, settings: Settings | None = None
) -> Starlette:
    """`settings`: the Kafka security options for the health check (None: PLAINTEXT)."""
    health = BusHealth(bootstrap, health_targets, settings=settings)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await health.close()

    return Starlette(routes=[Route("/healthz", health.endpoint)], lifespan=lifespan)
