"""Plain aiokafka clients for tests: what any agency system or operator tool would use.

The `producer` fixture is a started producer on the session's embedded broker (acks=all).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition


@pytest.fixture
async def producer(kafka: str) -> AsyncIterator[AIOKafkaProducer]:
    started = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    match: Callable[[ConsumerRecord[bytes, bytes]], bool],
    *,
    count: int = 1,
    timeout: float = 20.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `topic` from the start (no group) until `count` records match, or time out."""
    # No group: the consumer takes every partition and reads from the beginning.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            found += [r for records in batches.values() for r in records if match(r)]
        return found
    finally:
        await consumer.stop()


def keyed(case_id: object) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
    """Match the records of one case (the key is the case id)."""
    key = str(case_id).encode()
    return lambda record: record.key == key


async def settle(seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)


def raw_event(
    oin: str, event: str, case_id: object, data: dict[str, object], *, sequence: int = 1
) -> bytes:
    """A CloudEvent written by hand, as a system without the project's code would write it."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": f"urn:nld:oin:{oin}:systeem:zaaksysteem",
            "type": f"nl.overheid.ketenzaken.{event}",
            "subject": str(case_id),
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "correlationid": str(case_id),
            "sequence": sequence,
            "data": data,
        }
    ).encode()


async def start_group_at_end(bootstrap: str, group: str, topic_names: list[str]) -> None:
    """Commit `group`'s offsets at the current end of `topic_names`: it starts with what comes next.

    A service started in a fresh group reads from the earliest offset; this keeps
    it from replaying what earlier tests of the session wrote to the same topics.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = _partitions(consumer, topic_names)
        consumer.assign(partitions)
        await consumer.commit(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def read_to_end(
    bootstrap: str,
    topic_names: list[str],
    match: Callable[[ConsumerRecord[bytes, bytes]], bool],
    *,
    timeout: float = 20.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic_names` that matches, up to their end offsets as of this call."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = _partitions(consumer, topic_names)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        pending = {tp for tp, end in ends.items() if end > 0}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} partitions not read to the end in {timeout} s")
            batches = await consumer.getmany(*pending, timeout_ms=200)
            found += [r for records in batches.values() for r in records if match(r)]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return found
    finally:
        await consumer.stop()


def _partitions(consumer: AIOKafkaConsumer, topic_names: list[str]) -> list[TopicPartition]:
    partitions = [
        TopicPartition(topic, partition)
        for topic in topic_names
        for partition in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    missing = set(topic_names) - {tp.topic for tp in partitions}
    assert not missing, f"no partitions known for {sorted(missing)}"
    return partitions


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    """A record's headers as text."""
    return {name: value.decode() for name, value in record.headers}


def event_id(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The `id` of the event a record holds, None if it holds no JSON object."""
    try:
        document = json.loads(record.value)
    except ValueError:
        return None
    return document.get("id") if isinstance(document, dict) else None
