"""Who is asking: every console request is authenticated here, except the public paths.

A browser logs in once (`POST /login`) and carries a signed session cookie; a
script sends `Authorization: Bearer <token>`. Unauthenticated, a page redirects
to `/login?next=...` and an API path answers 401 `{"error": ...}`. Pages and
APIs then ask `principal_of(request)` or `require_operator(request)`.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.console.principal import Principal
from services.console.users import Users

PRINCIPAL_KEY = "ketenbus.principal"
"""The ASGI scope key the middleware puts the Principal under."""

PUBLIC_PATHS = frozenset({"/healthz", "/login", "/logout", "/metrics"})
PUBLIC_PREFIXES = ("/static/", "/docs/asyncapi")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def principal_of(request: Request) -> Principal:
    """The authenticated caller (the middleware has let only those through)."""
    principal = request.scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise HTTPException(401, "authentication required")
    return principal


def require_operator(request: Request) -> Principal:
    """The caller if an operator; 403 for an escalation team member."""
    principal = principal_of(request)
    if principal.role != "operator":
        raise HTTPException(403, "operators only: a team member sees its escalations only")
    return principal


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def local_path(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default`: `next` is no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


class AccessMiddleware:
    """Authenticates each HTTP request; inside Starlette's SessionMiddleware."""

    def __init__(self, app: ASGIApp, users: Users | None) -> None:
        self.app = app
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._authenticate(request)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _authenticate(self, request: Request) -> Response | None:
        """None when `request` may go on (its Principal set); else the refusal."""
        api = request.url.path.startswith("/api/")
        if self.users is None:
            return _refuse(request, api, "no console users are configured (KETENBUS_CONSOLE_USERS)")
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            principal = self.users.by_token(credential.strip())
            if principal is None:
                return JSONResponse({"error": "unknown or revoked token"}, status_code=401)
        else:
            session = request.session
            principal = self.users.by_session(session.get("user"), session.get("stamp"))
            if principal is None:
                session.clear()
                return _refuse(request, api, "authentication required: log in or send a token")
            if request.method not in _SAFE_METHODS and not same_origin(request):
                # The cookie rides along with any request the browser makes; a form
                # posted from another site must not act in the operator's name.
                return JSONResponse({"error": "cross-site request refused"}, status_code=403)
        request.scope[PRINCIPAL_KEY] = principal
        return None


def _refuse(request: Request, api: bool, reason: str) -> Response:
    if api:
        return JSONResponse({"error": reason}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def same_origin(request: Request) -> bool:
    """No Origin header (not a browser's cross-site request), or this host's own."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")
