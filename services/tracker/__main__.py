"""`python -m services.tracker`: run the tracker against the configured Kafka and store."""

from __future__ import annotations

from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.process.service import run_service, service_main
from services.runtime.store.engine import migrated_engine
from services.tracker.app import create_tracker


async def _run(settings: Settings, bootstrap: str) -> None:
    registry = load_registry(settings.registry)
    engine = await migrated_engine(settings.database)
    broker = create_tracker(settings, registry, engine, bootstrap)
    await run_service("tracker", broker, settings, after_stop=engine.dispose)


def main() -> None:
    service_main("tracker", _run)


if __name__ == "__main__":
    main()
