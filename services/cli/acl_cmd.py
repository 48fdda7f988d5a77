"""`ketenbus acl`: the Kafka ACLs that isolate agencies and services, generated from the registry.

The default output is the script committed as deploy/kafka/acls.sh
(`ketenbus acl > deploy/kafka/acls.sh` after every registry change);
`--format json` gives the same ACLs as data, for other tooling; `--format strimzi`
the same ACLs as Strimzi KafkaUser resources, with a KafkaTopic per bus topic
(`ketenbus acl --format strimzi > deploy/k8s/base/kafka/strimzi.yaml`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from services.runtime.config.settings import Settings


class AclFormat(StrEnum):
    COMMANDS = "commands"
    JSON = "json"
    STRIMZI = "strimzi"


def acl(
    output: Annotated[
        AclFormat,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="commands: a kafka-acls.sh script (as deploy/kafka/acls.sh); json: a JSON "
            "array; strimzi: KafkaTopic and KafkaUser resources (as "
            "deploy/k8s/base/kafka/strimzi.yaml).",
        ),
    ] = AclFormat.COMMANDS,
) -> None:
    """Print the Kafka ACLs for the registry: each agency its own outbox and inbox only."""
    from services.runtime.config.registry import load_registry
    from services.runtime.kafka.acl import as_json, as_script, as_strimzi, kafka_acls
    from services.runtime.kafka.topics import bus_topics

    settings = Settings()
    registry = load_registry(settings.registry)
    acls = kafka_acls(registry)
    if output is AclFormat.JSON:
        text = as_json(acls)
    elif output is AclFormat.STRIMZI:
        text = as_strimzi(acls, bus_topics(registry), partitions=settings.topic_partitions)
    else:
        text = as_script(acls)
    typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.command()(acl)
