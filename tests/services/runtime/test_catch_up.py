"""`CatchUp` on the broker: after a long delivery a batch also holds what arrived during it."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage

from services.runtime.config.settings import Settings
from services.runtime.consumer.catch_up import CatchUp, rewind
from services.runtime.kafka.clients import consumer_options, make_broker
from services.runtime.kafka.topics import ensure_topics

pytestmark = pytest.mark.broker

LONG_DELIVERY_S = 0.8
"""The first delivery's length: the next record arrives early in it, the last one late."""


async def _topic(kafka: str, partitions: int = 1) -> str:
    name = f"test.catchup.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [name], partitions=partitions)
    return name


class Consumer:
    """A batch subscriber that takes LONG_DELIVERY_S over its first batch and records each."""

    def __init__(self, settings: Settings, kafka: str, topic: str, catch_up: CatchUp) -> None:
        # A short fetch wait, as on the embedded broker: the record that arrives early in
        # the long delivery is fetched and held before the last one is produced.
        fast = settings.model_copy(update={"kafka_fetch_max_wait_ms": 20})
        self.broker = make_broker(fast, kafka, client_id="ketenbus-test")
        self.batches: list[list[bytes]] = []
        self.first_began = asyncio.Event()
        self.late_delivered = asyncio.Event()
        self.fail_when: bytes | None = None

        async def deliver(records: Sequence[Any]) -> None:
            values = [r.value for r in records]
            self.batches.append(values)
            if b"late" in values:
                self.late_delivered.set()
            if len(self.batches) == 1:
                self.first_began.set()
                await asyncio.sleep(LONG_DELIVERY_S)
            if self.fail_when in values:
                self.fail_when = None
                raise RuntimeError("this delivery fails once")

        @self.broker.subscriber(
            topic,
            batch=True,
            max_records=100,
            group_id=f"test-{uuid.uuid4().hex[:8]}",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            **consumer_options(fast),
        )
        async def handle(message: KafkaMessage) -> None:
            await catch_up.run(message, deliver)


async def _during_the_long_delivery(
    consumer: Consumer, producer: AIOKafkaProducer, topic: str
) -> None:
    await asyncio.wait_for(consumer.first_began.wait(), 30)
    await asyncio.sleep(0.05)
    await producer.send_and_wait(topic, b"early")
    await asyncio.sleep(0.35)
    await producer.send_and_wait(topic, b"late")


async def _run(
    settings: Settings, kafka: str, catch_up: CatchUp, *, fail_on: bytes | None = None
) -> Consumer:
    topic = await _topic(kafka)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    consumer = Consumer(settings, kafka, topic, catch_up)
    consumer.fail_when = fail_on
    try:
        await producer.send_and_wait(topic, b"first")
        await consumer.broker.start()
        await _during_the_long_delivery(consumer, producer, topic)
        await asyncio.wait_for(consumer.late_delivered.wait(), 15)
        if fail_on is not None:
            await asyncio.sleep(0.5)  # time for the batch to come again
    finally:
        await consumer.broker.stop()
        await producer.stop()
    return consumer


async def test_after_a_long_delivery_the_next_batch_also_holds_what_arrived_late_in_it(
    kafka: str, settings: Settings
) -> None:
    consumer = await _run(settings, kafka, CatchUp(100))

    assert [[b"first"], [b"early", b"late"]] == consumer.batches


async def test_without_reading_on_what_arrived_late_waits_for_a_batch_of_its_own(
    kafka: str, settings: Settings
) -> None:
    # What the first test rests on: aiokafka holds the early record, fetched during the
    # long delivery, and fetches nothing more of its partition until it is taken.
    never = CatchUp(100, wait_ms=10 * LONG_DELIVERY_S * 1000)

    consumer = await _run(settings, kafka, never)

    assert [[b"first"], [b"early"], [b"late"]] == consumer.batches


async def test_a_failed_delivery_of_a_topped_up_batch_brings_all_of_it_again(
    kafka: str, settings: Settings
) -> None:
    consumer = await _run(settings, kafka, CatchUp(100), fail_on=b"late")

    assert [[b"first"], [b"early", b"late"]] == consumer.batches[:2]
    again = [value for batch in consumer.batches[2:] for value in batch]
    assert [b"early", b"late"] == again


async def test_rewind_seeks_each_partition_back_to_its_first_record_read(kafka: str) -> None:
    topic = await _topic(kafka, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        for n in range(3):
            for partition in (0, 1):
                await producer.send_and_wait(
                    topic, f"{partition}:{n}".encode(), partition=partition
                )
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        read = await _read(consumer, 6)
        later = [r for r in read if r.offset > 0]  # the first record of each stays read
        elsewhere = dataclasses.replace(read[0], topic=f"{topic}.unassigned")

        rewind(consumer, [*later, elsewhere])
        again = await _read(consumer, 4)
    finally:
        await consumer.stop()

    assert sorted(r.value for r in later) == sorted(r.value for r in again)


async def _read(consumer: AIOKafkaConsumer, count: int) -> list[Any]:
    read: list[Any] = []
    async with asyncio.timeout(15):
        while len(read) < count:
            batches = await consumer.getmany(timeout_ms=200)
            read += [r for records in batches.values() for r in records]
    return read
