"""`python -m services.router`: run the router against KETENBUS_KAFKA_BOOTSTRAP."""

from __future__ import annotations

import asyncio
import sys

from services.router.app import create_router
from services.runtime.logging import configure
from services.runtime.registry_file import load_registry
from services.runtime.service import run_service
from services.runtime.settings import Settings


def main() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    if not settings.kafka_bootstrap:
        sys.exit(
            "ketenbus router: set KETENBUS_KAFKA_BOOTSTRAP, or start the bus with `ketenbus up`"
        )
    registry = load_registry(settings.registry)
    broker = create_router(settings, registry, settings.kafka_bootstrap)
    asyncio.run(run_service("router", broker, settings))


if __name__ == "__main__":
    main()
