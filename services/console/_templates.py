"""Pages: Jinja2 templates (autoescaped) in services/console/templates, each extending base.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from services.console.access import PRINCIPAL_KEY

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# Everything is served from the console itself: no script but its own files, and
# nothing may frame it. Scripts are files under /static (no inline <script>).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """Template `name` with `context`, plus `request` and `principal` (None when logged out)."""
    page = _ENV.get_template(name).render(
        {**context, "request": request, "principal": request.scope.get(PRINCIPAL_KEY)}
    )
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)
