"""`python -m services.demo`: simulated agencies against KETENBUS_KAFKA_BOOTSTRAP, until stopped."""

from __future__ import annotations

import asyncio

from services.demo.agencies import run_demo
from services.runtime.logging import configure
from services.runtime.registry_file import load_registry
from services.runtime.settings import Settings


def main() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    bootstrap = settings.kafka_bootstrap or f"127.0.0.1:{settings.broker_port}"
    asyncio.run(run_demo(load_registry(settings.registry), bootstrap))


if __name__ == "__main__":
    main()
