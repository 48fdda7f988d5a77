"""Read topics from given offsets to their end: the evidence the verdict is built on.

No consumer group: the reader takes every partition itself, so it commits
nothing and disturbs no service. "The end" is the high-watermark the broker
reports with each fetch (the embedded broker's ListOffsets answer is wrong
under producer batching, its fetch high-watermark is right).
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.envelope import CaseEvent
from contracts.parse import EventRejected, parse_event
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import client_security
from services.runtime.observability.logging import get_logger

log = get_logger("ketenbus.simulation")

Offsets = dict[TopicPartition, int]


async def _partitions(consumer: AIOKafkaConsumer, names: list[str]) -> list[TopicPartition]:
    await consumer.topics()  # fetches the cluster metadata
    found = []
    for name in names:
        numbers = consumer.partitions_for_topic(name) or set()
        found += [TopicPartition(name, number) for number in sorted(numbers)]
    return found


def _security(settings: Settings | None) -> dict[str, Any]:
    """The security options of a reader: the settings' SASL user, or PLAINTEXT without them."""
    return client_security(settings) if settings is not None else {}


async def end_offsets(
    bootstrap: str,
    names: list[str],
    timeout: float = 30.0,
    *,
    settings: Settings | None = None,
) -> Offsets:
    """Where each partition of `names` ends now: the high-watermark of a first fetch."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **_security(settings)
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, names)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while any(consumer.highwater(p) is None for p in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no high-watermark for every partition in {timeout:.0f} s")
            await consumer.getmany(timeout_ms=200, max_records=1)
        return {p: consumer.highwater(p) for p in partitions}
    finally:
        await consumer.stop()


async def read_topics(
    bootstrap: str,
    names: list[str],
    start: Offsets | None = None,
    *,
    timeout: float = 120.0,
    settings: Settings | None = None,
) -> dict[str, list[CaseEvent[Any]]]:
    """Every parseable event on `names` from `start` (default: the beginning) to the end.

    Per topic, in partition order and within a partition in log order, which
    keeps one case's events in the order the bus gave them. `settings`: the Kafka
    security options (None: PLAINTEXT, the embedded broker).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **_security(settings),
    )
    await consumer.start()
    found: dict[str, list[CaseEvent[Any]]] = {name: [] for name in names}
    per_partition: dict[TopicPartition, list[CaseEvent[Any]]] = {}
    try:
        partitions = await _partitions(consumer, names)
        consumer.assign(partitions)
        for partition in partitions:
            per_partition[partition] = []
            offset = (start or {}).get(partition)
            if offset is None:
                await consumer.seek_to_beginning(partition)
            else:
                consumer.seek(partition, offset)
        unreadable = await _drain(consumer, partitions, per_partition, timeout)
    finally:
        await consumer.stop()
    for partition, events in per_partition.items():
        found[partition.topic] += events
    if unreadable:
        log.warning("unreadable records skipped", records=unreadable)
    return found


async def _drain(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    per_partition: dict[TopicPartition, list[CaseEvent[Any]]],
    timeout: float,
) -> int:
    unreadable = 0
    deadline = time.monotonic() + timeout
    while True:
        batches = await consumer.getmany(timeout_ms=300, max_records=5000)
        for partition, records in batches.items():
            for record in records:
                try:
                    per_partition[partition].append(parse_event(record.value or b""))
                except EventRejected:
                    unreadable += 1
        if not batches and await _at_end(consumer, partitions):
            return unreadable
        if time.monotonic() > deadline:
            raise TimeoutError(f"the bus was not read to its end in {timeout:.0f} s")


async def _at_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    for partition in partitions:
        high = consumer.highwater(partition)
        if high is None or await consumer.position(partition) < high:
            return False
    return True
