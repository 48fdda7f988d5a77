"""`PoisonGuard` on the broker: a bad record holds its own partition only, then is set aside."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.exc import OperationalError

from contracts import topics
from services.runtime.config.settings import Settings
from services.runtime.consumer import backoff
from services.runtime.consumer.backoff import Backoff
from services.runtime.consumer.catch_up import CatchUp
from services.runtime.consumer.poison import ATTEMPTS_HEADER, PoisonGuard, Record, dead_letter_with
from services.runtime.kafka.clients import consumer_options, make_broker
from services.runtime.kafka.embedded import EMBEDDED_FETCH_MAX_WAIT_MS
from services.runtime.kafka.topics import ensure_topics
from tests._testutil import headers_of, read_to_end

pytestmark = pytest.mark.broker

PARTITIONS = 3
MAX_ATTEMPTS = 5
BAD = b"0:bad"
LATER_ROUNDS = 30
"""Records produced to each partition while the bad one is retried, one round every LATER_S."""
LATER_S = 0.3
HELD_S = sum(backoff.FIRST_S * 2**n for n in range(MAX_ATTEMPTS - 1))
"""The bad record's partition is held this long in all before its last attempt: 0.5+1+2+4 s."""


class Subscriber:
    """A batch subscriber as the services run one: CatchUp, then PoisonGuard with the consumer."""

    def __init__(self, settings: Settings, kafka: str, topic: str, group: str) -> None:
        self.broker = make_broker(settings, kafka, client_id="ketenbus-test")
        self.guard = PoisonGuard("test", MAX_ATTEMPTS, self._dead_letter, Backoff())
        self.produce_dead_letter = dead_letter_with(self.broker)
        self.processed: Counter[bytes] = Counter()
        self.processed_at: dict[bytes, float] = {}
        self.first_failure: float | None = None
        self.rounds_with_bad = 0
        self.dead_lettered_at: float | None = None
        catch_up = CatchUp(100)

        async def process(records: Sequence[Any]) -> None:
            values = [r.value for r in records]
            if BAD in values:
                self.first_failure = self.first_failure or time.monotonic()
                raise ValueError("cannot process")  # as a transaction: nothing of it is kept
            self.processed.update(values)
            now = time.monotonic()
            for value in values:
                self.processed_at.setdefault(value, now)

        async def guarded(message: KafkaMessage, records: Sequence[Any]) -> None:
            self.rounds_with_bad += BAD in [r.value for r in records]
            await self.guard.run(records, process, message.consumer)

        @self.broker.subscriber(
            topic,
            batch=True,
            max_records=100,
            group_id=group,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            **consumer_options(settings),
        )
        async def handle(message: KafkaMessage) -> None:
            await catch_up.run(message, lambda records: guarded(message, records))

    async def _dead_letter(self, record: Record, headers: dict[str, str]) -> None:
        await self.produce_dead_letter(record, headers)
        self.dead_lettered_at = time.monotonic()


class Producer:
    """Produces `<partition>:<n>` values to chosen partitions, noting when each was sent."""

    def __init__(self, kafka: str, topic: str, partitions: int = PARTITIONS) -> None:
        self.client = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        self.topic = topic
        self.sent_at: dict[bytes, float] = {}
        self.ends = [0] * partitions

    async def send(self, partition: int, value: bytes) -> None:
        self.sent_at[value] = time.monotonic()
        sent = await self.client.send_and_wait(self.topic, value, partition=partition)
        self.ends[partition] = sent.offset + 1

    async def later(self) -> None:
        for n in range(LATER_ROUNDS):
            for partition in range(PARTITIONS):
                await self.send(partition, f"{partition}:later-{n}".encode())
            await asyncio.sleep(LATER_S)


async def _committed(kafka: str, group: str, topic: str, partitions: int) -> list[int | None]:
    """`group`'s committed offset of each partition of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
    finally:
        await consumer.stop()


async def _until(done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await done():
        assert time.monotonic() < deadline, f"not done in {timeout} s"
        await asyncio.sleep(0.2)


async def test_a_bad_record_holds_only_its_partition_and_is_dead_lettered_after_the_attempts(
    kafka: str, settings: Settings
) -> None:
    """One record of partition 0 always fails (not an outage), among good records everywhere.

    The other partitions' records are each processed once, none later than one backoff
    round after the bad record's first failure (or its own produce, if later); the bad
    record is delivered in exactly MAX_ATTEMPTS rounds, held for its partition's backoff
    in between, and dead-lettered with that count; the records around it in partition 0
    are processed once; the committed offsets end at the end of every partition.
    """
    topic = f"test.poison.{uuid.uuid4().hex[:8]}"
    group = f"test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [topic], partitions=PARTITIONS)
    fast = settings.model_copy(update={"kafka_fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS})
    assert MAX_ATTEMPTS == Settings().max_attempts  # the default setting
    producer, subscriber = Producer(kafka, topic), Subscriber(fast, kafka, topic, group)
    await producer.client.start()
    try:
        for n in range(4):  # interleaved: partition 0's third record is the bad one
            for partition in range(PARTITIONS):
                value = BAD if (partition, n) == (0, 2) else f"{partition}:{n}".encode()
                await producer.send(partition, value)
        await subscriber.broker.start()
        await producer.later()

        good = set(producer.sent_at) - {BAD}

        async def all_done() -> bool:
            committed = await _committed(kafka, group, topic, PARTITIONS)
            return (
                set(subscriber.processed) == good
                and subscriber.dead_lettered_at is not None
                and committed == producer.ends
            )

        await _until(all_done, timeout=30)
        await asyncio.sleep(0.5)  # anything processed twice would be by now
    finally:
        await subscriber.broker.stop()
        await producer.client.stop()

    assert dict.fromkeys(good, 1) == dict(subscriber.processed)
    assert subscriber.first_failure is not None
    assert subscriber.dead_lettered_at is not None
    waits = {
        value: at - max(producer.sent_at[value], subscriber.first_failure)
        for value, at in subscriber.processed_at.items()
        if not value.startswith(b"0:")
    }
    assert [] == [(v, w) for v, w in waits.items() if w >= backoff.FIRST_S]
    assert MAX_ATTEMPTS == subscriber.rounds_with_bad
    assert subscriber.dead_lettered_at - subscriber.first_failure >= HELD_S * 0.95
    # The subscriber has stopped: every dead letter it produced is on the topic now.
    [letter] = await read_to_end(
        kafka, [topics.DLQ], lambda r: headers_of(r).get(topics.DLQ_ORIGIN_TOPIC) == topic
    )
    headers = headers_of(letter)
    assert (BAD, "processing-failed", str(MAX_ATTEMPTS), "0", "2") == (
        letter.value,
        headers[topics.DLQ_REASON_CODE],
        headers[ATTEMPTS_HEADER],
        headers[topics.DLQ_ORIGIN_PARTITION],
        headers[topics.DLQ_ORIGIN_OFFSET],
    )
    assert producer.ends == await _committed(kafka, group, topic, PARTITIONS)


async def test_an_outage_after_a_partition_went_through_brings_again_only_the_rest(
    kafka: str, settings: Settings
) -> None:
    """A batch over two partitions fails (not an outage), so each partition is processed on
    its own; the second meets an outage. The first stays done and committed (processed
    once), the second comes again after the outage's pause and is processed once."""
    topic = f"test.poison.{uuid.uuid4().hex[:8]}"
    group = f"test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [topic], partitions=2)
    fast = settings.model_copy(update={"kafka_fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS})
    broker = make_broker(fast, kafka, client_id="ketenbus-test")
    guard = PoisonGuard("test", MAX_ATTEMPTS, dead_letter_with(broker), Backoff())
    processed: Counter[bytes] = Counter()
    calls: list[tuple[float, set[int]]] = []

    async def process(records: Sequence[Any]) -> None:
        partitions = {r.partition for r in records}
        calls.append((time.monotonic(), partitions))
        if len(partitions) > 1:
            raise ValueError("cannot process them together")
        if len(calls) == 3:  # the second partition of the first split
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("store down"))
        processed.update(r.value for r in records)

    @broker.subscriber(
        topic,
        batch=True,
        max_records=100,
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        **consumer_options(fast),
    )
    async def handle(message: KafkaMessage) -> None:
        raw: Any = message.raw_message
        await guard.run(raw, process, message.consumer)

    producer = Producer(kafka, topic, partitions=2)
    await producer.client.start()
    try:
        for n in range(3):
            for partition in range(2):
                await producer.send(partition, f"{partition}:{n}".encode())
        await broker.start()

        async def all_done() -> bool:
            committed = await _committed(kafka, group, topic, 2)
            return len(processed) == 6 and committed == producer.ends

        await _until(all_done, timeout=20)
        await asyncio.sleep(0.5)  # anything processed twice would be by now
    finally:
        await broker.stop()
        await producer.client.stop()

    assert dict.fromkeys(producer.sent_at, 1) == dict(processed)
    (_, together), (_, first), (outage_at, second), (again_at, again) = calls[:4]
    assert ({0, 1}, 1, 1, second) == (together, len(first), len(second), again)
    assert first != second
    assert again_at - outage_at >= backoff.FIRST_S
    assert 4 == len(calls)
