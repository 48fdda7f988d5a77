"""`ketenbus up` and `ketenbus demo`."""

from __future__ import annotations

import asyncio

import typer

from services.runtime.config.settings import Settings


def up(
    demo: bool = typer.Option(False, "--demo", help="Also run the simulated agencies."),
) -> None:
    """Run the bus: the embedded broker (unless KETENBUS_KAFKA_BOOTSTRAP is set),
    router, tracker and the console's /healthz."""
    from services.cli.supervisor import run_bus

    settings = Settings()
    asyncio.run(run_bus(settings, demo=demo))


def demo(
    cases: int = typer.Option(
        0, "--cases", min=0, help="Stop after opening this many (0: no limit)."
    ),
    interval: float = typer.Option(1.5, "--interval", min=0.01, help="Seconds between new cases."),
) -> None:
    """Simulate agencies on a running bus: open cases, hand them off, accept and reject.

    They sign with the demo's keys (DATA_DIR/demo-keys): run the bus on the
    registry that holds their public halves, as `ketenbus up --demo` does
    (DATA_DIR/demo-registry.yaml)."""
    from services.demo.agencies import run_demo
    from services.demo.keys import demo_keys
    from services.runtime.config.registry import load_registry
    from services.runtime.kafka.clients import client_security

    settings = Settings()
    registry = load_registry(settings.registry)
    keys = demo_keys(settings.data_dir, registry)
    bootstrap = settings.kafka_bootstrap or f"127.0.0.1:{settings.broker_port}"
    security = client_security(settings)
    asyncio.run(
        run_demo(
            registry, bootstrap, keys, cases=cases or None, interval=interval, security=security
        )
    )


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(demo)
