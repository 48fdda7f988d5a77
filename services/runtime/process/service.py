"""Run one service process: its Kafka broker, /healthz and /metrics, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from faststream.kafka import KafkaBroker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import kafka_unreachable
from services.runtime.observability.logging import get_logger
from services.runtime.observability.metrics import metrics_endpoint, metrics_registry, setup_tracing
from services.runtime.process.heap import freeze_long_lived
from services.runtime.process.http import http_server

log = get_logger("ketenbus.service")


class ServiceHealth:
    """What a service says about itself on /healthz."""

    def __init__(self, name: str, broker: KafkaBroker) -> None:
        self.name = name
        self.broker = broker
        self.state = "starting"
        self._broker_ok = False
        self._checked_at = 0.0

    async def broker_up(self) -> bool:
        # A ping is a network round trip; a probe every second need not pay it every time.
        if time.monotonic() - self._checked_at > 2.0:
            self._broker_ok = await self.broker.ping(timeout=2.0)
            self._checked_at = time.monotonic()
        return self._broker_ok

    async def endpoint(self, _: Request) -> JSONResponse:
        broker = "up" if await self.broker_up() else "down"
        healthy = self.state == "running" and broker == "up"
        body = {"service": self.name, "state": self.state, "broker": broker}
        return JSONResponse(body, status_code=200 if healthy else 503)


def health_app(health: ServiceHealth) -> Starlette:
    """A service's health server: `GET /healthz`, and `GET /metrics` in Prometheus's format."""
    return Starlette(
        routes=[
            Route("/healthz", health.endpoint),
            Route("/metrics", metrics_endpoint(metrics_registry(health.broker))),
        ]
    )


STOP_STEP_S = 5.0
"""Seconds each shutdown step may take."""


async def run_service(
    name: str,
    broker: KafkaBroker,
    settings: Settings,
    *,
    before_start: Callable[[], Awaitable[None]] | None = None,
    after_start: Callable[[], Awaitable[None]] | None = None,
    before_stop: Callable[[], Awaitable[None]] | None = None,
    after_stop: Callable[[], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Start `broker` (retrying while Kafka is not there yet), serve health, stop on a signal.

    The health server answers `GET /healthz` and `GET /metrics` (the broker's
    Prometheus registry, when `make_broker` built it). `after_start` runs once
    the broker runs, `before_stop` before it stops (if it ran), `after_stop` last.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    health = ServiceHealth(name, broker)
    server = http_server(health_app(health), settings.health_host, settings.health_port)
    serving = asyncio.create_task(server.serve())
    try:
        if before_start is not None:
            await before_start()
        await _start_with_retry(name, broker, settings, stop)
        if not stop.is_set():
            if after_start is not None:
                await after_start()
            health.state = "running"
            log.info("service started", service=name)
            await stop.wait()
        health.state = "stopping"
        log.info("service stopping", service=name)
    finally:
        if before_stop is not None and health.state == "stopping":
            await _bounded(name, "before stop", before_stop())
        # Bounded: a process told to stop must stop. What is not committed comes again.
        await _bounded(name, "broker stop", broker.stop())
        if after_stop is not None:
            await _bounded(name, "clean-up", after_stop())
        server.should_exit = True
        await serving


async def _bounded(name: str, step: str, work: Awaitable[None]) -> None:
    try:
        await asyncio.wait_for(work, STOP_STEP_S)
    except TimeoutError:
        log.exception("shutdown step timed out", service=name, step=step, timeout_s=STOP_STEP_S)


async def _start_with_retry(
    name: str, broker: KafkaBroker, settings: Settings, stop: asyncio.Event
) -> None:
    bootstrap = settings.kafka_bootstrap
    delay = 0.5
    while not stop.is_set():
        problem = await kafka_unreachable(bootstrap, settings=settings) if bootstrap else None
        if problem is None:
            try:
                await broker.start()
            except Exception as exc:  # noqa: BLE001 - any start failure is retried; the reason is logged
                problem = f"{type(exc).__name__}: {exc}"
                await broker.stop()
            else:
                return
        log.warning("broker not reachable, retrying", service=name, error=problem, retry_in=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 10.0)


def service_main(name: str, run: Callable[[Settings, str], Coroutine[Any, Any, None]]) -> None:
    """The `python -m services.<name>` entry point: settings, logging, then `run`.

    Every problem a user can act on (no bootstrap, an invalid registry) ends the
    process with one line naming the service, never a traceback.
    """
    from contracts.registry import RegistryInvalid
    from services.runtime.config.production import refuse_unsafe_defaults
    from services.runtime.errors import UserError
    from services.runtime.observability.logging import configure

    settings = Settings()
    configure(settings.log_level, settings.log_format)
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        sys.exit(
            f"ketenbus-{name}: KETENBUS_KAFKA_BOOTSTRAP is not set; set it to the Kafka "
            "bootstrap servers, or run the whole bus with `ketenbus up`"
        )
    try:
        refuse_unsafe_defaults(settings)
    except UserError as exc:
        sys.exit(f"ketenbus-{name}: {exc}")
    tracing = setup_tracing(settings, name)
    freeze_long_lived()  # the service's modules are imported: they live as long as it does
    try:
        asyncio.run(run(settings, bootstrap))
    except (RegistryInvalid, UserError) as exc:
        sys.exit(f"ketenbus-{name}: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        if tracing is not None:
            # Exports the spans still buffered.
            tracing.shutdown()
