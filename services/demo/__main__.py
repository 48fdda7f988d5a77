"""`python -m services.demo`: simulated agencies against KETENBUS_KAFKA_BOOTSTRAP, until stopped."""

from __future__ import annotations

import asyncio

from services.demo.agencies import run_demo
from services.demo.keys import demo_keys
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import client_security
from services.runtime.observability.logging import configure


def main() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    bootstrap = settings.kafka_bootstrap or f"127.0.0.1:{settings.broker_port}"
    registry = load_registry(settings.registry)
    keys = demo_keys(settings.data_dir, registry)
    asyncio.run(run_demo(registry, bootstrap, keys, security=client_security(settings)))


if __name__ == "__main__":
    main()
