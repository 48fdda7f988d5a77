"""What the console holds for its whole life: settings, registry, database, producer, health.

Built in the app's lifespan and closed at shutdown. A page module that needs
something long-lived (an admin client, a cache) creates it on first use and
registers its closing with `Console.on_close`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException
from starlette.requests import Request

from contracts.registry import AgencyRegistry
from services.console.health import BusHealth
from services.console.users import Users
from services.runtime.config.settings import Settings
from services.runtime.observability.logging import get_logger
from services.runtime.store.engine import make_engine

log = get_logger("ketenbus.console")

_RETRY_S = 2.0


class _Closable(Protocol):
    async def close(self) -> None: ...


_Shared = TypeVar("_Shared", bound=_Closable)


@dataclass
class Console:
    """The console's long-lived state; `console_of(request)` hands it to a route."""

    settings: Settings
    registry: AgencyRegistry
    engine: AsyncEngine
    bootstrap: str
    producer: AIOKafkaProducer
    health: BusHealth
    service_urls: dict[str, str]
    users: Users | None = None
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _shared: dict[str, _Closable] = field(default_factory=dict)
    _producer_up: asyncio.Event = field(default_factory=asyncio.Event)
    _producer_task: asyncio.Task[None] | None = None

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await `callback` at shutdown (last registered, first closed)."""
        self._closers.append(callback)

    def shared(self, name: str, make: Callable[[], _Shared]) -> _Shared:
        """The console's one `name` (a sampler, a feed), made on first use, closed with it.

        One per console, not per viewer: every open page reads the same figures.
        """
        found = self._shared.get(name)
        if found is None:
            found = self._shared[name] = make()
            self.on_close(found.close)
        return cast("_Shared", found)

    async def started_producer(self, timeout: float = 5.0) -> AIOKafkaProducer:
        """The producer once it has reached the broker; 503 if it has not within `timeout`."""
        try:
            await asyncio.wait_for(self._producer_up.wait(), timeout)
        except TimeoutError:
            raise HTTPException(503, "the Kafka broker is not reachable") from None
        return self.producer

    def start(self) -> None:
        """Start the producer in the background: /healthz answers even while Kafka is down."""
        self._producer_task = asyncio.create_task(self._start_producer())

    async def _start_producer(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.producer.start()
            except Exception as exc:  # noqa: BLE001 - any failure: try again, the reason logged
                if attempt == 1:
                    log.warning(
                        "console producer cannot reach the broker; retrying", error=str(exc)
                    )
                await asyncio.sleep(_RETRY_S)
                continue
            self._producer_up.set()
            return

    async def close(self) -> None:
        for callback in reversed(self._closers):
            try:
                await callback()
            except Exception:  # one failing closer must not keep the rest open
                log.exception("console: closing a resource failed")
        if self._producer_task is not None:
            self._producer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer_task
        await self.producer.stop()
        await self.health.close()
        await self.engine.dispose()


def open_console(
    settings: Settings,
    *,
    registry: AgencyRegistry,
    bootstrap: str,
    health: BusHealth,
    service_urls: dict[str, str],
    security: dict[str, Any],
    users: Users | None,
) -> Console:
    """The Console, its producer starting (call inside the running event loop)."""
    # Not idempotent, as make_broker's producers: the embedded broker cannot hand out
    # producer ids (InitProducerId fails), and consumers dedupe on the event id anyway.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="ketenbus-console",
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=15_000,
        **security,
    )
    console = Console(
        settings=settings,
        registry=registry,
        engine=make_engine(settings.database),
        bootstrap=bootstrap,
        producer=producer,
        health=health,
        service_urls=service_urls,
        users=users,
    )
    console.start()
    return console


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console
