"""`ketenbus broker`: the embedded Kafka-compatible broker on its own."""

from __future__ import annotations

import asyncio
import signal
import sys

import typer

from services.runtime.config.settings import Settings


def broker(
    port: int | None = typer.Option(
        None, "--port", help="Port on 127.0.0.1 (default: KETENBUS_BROKER_PORT, else 9092)."
    ),
) -> None:
    """Start the embedded broker (memory-only), create the bus's topics, stop on Ctrl-C."""
    from services.runtime.config.registry import load_registry
    from services.runtime.kafka.embedded import EmbeddedBroker
    from services.runtime.kafka.topics import bus_topics, ensure_topics

    settings = Settings()
    registry = load_registry(settings.registry)
    names = bus_topics(registry)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with EmbeddedBroker(port or settings.broker_port) as embedded:
            await ensure_topics(embedded.bootstrap, names, partitions=settings.topic_partitions)
            print(
                f"broker on {embedded.bootstrap} (memory-only), {len(names)} topics; "
                "Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()

    asyncio.run(serve())


def register(app: typer.Typer) -> None:
    app.command()(broker)
