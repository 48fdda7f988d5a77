"""Plain aiokafka clients for tests: what any agency system or operator tool would use."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord


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
