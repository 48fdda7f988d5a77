"""`python -m services.gateway`: the HTTP gateway on `KETENBUS_GATEWAY_PORT`.

`run_service` starts the Kafka producer (retrying while Kafka is away) and
serves /healthz and /metrics on the health port; the gateway's own port opens
once Kafka is reached, so no request is taken that could not be sent, and
closes first on a signal, so the requests in flight finish before the producer
stops.
"""

from __future__ import annotations

import asyncio

from services.gateway.app import create_gateway
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.clients import make_broker
from services.runtime.process.http import http_server
from services.runtime.process.service import run_service, service_main
from services.runtime.store.engine import migrated_engine


async def _run(settings: Settings, bootstrap: str) -> None:
    registry = load_registry(settings.registry)
    engine = await migrated_engine(settings.database)
    broker = make_broker(settings, bootstrap, client_id="ketenbus-gateway")
    server = http_server(
        create_gateway(settings, registry, engine, broker),
        settings.gateway_host,
        settings.gateway_port,
    )
    serving: list[asyncio.Task[None]] = []

    async def open_port() -> None:
        task = asyncio.create_task(server.serve())
        serving.append(task)
        for _ in range(200):  # 10 s at most: a port that cannot be bound ends the process
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        if not server.started:
            where = f"{settings.gateway_host}:{settings.gateway_port}"
            raise UserError(f"the gateway cannot listen on {where}")

    async def close_port() -> None:
        server.should_exit = True
        await asyncio.gather(*serving)

    await run_service(
        "gateway",
        broker,
        settings,
        after_start=open_port,
        before_stop=close_port,
        after_stop=engine.dispose,
    )


def main() -> None:
    service_main("gateway", _run)


if __name__ == "__main__":
    main()
