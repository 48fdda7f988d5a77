"""The gateway benchmarks' own processes: `python -m bench._gateway_http ROLE [options]`.

- `relay`: the ingress floor. One Starlette route on uvicorn, served as the
  gateway is (`services.runtime.process.http.http_server`, on 127.0.0.1), that
  reads the body, takes the case id from its `subject` as the key and produces
  it to the agency's outbox with a producer set as the gateway's (acks=all,
  linger 5 ms, 256 KB batches), answering 202 once Kafka acknowledged it. A
  batch (`application/cloudevents-batch+json`) is split into its events, each
  produced compact and keyed by its own case, the acks awaited together. No
  token, no checks, no store: what no HTTP-to-Kafka relay can skip.
- `receiver`: the webhooks' loopback receiver. Passes the abuse-protection
  handshake, answers 200 to every POST and counts them (`GET /count`).
- `dispatcher`: the gateway's own `Dispatcher` (its `run` loop, settings from
  the environment as the gateway process has them) over the pending deliveries
  in the store, until it has attempted `--expect` of them.
- `sender`: the webhooks' floor. The same bodies, read from the same store
  before the clock starts, POSTed bare (Content-Type only) with the same
  client and concurrency to the same receiver.

A sender prints `ready` once set up, starts on a `go` line on stdin (so its
start-up is never timed) and prints one JSON line: `seconds` from its first
request (the dispatcher: its first round) to its last answer, `cpu_s` of the
whole process over that time, and `count` of requests answered 2xx
(attempted, for the dispatcher). Every role stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench._gateway_load import httpx_post, post_all
from contracts.envelope import CONTENT_TYPE
from contracts.registry import AgencyRegistry
from services.gateway.dispatch import ROUND, Dispatcher, webhook_client
from services.gateway.intake import BATCH, media_type
from services.gateway.subscriptions import ORIGIN
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import PRODUCER_BATCH_BYTES, make_broker
from services.runtime.observability.logging import configure
from services.runtime.process.heap import freeze_long_lived
from services.runtime.process.http import http_server
from services.runtime.store.engine import make_engine, migrated_engine
from services.runtime.store.tables import webhook_deliveries


def _stop_on_signal(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _serve(app: Starlette, port: int) -> None:
    """Serve `app` on 127.0.0.1:`port` until SIGTERM; the requests in flight are answered."""
    stop = asyncio.Event()
    _stop_on_signal(stop)
    server = http_server(app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([serving, stopped], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopped.cancel()
    await serving


def relay_app(producer: AIOKafkaProducer, topic: str) -> Starlette:
    """The floor's one route: the body to `topic`, keyed by its case, 202 after the acks."""

    async def take(request: Request) -> Response:
        body = await request.body()
        if media_type(request.headers.get("content-type")) == BATCH:
            futures = [
                await producer.send(topic, orjson.dumps(event), key=event["subject"].encode())
                for event in orjson.loads(body)
            ]
            await asyncio.gather(*futures)
        else:
            key = orjson.loads(body)["subject"].encode()
            await producer.send_and_wait(topic, body, key=key)
        return Response(status_code=202)

    return Starlette(routes=[Route("/v1/events", take, methods=["POST"])])


async def _relay(port: int, bootstrap: str, topic: str) -> None:
    # As the gateway's producer (`make_broker`): every in-sync replica, 5 ms linger, 256 KB.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=PRODUCER_BATCH_BYTES,
        request_timeout_ms=15_000,
    )
    await producer.start()
    try:
        await _serve(relay_app(producer, topic), port)
    finally:
        await producer.stop()


def receiver_app() -> Starlette:
    """200 to every POST (counted), the handshake to OPTIONS, the count at GET /count."""
    received = [0]

    async def hook(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=200, headers={"WebHook-Allowed-Origin": ORIGIN})
        await request.body()
        received[0] += 1
        return Response(status_code=200)

    async def count(_: Request) -> JSONResponse:
        return JSONResponse({"received": received[0]})

    return Starlette(
        routes=[
            Route("/hook", hook, methods=["POST", "OPTIONS"]),
            Route("/count", count, methods=["GET"]),
        ]
    )


class _Clock:
    """Wall and CPU time of this process (all its threads) over one measured window."""

    def __init__(self) -> None:
        self.started: tuple[float, float] | None = None
        self.ended: tuple[float, float] | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = (time.perf_counter(), time.process_time())

    def end(self) -> None:
        if self.ended is None:
            self.ended = (time.perf_counter(), time.process_time())

    def report(self, count: int) -> str:
        self.end()
        assert self.started is not None
        assert self.ended is not None
        seconds, cpu_s = (b - a for a, b in zip(self.started, self.ended, strict=True))
        return json.dumps({"seconds": seconds, "cpu_s": cpu_s, "count": count})


async def _go() -> None:
    """Say ready, then wait for the parent's `go` (stdin, read off the event loop)."""
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"expected go, read {line!r}")


class _CountedDispatcher(Dispatcher):
    """The gateway's dispatcher, timed from its first round until `expect` were attempted."""

    def __init__(
        self,
        settings: Settings,
        registry: AgencyRegistry,
        engine: AsyncEngine,
        broker: KafkaBroker,
        client: httpx.AsyncClient,
        *,
        expect: int,
        stop: asyncio.Event,
    ) -> None:
        super().__init__(settings, registry, engine, broker, client)
        self.expect = expect
        self.stop = stop
        self.attempted = 0
        self.clock = _Clock()

    async def round(self, size: int = ROUND) -> int:
        self.clock.start()
        done = await super().round(size)
        self.attempted += done
        if self.attempted >= self.expect:
            self.clock.end()
            self.stop.set()
        return done


async def _dispatcher(expect: int, timeout: float) -> None:
    settings = Settings()
    assert settings.kafka_bootstrap is not None
    # As the gateway process sets them up (`services.gateway.__main__`).
    engine = await migrated_engine(settings.database)
    registry = load_registry(settings.registry)
    broker = make_broker(settings, settings.kafka_bootstrap, client_id="ketenbus-gateway")
    client = webhook_client()
    stop = asyncio.Event()
    dispatcher = _CountedDispatcher(
        settings, registry, engine, broker, client, expect=expect, stop=stop
    )
    try:
        await broker.start()
        await _go()
        running = asyncio.create_task(dispatcher.run(stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout)
        stop.set()
        await running
        print(dispatcher.clock.report(dispatcher.attempted), flush=True)
    finally:
        await client.aclose()
        await broker.stop()
        await engine.dispose()


async def _bodies(database: str) -> list[bytes]:
    engine = make_engine(database)
    query = select(webhook_deliveries.c.body).order_by(webhook_deliveries.c.id)
    try:
        async with engine.connect() as connection:
            return [body.encode() for body in (await connection.execute(query)).scalars()]
    finally:
        await engine.dispose()


async def _sender(database: str, url: str, concurrency: int, timeout: float) -> None:
    # The dispatcher's process logs as the gateway's does, httpx's line per POST included;
    # a bare sender has no such work.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    bodies = await _bodies(database)
    # The client made as the gateway makes its own (`services.gateway.__main__`), so the
    # two sides differ in what they do around each POST, not in how they POST.
    async with webhook_client() as client:
        await _go()
        clock = _Clock()
        clock.start()
        post = httpx_post(client, url, {"content-type": CONTENT_TYPE})
        answers = await asyncio.wait_for(post_all([post] * concurrency, bodies), timeout)
        clock.end()
    print(clock.report(sum(1 for answer in answers if 200 <= answer.status < 300)), flush=True)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench._gateway_http")
    roles = parser.add_subparsers(dest="role", required=True)
    relay = roles.add_parser("relay")
    relay.add_argument("--port", type=int, required=True)
    relay.add_argument("--bootstrap", required=True)
    relay.add_argument("--topic", required=True)
    receiver = roles.add_parser("receiver")
    receiver.add_argument("--port", type=int, required=True)
    dispatcher = roles.add_parser("dispatcher")
    dispatcher.add_argument("--expect", type=int, required=True)
    dispatcher.add_argument("--timeout", type=float, required=True)
    sender = roles.add_parser("sender")
    sender.add_argument("--database", required=True)
    sender.add_argument("--url", required=True)
    sender.add_argument("--concurrency", type=int, required=True)
    sender.add_argument("--timeout", type=float, required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    arguments: Any = _arguments(argv)
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    freeze_long_lived()  # as `service_main` does for the gateway: the modules are imported
    if arguments.role == "relay":
        work = _relay(arguments.port, arguments.bootstrap, arguments.topic)
    elif arguments.role == "receiver":
        work = _serve(receiver_app(), arguments.port)
    elif arguments.role == "dispatcher":
        work = _dispatcher(arguments.expect, arguments.timeout)
    else:
        work = _sender(arguments.database, arguments.url, arguments.concurrency, arguments.timeout)
    try:
        asyncio.run(work)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
