"""The fault suite's HTTP parts: a webhook receiver on loopback, waiting for a gateway to
answer, and an agency that posts its events to whichever of several gateways answers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.intake import BATCH
from services.runtime.kafka.embedded import free_port
from services.runtime.process.http import http_server
from tests.faults.harness import Service


async def until_answering(client: httpx.AsyncClient, service: Service, timeout: float) -> None:
    """Poll the gateway `client` talks to until it serves its OpenAPI document."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert service.alive, service.log_tail()
        try:
            if (await client.get("/openapi.json")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"the gateway did not answer in {timeout} s:\n{service.log_tail()}")


class Receiver:
    """A webhook receiver on loopback: allows the bus in the handshake, takes every POST.

    With `kill_at` and `kill` set, the POST that brings it to `kill_at` distinct events calls
    `kill` before it is answered: the gateway dies with that round's other POSTs in flight,
    however fast it delivers (a test polling the count would see it only later)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.posted = asyncio.Event()
        self.kill_at: int | None = None
        self.kill: Callable[[], None] = lambda: None
        self.at_kill: int | None = None
        self.killed = asyncio.Event()

    async def until(self, reached: Callable[[set[str]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not reached(set(self.ids)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(set(self.ids))} received in {timeout} s")
            self.posted.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.posted.wait(), min(left, 0.5))

    async def endpoint(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=200, headers={"WebHook-Allowed-Origin": "ketenbus"})
        await request.body()
        self.ids.append(request.headers["webhook-id"])
        self.posted.set()
        if self.kill_at is not None and len(set(self.ids)) >= self.kill_at:
            self.kill_at = None
            self.at_kill = len(set(self.ids))
            self.kill()
            self.killed.set()
        return Response(status_code=204)


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[int]:
    """`receiver` served at /hook on a free loopback port (yielded) while in this block."""
    port = free_port()
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST", "OPTIONS"])])
    server = http_server(app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    try:
        yield port
    finally:
        server.should_exit = True
        await serving


class Poster:
    """An agency that posts its events in batches to several gateways (as behind a load
    balancer): each batch to the next gateway in turn, and to the one after it when a
    gateway does not answer. Answered ids in `answered`; requests that failed counted."""

    def __init__(self, gateways: Sequence[Service], token: str, *, attempts: int = 60) -> None:
        self.clients = [
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{g.gateway_port}", timeout=10)
            for g in gateways
        ]
        self.headers = {"content-type": BATCH, "authorization": f"Bearer {token}"}
        self.attempts = attempts
        self.turn = 0
        self.answered: list[str] = []
        self.failed = 0

    async def post(self, events: Sequence[bytes]) -> None:
        body = b"[" + b",".join(events) + b"]"
        for _ in range(self.attempts):  # bounded: ~6 s of gateways all away
            client = self.clients[self.turn % len(self.clients)]
            self.turn += 1
            try:
                response = await client.post("/v1/events", content=body, headers=self.headers)
            except httpx.HTTPError:
                response = None
            if response is None or response.status_code >= 500:
                self.failed += 1
                await asyncio.sleep(0.1)
                continue
            assert 202 == response.status_code, response.text
            self.answered += response.json()["accepted"]
            return
        raise AssertionError(f"no gateway answered a batch in {self.attempts} tries")

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
