"""`python -m services.tracker`: run the tracker against the configured Kafka and store."""

from __future__ import annotations

import asyncio
import sys

from contracts.registry import RegistryInvalid
from services.runtime.logging import configure
from services.runtime.registry_file import load_registry
from services.runtime.service import run_service
from services.runtime.settings import Settings
from services.runtime.store import make_engine, migrate
from services.tracker.app import create_tracker


async def _run(settings: Settings, bootstrap: str) -> None:
    registry = load_registry(settings.registry)
    engine = make_engine(settings.database)
    try:
        await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    broker = create_tracker(settings, registry, engine, bootstrap)
    await run_service("tracker", broker, settings, after_stop=engine.dispose)


def main() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        sys.exit(
            "ketenbus-tracker: KETENBUS_KAFKA_BOOTSTRAP is not set; set it to the Kafka "
            "bootstrap servers, or run the whole bus with `ketenbus up`"
        )
    try:
        asyncio.run(_run(settings, bootstrap))
    except RegistryInvalid as exc:
        sys.exit(f"ketenbus-tracker: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
