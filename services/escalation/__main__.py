"""`python -m services.escalation`: run the escalation service on the configured Kafka and store.

`run_service` starts the broker (retrying while Kafka is away) and stops it on
a signal; the timer loop is started before it and waits for the broker to
run, and is stopped after it, before the engine is disposed.
"""

from __future__ import annotations

from services.escalation.service import EscalationService
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.process.service import run_service, service_main
from services.runtime.store.engine import migrated_engine


async def _run(settings: Settings, bootstrap: str) -> None:
    registry = load_registry(settings.registry)
    engine = await migrated_engine(settings.database)
    service = EscalationService(settings, registry, engine, bootstrap)

    async def after_stop() -> None:
        await service.stop_timers()
        await engine.dispose()

    await run_service(
        "escalation",
        service.broker,
        settings,
        before_start=service.start_timers,
        after_stop=after_stop,
    )


def main() -> None:
    service_main("escalation", _run)


if __name__ == "__main__":
    main()
