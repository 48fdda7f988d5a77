"""`ketenbus acl`: the Kafka ACLs that isolate agencies and services, generated from the registry.

The default output is the script committed as deploy/kafka/acls.sh
(`ketenbus acl > deploy/kafka/acls.sh` after every registry change);
`--format json` gives the same ACLs as data, for other tooling.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from services.runtime.config.settings import Settings


class AclFormat(StrEnum):
    COMMANDS = "commands"
    JSON = "json"


def acl(
    output: Annotated[
        AclFormat,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="commands: a kafka-acls.sh script (as deploy/kafka/acls.sh); json: a JSON array.",
        ),
    ] = AclFormat.COMMANDS,
) -> None:
    """Print the Kafka ACLs for the registry: each agency its own outbox and inbox only."""
    from services.runtime.config.registry import load_registry
    from services.runtime.kafka.acl import as_json, as_script, kafka_acls

    acls = kafka_acls(load_registry(Settings().registry))
    text = as_json(acls) if output is AclFormat.JSON else as_script(acls)
    typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.command()(acl)
