"""`python -m services.console`: serve the console against KETENBUS_KAFKA_BOOTSTRAP."""

from __future__ import annotations

import sys

import uvicorn

from services.console.app import create_console
from services.runtime.config.production import refuse_unsafe_defaults
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.observability.logging import configure


def main() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    if not settings.kafka_bootstrap:
        sys.exit(
            "ketenbus console: set KETENBUS_KAFKA_BOOTSTRAP, or start the bus with `ketenbus up`"
        )
    try:
        refuse_unsafe_defaults(settings, console=True)
        app = create_console(
            settings, bootstrap=settings.kafka_bootstrap, health_targets=settings.health_targets
        )
    except UserError as exc:
        sys.exit(f"ketenbus console: {exc}")
    uvicorn.run(app, host=settings.console_host, port=settings.console_port, log_level="warning")


if __name__ == "__main__":
    main()
