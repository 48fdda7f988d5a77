"""The console's ASGI application: the shell every page module plugs its `routes` into."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from contracts.registry import RegistryInvalid
from services.console import (
    asyncapi,
    dead_letters,
    escalations,
    login,
    metrics,
    overview,
    signals,
    tracer,
    webhooks,
)
from services.console._templates import STATIC, render
from services.console.access import AccessMiddleware
from services.console.health import BusHealth
from services.console.state import console_of, open_console
from services.console.users import Users, load_users
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.clients import client_security
from services.runtime.observability.logging import get_logger

log = get_logger("ketenbus.console")

SESSION_COOKIE = "ketenbus_session"
SESSION_MAX_AGE_S = 8 * 3600
_PAGE_MODULES = (overview, tracer, dead_letters, webhooks, signals, escalations, metrics, asyncapi)
_TITLES = {401: "Log in first", 403: "Not allowed", 404: "Not found", 405: "Not allowed"}


def create_console(
    settings: Settings,
    *,
    bootstrap: str,
    health_targets: dict[str, str],
    registry_path: Path | None = None,
) -> Starlette:
    """The console for the bus at `bootstrap`; `registry_path` overrides `settings.registry`.

    Configuration errors (the registry, the users file, Kafka credentials) are a
    UserError here, before anything is served.
    """
    security = client_security(settings)
    path = registry_path if registry_path is not None else settings.registry
    try:
        registry = load_registry(path)
    except RegistryInvalid as exc:
        raise UserError("; ".join(exc.problems)) from None
    users = load_users(settings.console_users, registry) if settings.console_users else None
    health = BusHealth(bootstrap, health_targets, settings=settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        console = open_console(
            settings,
            registry=registry,
            bootstrap=bootstrap,
            health=health,
            service_urls=dict(health_targets),
            security=security,
            users=users,
        )
        app.state.console = console
        try:
            yield
        finally:
            await console.close()

    routes: list[BaseRoute] = [
        Route("/healthz", _healthz, methods=["GET"]),
        *login.routes,
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    for module in _PAGE_MODULES:
        routes += module.routes
    app = Starlette(
        routes=routes,
        middleware=_middleware(settings, users),
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.users = users
    return app


def _middleware(settings: Settings, users: Users | None) -> list[Middleware]:
    secret = settings.console_secret
    return [
        Middleware(
            SessionMiddleware,
            secret_key=secret.get_secret_value() if secret else secrets.token_urlsafe(32),
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE_S,
            same_site="lax",
            https_only=False,  # served on loopback over plain HTTP; a TLS proxy may add Secure
        ),
        Middleware(AccessMiddleware, users=users),
    ]


async def _healthz(request: Request) -> Response:
    return await console_of(request).health.endpoint(request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    title = _TITLES.get(exc.status_code, "Something went wrong")
    context = {"status": exc.status_code, "title": title, "message": exc.detail}
    return render(request, "error.html", context, status=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("console request failed", path=request.url.path, error=type(exc).__name__)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "internal error; see the console's log"}, status_code=500)
    context = {"status": 500, "title": "Something went wrong", "message": "See the console's log."}
    return render(request, "error.html", context, status=500)
