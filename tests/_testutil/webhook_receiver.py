"""A webhook receiver on loopback, for the gateway's deliveries: a real HTTP server.

It passes the subscription handshake (allows origin `ketenbus`), answers every POST
with `status` and keeps each body. `run_until` runs a `Dispatcher` until a check holds,
bounded in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.runtime.kafka.embedded import free_port
from services.runtime.process.http import http_server


@dataclass
class WebhookReceiver:
    """Answers every POST with `status`; `received` holds the bodies, in order."""

    status: int = 200
    received: list[bytes] = field(default_factory=list)
    url: str = ""

    async def endpoint(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=200, headers={"WebHook-Allowed-Origin": "ketenbus"})
        self.received.append(await request.body())
        return Response(status_code=self.status)


@asynccontextmanager
async def webhook_receiver(status: int = 200) -> AsyncIterator[WebhookReceiver]:
    """A receiver listening on 127.0.0.1 while the block runs; stopped after it."""
    receiver = WebhookReceiver(status)
    port = free_port()
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST", "OPTIONS"])])
    server = http_server(app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # 5 s at most
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "the webhook receiver did not start in 5 s"
        receiver.url = f"http://127.0.0.1:{port}/hook"
        yield receiver
    finally:
        server.should_exit = True
        await serving


class Dispatching(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


async def run_until(
    dispatcher: Dispatching, done: Callable[[], Awaitable[bool]], *, timeout: float = 15.0
) -> None:
    """Run the dispatcher's own loop (a failed round is logged and tried again, as in the
    gateway) until `done()` holds; stop it; AssertionError after `timeout` seconds."""
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await done():
                return
            if running.done():
                running.result()  # raises what stopped it
                raise AssertionError("the dispatcher stopped before it was done")
            await asyncio.sleep(0.05)
        raise AssertionError(f"not done in {timeout} s")
    finally:
        stop.set()
        await running
