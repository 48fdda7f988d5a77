"""RFC 9457 problem details: every refusal of the gateway says what is wrong in one shape."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

MEDIA_TYPE = "application/problem+json"
BASE = "https://ketenbus.nl/problems/"
"""Each problem's `type` is this followed by its code, documented in docs/gateway.md."""


class Problem(Exception):
    """A refusal, raised anywhere in a request and answered as problem+json."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JSONResponse:
        body = {
            "type": BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }
        return JSONResponse(body, self.status, headers=self.headers, media_type=MEDIA_TYPE)
