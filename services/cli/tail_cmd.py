"""`ketenbus tail TOPIC`: follow a topic and print each message as it arrives, one line each.

The consumer has no group and commits nothing, so following changes nothing on
the bus. What a line shows, and what it never shows, is `services.runtime.text.tail`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.runtime.errors import UserError

if TYPE_CHECKING:
    from contracts.registry import AgencyRegistry
    from services.runtime.config.settings import Settings
    from services.runtime.text.tail import TailLine

CONNECT_TIMEOUT = 10.0
"""Seconds to reach the broker and find the topic before giving up."""


def tail(
    topic: Annotated[str, typer.Argument(help="The topic to follow, e.g. ketenbus.cases.")],
    *,
    case_id: Annotated[
        str | None, typer.Option("--case", metavar="ID", help="Only this case's events.")
    ] = None,
    event_type: Annotated[
        str | None,
        typer.Option("--type", metavar="T", help="Only this event type (e.g. handoff-requested)."),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Read from the beginning, not only new messages.")
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, metavar="N", help="Stop after N printed messages."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Follow TOPIC: time, partition:offset, type, case, sending agency and a short summary.

    Never the context, its personal data or free-text notes. Starts at the end
    (new messages only) unless --from-start; Ctrl-C stops it.
    """
    from contracts.events import EVENT_CLASSES
    from services.runtime.config.registry import load_registry
    from services.runtime.config.settings import Settings
    from services.runtime.text import tail as lines

    if event_type is not None and event_type not in EVENT_CLASSES:
        known = ", ".join(sorted(EVENT_CLASSES))
        raise UserError(f"unknown event type {event_type!r}; known: {known}")
    settings = Settings()
    registry = load_registry(settings.registry)

    def show(line: TailLine) -> bool:
        if not lines.keep(line, case_id=case_id, event_type=event_type):
            return False
        typer.echo(json.dumps(lines.as_json(line)) if as_json else lines.render(line))
        return True

    try:
        asyncio.run(follow(settings, registry, topic, show, from_start=from_start, limit=limit))
    except KeyboardInterrupt:
        return


async def follow(
    settings: Settings,
    registry: AgencyRegistry,
    topic: str,
    show: Callable[[TailLine], bool],
    *,
    from_start: bool,
    limit: int | None,
) -> None:
    """Hand each record of `topic` to `show` as it arrives, until `limit` of them were shown."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    from services.dead_letters.kafka import bootstrap_of
    from services.runtime.kafka.clients import client_security

    bootstrap = bootstrap_of(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_start else "latest",
        **client_security(settings),
    )
    try:
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT)
    except Exception:  # noqa: BLE001 - any failure to connect is reported in one line
        await consumer.stop()
        raise UserError(
            f"no Kafka broker answers on {bootstrap}; is `ketenbus up` running?"
        ) from None
    try:
        await _assign(consumer, topic, bootstrap, from_start=from_start)
        await _read(consumer, registry, show, limit)
    except KafkaError as exc:
        raise UserError(f"cannot read {topic} from {bootstrap}: {exc}") from None
    finally:
        await consumer.stop()


async def _assign(consumer: Any, topic: str, bootstrap: str, *, from_start: bool) -> None:
    from aiokafka import TopicPartition

    if topic not in await asyncio.wait_for(consumer.topics(), CONNECT_TIMEOUT):
        raise UserError(f"topic {topic} does not exist on {bootstrap}")
    numbers = sorted(consumer.partitions_for_topic(topic) or ())
    partitions = [TopicPartition(topic, number) for number in numbers]
    consumer.assign(partitions)
    if from_start:
        await consumer.seek_to_beginning(*partitions)
    else:
        await consumer.seek_to_end(*partitions)
    for partition in partitions:  # fix "the end" now, not at the first fetch
        await consumer.position(partition)


async def _read(
    consumer: Any,
    registry: AgencyRegistry,
    show: Callable[[TailLine], bool],
    limit: int | None,
) -> None:
    from services.runtime.text.tail import describe

    shown = 0
    while True:
        batches = await consumer.getmany(timeout_ms=500)
        records = sorted(
            (r for batch in batches.values() for r in batch),
            key=lambda r: (r.timestamp, r.partition, r.offset),
        )
        for record in records:
            line = describe(
                registry,
                partition=record.partition,
                offset=record.offset,
                timestamp_ms=record.timestamp,
                value=record.value,
            )
            if show(line):
                shown += 1
                if limit is not None and shown >= limit:
                    return


def register(app: typer.Typer) -> None:
    app.command()(tail)
