"""Kafka clients configured one way for every service."""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.prometheus.types import PublishingStatus
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry import context as otel_context

from services.runtime import observability
from services.runtime._case_spans import CaseSpans
from services.runtime.errors import UserError
from services.runtime.settings import Settings

CLOUDEVENTS_JSON = "application/cloudevents+json"

PRODUCER_BATCH_BYTES = 256 * 1024
"""aiokafka's `max_batch_size` for every service's producer."""


def make_broker(settings: Settings, bootstrap: str, *, client_id: str) -> KafkaBroker:
    """A FastStream Kafka broker for one service.

    Producers wait for every in-sync replica (`acks=all`) so an event a service
    has handed on survives a Kafka node failure. Idempotent and transactional
    producers are left off: the embedded broker lacks them, and consumers dedupe
    on the event id instead.

    Every broker carries the Prometheus middleware (its registry is served as
    the service's `/metrics`) and, when tracing is on, the trace middlewares
    (`services.runtime.observability`).
    """
    middlewares, registry = observability.broker_middlewares(client_id.removeprefix("ketenbus-"))
    broker = KafkaBroker(
        bootstrap,
        client_id=client_id,
        security=broker_security(settings),
        acks="all",
        enable_idempotence=False,
        allow_auto_create_topics=False,
        linger_ms=5,
        # Batches of 256 KB, not 16 KB: fewer produce requests per routed batch.
        max_batch_size=PRODUCER_BATCH_BYTES,
        request_timeout_ms=15_000,
        logger=logging.getLogger(f"ketenbus.{client_id}"),
        # Per-message "Received/Processed" lines would flood the logs at any rate.
        log_level=logging.DEBUG,
        middlewares=middlewares,
    )
    observability.remember_registry(broker, registry)
    return broker


def _credentials(settings: Settings) -> tuple[str, str]:
    username, password = settings.kafka_sasl_username, settings.kafka_sasl_password
    if not username or password is None:
        raise UserError(
            f"KETENBUS_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
            "KETENBUS_KAFKA_SASL_USERNAME and KETENBUS_KAFKA_SASL_PASSWORD"
        )
    return username, password.get_secret_value()


def client_security(settings: Settings) -> dict[str, Any]:
    """The aiokafka keyword arguments that authenticate a raw client as this process's user.

    Pass them to every AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient and
    AIOKafkaClient the bus creates: with SASL on the brokers, a client without them
    is disconnected. Empty under PLAINTEXT (the embedded broker).
    """
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    username, password = _credentials(settings)
    options: dict[str, Any] = {
        "security_protocol": protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": username,
        "sasl_plain_password": password,
    }
    if protocol == "SASL_SSL":
        # The system's CA bundle, hostname checked: the brokers' certificates are verified.
        options["ssl_context"] = ssl.create_default_context()
    return options


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The same credentials in FastStream's form, for a KafkaBroker; None under PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    username, password = _credentials(settings)
    tls = ssl.create_default_context() if protocol == "SASL_SSL" else None
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    kind = kinds[settings.kafka_sasl_mechanism]
    return kind(username, password, ssl_context=tls, use_ssl=tls is not None)


class ConsumerOptions(TypedDict):
    auto_offset_reset: Literal["earliest"]
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    fetch_max_wait_ms: int


def consumer_options(settings: Settings) -> ConsumerOptions:
    """Subscriber options shared by every consumer group of the bus."""
    return {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": 300_000,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }


async def kafka_unreachable(
    bootstrap: str | list[str], *, settings: Settings | None = None
) -> str | None:
    """None when Kafka answers a metadata request at `bootstrap`, else why not.

    Checked before a broker starts, because a FastStream broker whose start
    fails part-way leaves its producer unclosed. Pass `settings` when the brokers
    require SASL: an unauthenticated client is disconnected and looks unreachable.
    """
    security = client_security(settings) if settings is not None else {}
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000, **security)
    try:
        await client.bootstrap()
    except KafkaError as exc:
        return str(exc)
    finally:
        await client.close()
    return None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message a service produces."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    correlation_id: str | None = None


async def publish_all(broker: KafkaBroker, messages: Sequence[Outgoing]) -> None:
    """Produce `messages` in order and return once Kafka has acknowledged every one.

    Each is handed to the producer without waiting for its ack, so a batch costs
    one round trip, not one per message; the acks are awaited together. With
    tracing on, a message keyed by a case whose record is being handled is
    produced inside that record's span, so its headers continue the case's trace.

    Tracing off, the messages go straight to the broker's aiokafka producer:
    FastStream's publish path (command objects, middlewares) costs several times
    the send itself, and with nothing to trace only its Prometheus count is
    wanted, which is kept here. The records are the same: value, key, and the
    headers FastStream writes (`content-type`, `correlation_id`, the message's).
    """
    producer = None if _traced(broker) else _raw_producer(broker)
    if producer is None:
        await _publish_traced(broker, messages)
        return
    pending = []
    counts: dict[str, int] = {}
    for message in messages:
        headers = {"content-type": "", "correlation_id": message.correlation_id or _cor_id()}
        headers.update(message.headers)
        pending.append(
            await producer.send(
                message.topic,
                message.value,
                key=message.key,
                headers=[(name, value.encode()) for name, value in headers.items()],
            )
        )
        counts[message.topic] = counts.get(message.topic, 0) + 1
    try:
        await asyncio.gather(*pending)
    except BaseException:
        _count_published(broker, counts, PublishingStatus.error)
        raise
    _count_published(broker, counts, PublishingStatus.success)


async def _publish_traced(broker: KafkaBroker, messages: Sequence[Outgoing]) -> None:
    pending = []
    for message in messages:
        parent = observability.case_context(message.key)
        token = otel_context.attach(parent) if parent is not None else None
        try:
            pending.append(
                await broker.publish(
                    message.value,
                    message.topic,
                    key=message.key,
                    # A copy: the trace middleware adds its headers to the dict it gets.
                    headers=dict(message.headers),
                    correlation_id=message.correlation_id,
                    no_confirm=True,
                )
            )
        finally:
            if token is not None:
                otel_context.detach(token)
    await asyncio.gather(*pending)


def _cor_id() -> str:
    return str(uuid.uuid4())


def _raw_producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The started aiokafka producer under a FastStream broker, or None (not started, a fake)."""
    # FastStream 0.7 has no public accessor; any other shape takes FastStream's own path.
    state = getattr(getattr(broker, "_producer", None), "_producer", None)
    producer = getattr(state, "producer", None) if state and not state.closed else None
    return producer if isinstance(producer, AIOKafkaProducer) else None


def _count_published(broker: KafkaBroker, counts: dict[str, int], status: PublishingStatus) -> None:
    """Add to FastStream's `published_messages_total` as its Prometheus middleware would."""
    for middleware in broker.middlewares:
        if isinstance(middleware, KafkaPrometheusMiddleware):
            manager = getattr(middleware, "_metrics_manager", None)
            if manager is None:
                return
            for topic, amount in counts.items():
                manager.add_published_message(
                    broker="kafka", destination=topic, status=status, amount=amount
                )


def _traced(broker: KafkaBroker) -> bool:
    """Whether the broker was built with tracing on (its per-case spans middleware)."""
    return any(isinstance(middleware, CaseSpans) for middleware in broker.middlewares)
