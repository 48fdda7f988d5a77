"""A service's broker starts quietly on topics the bus created itself."""

from __future__ import annotations

import logging
import uuid

import pytest
from faststream.kafka.annotations import KafkaMessage

from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import make_broker
from services.runtime.kafka.topics import ensure_topics

pytestmark = pytest.mark.broker


async def test_a_subscriber_on_created_topics_starts_without_the_auto_create_warning(
    kafka: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"test.start.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [topic], partitions=1)
    broker = make_broker(settings, kafka, client_id="ketenbus-test-start")

    @broker.subscriber(topic, group_id=f"test-start-{uuid.uuid4().hex[:8]}")
    async def on_message(_: KafkaMessage) -> None:
        pass

    with caplog.at_level(logging.DEBUG):
        await broker.start()
        await broker.stop()

    assert [] == [r.getMessage() for r in caplog.records if "auto create" in r.getMessage().lower()]
    assert any(r.name == "ketenbus.ketenbus-test-start" for r in caplog.records)
