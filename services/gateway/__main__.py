"""`python -m services.gateway`: the HTTP gateway on `KETENBUS_GATEWAY_PORT`.

`run_service` starts the Kafka clients (retrying while Kafka is away) and
serves /healthz and /metrics on the health port. Once Kafka is reached the
gateway's own port opens, so no request is taken that could not be sent, and
the webhook dispatcher starts; on a signal the port closes first, so the
requests in flight are answered before the producer stops, then the
dispatcher stops (an attempt cut short is recorded by nobody and done again).
"""

from __future__ import annotations

import asyncio

from faststream.kafka.annotations import KafkaMessage

from services.gateway.app import create_gateway
from services.gateway.dispatch import Dispatcher, webhook_client
from services.gateway.inbox import GROUP, InboxIntake, inboxes
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.consumer.backoff import Backoff
from services.runtime.consumer.poison import PoisonGuard, dead_letter_with
from services.runtime.consumer.subscriber import batch_subscriber, records_of
from services.runtime.errors import UserError
from services.runtime.kafka.clients import make_broker
from services.runtime.process.http import http_server
from services.runtime.process.service import run_service, service_main
from services.runtime.store.engine import migrated_engine
from services.runtime.store.visits import StoreVisits

MAX_RECORDS = 500


async def _run(settings: Settings, bootstrap: str) -> None:
    registry = load_registry(settings.registry)
    engine = await migrated_engine(settings.database)
    broker = make_broker(settings, bootstrap, client_id="ketenbus-gateway")
    intake = InboxIntake(engine)
    guard = PoisonGuard("gateway", settings.max_attempts, dead_letter_with(broker), Backoff())

    @batch_subscriber(
        broker,
        *inboxes([agency.code for agency in registry.agencies]),
        group_id=GROUP,
        max_records=MAX_RECORDS,
        settings=settings,
    )
    async def on_inboxes(message: KafkaMessage) -> None:
        await guard.run(records_of(message.raw_message), intake.take, message.consumer)

    client = webhook_client()
    visits = StoreVisits(engine)
    server = http_server(
        create_gateway(settings, registry, engine, broker, client=client, visits=visits),
        settings.gateway_host,
        settings.gateway_port,
    )
    dispatcher = Dispatcher(settings, registry, engine, broker, client)
    stop_dispatch = asyncio.Event()
    running: list[asyncio.Task[None]] = []

    async def open_port() -> None:
        task = asyncio.create_task(server.serve())
        running.append(task)
        for _ in range(200):  # 10 s at most: a port that cannot be bound ends the process
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        if not server.started:
            where = f"{settings.gateway_host}:{settings.gateway_port}"
            raise UserError(f"the gateway cannot listen on {where}")
        running.append(asyncio.create_task(dispatcher.run(stop_dispatch)))

    async def close_port() -> None:
        server.should_exit = True
        stop_dispatch.set()
        await asyncio.gather(*running)

    async def after_stop() -> None:
        await client.aclose()
        visits.close()
        await engine.dispose()

    await run_service(
        "gateway",
        broker,
        settings,
        after_start=open_port,
        before_stop=close_port,
        after_stop=after_stop,
    )


def main() -> None:
    service_main("gateway", _run)


if __name__ == "__main__":
    main()
