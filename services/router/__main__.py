"""`python -m services.router`: run the router against the configured Kafka and store."""

from __future__ import annotations

from services.router.app import create_router
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.process.service import run_service, service_main
from services.runtime.store.engine import migrated_engine


async def _run(settings: Settings, bootstrap: str) -> None:
    registry = load_registry(settings.registry)
    engine = await migrated_engine(settings.database)
    broker = create_router(settings, registry, bootstrap, engine)
    await run_service("router", broker, settings, after_stop=engine.dispose)


def main() -> None:
    service_main("router", _run)


if __name__ == "__main__":
    main()
