"""The `ketenbus` command: run the bus, emit events, inspect cases and contracts.

Each verb lives in its own module; this one builds the Typer app and turns
errors a user can act on into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import sys

import typer

from contracts.parse import EventRejected
from contracts.registry import RegistryInvalid
from services.cli import (
    acl_cmd,
    alerts_cmd,
    audit_cmd,
    bench_cmd,
    broker_cmd,
    cases_cmd,
    contracts_cmd,
    dlq_cmd,
    emit_cmd,
    gateway_cmd,
    keys_cmd,
    lag_cmd,
    signals_cmd,
    simulate_cmd,
    tail_cmd,
    trace_cmd,
    up_cmd,
    webhooks_cmd,
)
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.observability.logging import configure

app = typer.Typer(
    name="ketenbus",
    help="Ketenbus: the inter-agency event bus for cross-government case handoffs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _logging() -> None:
    """Every verb logs the same way: KETENBUS_LOG_LEVEL and KETENBUS_LOG_FORMAT."""
    settings = Settings()
    configure(settings.log_level, settings.log_format)


for module in (
    up_cmd,
    broker_cmd,
    emit_cmd,
    cases_cmd,
    signals_cmd,
    simulate_cmd,
    trace_cmd,
    acl_cmd,
    lag_cmd,
    tail_cmd,
    bench_cmd,
):
    module.register(app)
app.add_typer(contracts_cmd.app, name="contracts")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(alerts_cmd.app, name="alerts")
app.add_typer(gateway_cmd.app, name="gateway")
app.add_typer(webhooks_cmd.app, name="webhooks")


def main() -> None:
    """Entry point of the `ketenbus` console script."""
    try:
        app(standalone_mode=True)
    except (UserError, RegistryInvalid, EventRejected, OSError) as exc:
        print(f"ketenbus: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
