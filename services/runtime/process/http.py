"""An HTTP server that runs beside other work in one event loop."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process's own signal handlers decide when to stop; uvicorn must not take them.
        yield


def http_server(app: ASGIApp, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for `app` that leaves SIGINT and SIGTERM to its caller."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    return _EmbeddedServer(config)
