"""`publish_all` on the broker: every message acked, in its key's partition, in order."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner

from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import BATCHED_FROM, Outgoing, make_broker, publish_all
from services.runtime.kafka.topics import ensure_topics
from tests._testutil import read_until

pytestmark = pytest.mark.broker

PARTITIONS = [0, 1, 2]


async def _topics(kafka: str, count: int) -> list[str]:
    names = [f"test.publish.{uuid.uuid4().hex[:8]}" for _ in range(count)]
    await ensure_topics(kafka, names, partitions=len(PARTITIONS))
    return names


def _messages(topics: list[str], keys: list[bytes], per_key: int) -> list[Outgoing]:
    return [
        Outgoing(topic, key, f"{key.decode()}:{n}".encode())
        for n in range(per_key)
        for key in keys
        for topic in topics
    ]


async def test_a_large_call_lands_each_message_in_its_keys_partition_in_order(
    kafka: str, settings: Settings
) -> None:
    topics = await _topics(kafka, 2)
    keys = [str(uuid.uuid4()).encode() for _ in range(40)]
    messages = _messages(topics, keys, per_key=5)
    assert len(messages) >= BATCHED_FROM  # the batched path
    broker = make_broker(settings, kafka, client_id="ketenbus-test")
    await broker.start()
    try:
        await publish_all(broker, messages)
    finally:
        await broker.stop()

    default = DefaultPartitioner()
    for topic in topics:
        records = await read_until(kafka, topic, lambda _: True, count=len(keys) * 5)
        assert len(keys) * 5 == len(records)
        for record in records:
            assert record.key is not None
            assert default(record.key, PARTITIONS, PARTITIONS) == record.partition
        for key in keys:
            values = [r.value for r in sorted(records, key=lambda r: r.offset) if r.key == key]
            assert [f"{key.decode()}:{n}".encode() for n in range(5)] == values


async def test_many_small_concurrent_calls_are_all_acked(kafka: str, settings: Settings) -> None:
    topics = await _topics(kafka, 1)
    calls = [_messages(topics, [str(uuid.uuid4()).encode()], per_key=4) for _ in range(400)]
    broker = make_broker(settings, kafka, client_id="ketenbus-test")
    await broker.start()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(publish_all(broker, call) for call in calls)), timeout=30
        )
    finally:
        await broker.stop()

    records = await read_until(kafka, topics[0], lambda _: True, count=400 * 4)
    assert 400 * 4 == len(records)
