"""`ketenbus lag` against the embedded broker.

Other tests share the broker and the bus's groups move as they run, so each
test measures groups of its own on a topic of its own, with records produced
in batches (where the embedded broker's `end_offsets` is wrong).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from typer.testing import CliRunner, Result

from services.cli import lag_cmd
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka import lag
from services.runtime.kafka.embedded import free_port
from services.runtime.kafka.lag import GroupLag, PartitionLag, group_lags
from services.runtime.kafka.topics import ensure_topics

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


def _settings(bootstrap: str) -> Settings:
    return Settings(kafka_bootstrap=bootstrap, kafka_security_protocol="PLAINTEXT")


async def _topic_with_commit(bootstrap: str) -> tuple[str, str, str]:
    """A new topic of 2 partitions with 5 records on 0 and 3 on 1; a group that committed
    offset 2 on partition 0 only, and a group that committed nothing. Returns their names."""
    topic = f"test.lag.{uuid.uuid4().hex}"
    committing, idle = f"test-lag-{uuid.uuid4().hex}", f"test-lag-{uuid.uuid4().hex}"
    await ensure_topics(bootstrap, [topic], partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, b"x", partition=partition)
            for partition, count in ((0, 5), (1, 3))
            for _ in range(count)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=committing, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await consumer.commit({TopicPartition(topic, 0): 2})
    finally:
        await consumer.stop()
    return topic, committing, idle


def _cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """A group, so the verb is invoked as `ketenbus lag`."""

    lag_cmd.register(app)
    return app


async def _lag(bootstrap: str, *args: str) -> Result:
    """Run `ketenbus lag ARGS` in a thread: the verb runs its own event loop."""
    env: dict[str, str | None] = {
        "KETENBUS_KAFKA_BOOTSTRAP": bootstrap,
        "KETENBUS_KAFKA_SECURITY_PROTOCOL": None,
    }
    return await asyncio.to_thread(lambda: CliRunner().invoke(_cli(), ["lag", *args], env=env))


async def test_lag_is_the_log_end_less_the_committed_offset_or_the_whole_partition(
    kafka: str,
) -> None:
    topic, committing, idle = await _topic_with_commit(kafka)

    lags = await group_lags(_settings(kafka), {committing: [topic], idle: [topic]})

    assert [
        GroupLag(
            committing,
            (PartitionLag(topic, 0, 2, 5), PartitionLag(topic, 1, None, 3)),
        ),
        GroupLag(idle, (PartitionLag(topic, 0, None, 5), PartitionLag(topic, 1, None, 3))),
    ] == lags
    assert [6, 8] == [group.lag for group in lags]
    assert [3, 3] == [p.lag for p in lags[0].partitions]


async def test_lag_prints_each_group_total_and_only_the_partitions_that_lag(
    kafka: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, committing, idle = await _topic_with_commit(kafka)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, group_id=committing, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 1)])
        await consumer.commit({TopicPartition(topic, 1): 3})
    finally:
        await consumer.stop()
    monkeypatch.setattr(lag, "bus_groups", lambda _registry: {committing: [topic], idle: [topic]})

    result = await _lag(kafka)

    assert 0 == result.exit_code, result.output
    assert (
        f"{committing}: lag 3\n"
        f"  {topic}/0: committed 2, end 5, lag 3\n"
        f"{idle}: lag 8\n"
        f"  {topic}/0: committed -, end 5, lag 5\n"
        f"  {topic}/1: committed -, end 3, lag 3\n"
    ) == result.output


async def test_lag_json_gives_every_partition_of_every_group(
    kafka: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, committing, idle = await _topic_with_commit(kafka)
    monkeypatch.setattr(lag, "bus_groups", lambda _registry: {committing: [topic], idle: [topic]})

    result = await _lag(kafka, "--json")

    assert 0 == result.exit_code, result.output
    assert {
        committing: {
            "lag": 6,
            "partitions": [
                {"topic": topic, "partition": 0, "committed": 2, "end": 5, "lag": 3},
                {"topic": topic, "partition": 1, "committed": None, "end": 3, "lag": 3},
            ],
        },
        idle: {
            "lag": 8,
            "partitions": [
                {"topic": topic, "partition": 0, "committed": None, "end": 5, "lag": 5},
                {"topic": topic, "partition": 1, "committed": None, "end": 3, "lag": 3},
            ],
        },
    } == json.loads(result.output)


async def test_lag_names_the_bus_groups_and_their_topics(kafka: str) -> None:
    result = await _lag(kafka, "--json")

    assert 0 == result.exit_code, result.output
    document = json.loads(result.output)
    assert ["ketenbus-router", "ketenbus-tracker", "ketenbus-escalation"] == list(document)
    assert {"ketenbus.cases"} == {p["topic"] for p in document["ketenbus-tracker"]["partitions"]}
    assert all(p["topic"].endswith(".outbox") for p in document["ketenbus-router"]["partitions"])


async def test_lag_reports_an_unreachable_broker_in_one_line() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"

    result = await _lag(bootstrap)

    assert 1 == result.exit_code
    assert isinstance(result.exception, UserError)
    assert f"no Kafka broker answers on {bootstrap}; is `ketenbus up` running?" == str(
        result.exception
    )
