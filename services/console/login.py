"""Logging in and out: `GET/POST /login`, `GET /logout`, and `GET /api/whoami`.

A refused login is logged with whether the name is known, and the name only if
it is (an unknown name may be someone's personal data, or their password typed
in the wrong field); never the password. Failed logins are limited per name
and per client address (`services.console._login_guard`): beyond the limit the
answer is 429 with `Retry-After`, and the password is not even checked.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from services.console._login_guard import LoginGuard
from services.console._templates import render
from services.console.access import local_path, principal_of, same_origin
from services.console.state import console_of
from services.console.users import Users
from services.runtime.observability.logging import get_logger

log = get_logger("ketenbus.console.login")

_MAX_FORM = 8 * 1024


def _guard(request: Request) -> LoginGuard:
    guard: LoginGuard | None = getattr(request.app.state, "login_guard", None)
    if guard is None:
        # One per app, made on first use from the console's settings.
        settings = console_of(request).settings
        guard = LoginGuard(settings.console_login_attempts, settings.console_login_window_s)
        request.app.state.login_guard = guard
    return guard


def _users(request: Request) -> Users | None:
    users: Users | None = request.app.state.users
    return users


async def login_page(request: Request) -> Response:
    return _page(request, next_=request.query_params.get("next"))


def _page(
    request: Request,
    *,
    next_: str | None,
    username: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "configured": _users(request) is not None,
        "next": local_path(next_, default=""),
        "username": username,
        "error": error,
    }
    return render(request, "login.html", context, status=status)


async def login(request: Request) -> Response:
    users = _users(request)
    if users is None:
        return _page(request, next_=None, status=503)
    if not same_origin(request):
        # Another site must not log a browser in under an account of its choosing.
        return _page(request, next_=None, error="Log in from the console itself.", status=403)
    body = await _bounded_body(request)
    if body is None:
        return _page(request, next_=None, error="The form is too large.", status=413)
    form = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    username = form.get("username", [""])[0].strip()
    password = form.get("password", [""])[0]
    next_ = form.get("next", [""])[0]
    guard = _guard(request)
    client = request.client.host if request.client else "unknown"
    wait = await guard.wait_s(username, client)
    if wait is not None:
        known = users.known(username)
        log.warning(
            "console login throttled",
            known_user=known,
            retry_after_s=wait,
            **({"user": username} if known else {}),
        )
        throttled = _page(
            request,
            next_=next_,
            username=username,
            error=f"Too many failed logins for this name or from this address; try again in "
            f"{wait} s.",
            status=429,
        )
        throttled.headers["Retry-After"] = str(wait)
        return throttled
    principal = await to_thread.run_sync(users.login, username, password)
    if principal is None:
        await guard.failed(username, client)
        known = users.known(username)
        log.warning(
            "console login refused", known_user=known, **({"user": username} if known else {})
        )
        return _page(
            request,
            next_=next_,
            username=username,
            error="Wrong user name or password.",
            status=401,
        )
    await guard.succeeded(username, client)
    request.session.clear()
    request.session.update({"user": principal.name, "stamp": users.stamp(principal.name)})
    log.info("console login", user=principal.name, role=principal.role)
    start = "/" if principal.role == "operator" else "/escalations"
    target = local_path(next_, default=start)
    # A team member may not see the overview: "/" means "where I start".
    return RedirectResponse(start if target == "/" else target, status_code=303)


async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def whoami(request: Request) -> Response:
    principal = principal_of(request)
    return JSONResponse(
        {"name": principal.name, "role": principal.role, "team": principal.team_label}
    )


async def _bounded_body(request: Request) -> bytes | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return None
    return body


routes: list[BaseRoute] = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["GET"]),
    Route("/api/whoami", whoami, methods=["GET"]),
]
