"""Kafka clients configured one way for every service."""

from __future__ import annotations

import logging
from typing import Literal, TypedDict

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from services.runtime.settings import Settings

CLOUDEVENTS_JSON = "application/cloudevents+json"


def make_broker(settings: Settings, bootstrap: str, *, client_id: str) -> KafkaBroker:
    """A FastStream Kafka broker for one service.

    Producers wait for every in-sync replica (`acks=all`) so an event a service
    has handed on survives a Kafka node failure. Idempotent and transactional
    producers are left off: the embedded broker lacks them, and consumers dedupe
    on the event id instead.
    """
    return KafkaBroker(
        bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        allow_auto_create_topics=False,
        linger_ms=5,
        request_timeout_ms=15_000,
        logger=logging.getLogger(f"ketenbus.{client_id}"),
        # Per-message "Received/Processed" lines would flood the logs at any rate.
        log_level=logging.DEBUG,
    )


class ConsumerOptions(TypedDict):
    auto_offset_reset: Literal["earliest"]
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int


def consumer_options(settings: Settings) -> ConsumerOptions:
    """Subscriber options shared by every consumer group of the bus."""
    return {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": 300_000,
    }


async def kafka_unreachable(bootstrap: str | list[str]) -> str | None:
    """None when Kafka answers a metadata request at `bootstrap`, else why not.

    Checked before a broker starts, because a FastStream broker whose start
    fails part-way leaves its producer unclosed.
    """
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
    try:
        await client.bootstrap()
    except KafkaError as exc:
        return str(exc)
    finally:
        await client.close()
    return None
