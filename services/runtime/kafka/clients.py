"""Kafka clients configured one way for every service."""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.prometheus.types import PublishingStatus
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry import context as otel_context

from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.observability import metrics as observability
from services.runtime.observability._case_spans import CaseSpans

CLOUDEVENTS_JSON = "application/cloudevents+json"

PRODUCER_BATCH_BYTES = 256 * 1024
"""aiokafka's `max_batch_size` for every service's producer."""

BATCHED_FROM = 64
"""Messages in one `publish_all` from which it builds record batches of its own.

Fewer go through `send`, into the producer's shared open batches: an own batch
is sent alone, so many small concurrent calls (a timer round's alerts) would
queue one batch each per partition, every one waiting for the one before to
drain, and aiokafka's `add_batch` counts its timeout down from its first wait,
so a long queue ends in KafkaTimeoutError."""


def make_broker(settings: Settings, bootstrap: str, *, client_id: str) -> KafkaBroker:
    """A FastStream Kafka broker for one service.

    Producers wait for every in-sync replica (`acks=all`) so an event a service
    has handed on survives a Kafka node failure. Idempotent and transactional
    producers are left off: the embedded broker lacks them, and consumers dedupe
    on the event id instead.

    Every broker carries the Prometheus middleware (its registry is served as
    the service's `/metrics`) and, when tracing is on, the trace middlewares
    (`services.runtime.observability.metrics`).
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
        partitioner=KeyPartitioner(),
        request_timeout_ms=15_000,
        logger=_broker_logger(client_id),
        # Per-message "Received/Processed" lines would flood the logs at any rate.
        log_level=logging.DEBUG,
        middlewares=middlewares,
    )
    observability.remember_registry(broker, registry)
    return broker


_NO_AUTO_CREATE = "Auto create topics is disabled. Make sure the topics exist."


def _not_auto_created(record: logging.LogRecord) -> bool:
    # FastStream warns so at every subscriber's start, whether its topics exist
    # or not; the bus creates every topic itself (`topics.ensure_topics`) before
    # a service starts, so the warning only alarms whoever reads the start-up.
    return record.getMessage() != _NO_AUTO_CREATE


def _broker_logger(client_id: str) -> logging.Logger:
    logger = logging.getLogger(f"ketenbus.{client_id}")
    if _not_auto_created not in logger.filters:
        logger.addFilter(_not_auto_created)
    return logger


class KeyPartitioner:
    """aiokafka's default partitioner, remembering the hash of the keys it saw last.

    The same partition for every key as `DefaultPartitioner` (murmur2 of the
    key, as the Java client), and a random one for no key. The hash is pure
    Python and costs more than the rest of a send; a service produces several
    messages per case key (the router: the case log, each inbox copy and its
    audit record), so each key's hash is kept, for up to `KEYS` keys.
    """

    KEYS = 16_384

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.KEYS:
                self._hashes.clear()  # a new set of cases: the old keys are unlikely to come back
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


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
        options["ssl_context"] = _tls_context(settings)
    return options


def _tls_context(settings: Settings) -> ssl.SSLContext:
    """A verifying TLS context for SASL_SSL: the brokers' certificates are checked against
    KETENBUS_KAFKA_SSL_CAFILE when it is set (that CA alone), else the system's CA bundle,
    and the host name against the certificate."""
    cafile = settings.kafka_ssl_cafile
    try:
        return ssl.create_default_context(cafile=cafile)
    except OSError as exc:  # ssl.SSLError too: not a PEM certificate
        reason = exc.strerror or str(exc)
        raise UserError(
            f"KETENBUS_KAFKA_SSL_CAFILE={cafile}: not a readable PEM CA certificate ({reason})"
        ) from None


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The same credentials in FastStream's form, for a KafkaBroker; None under PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    username, password = _credentials(settings)
    tls = _tls_context(settings) if protocol == "SASL_SSL" else None
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
    sent: tuple[tuple[str, bytes], ...] = ()
    """Headers of the record this one quarantines, as its sender wrote them (a dead letter
    keeps them); `headers` and the correlation id replace any of the same name."""


async def publish_all(broker: KafkaBroker, messages: Sequence[Outgoing]) -> None:
    """Produce `messages` (in order within each partition); return once Kafka acked every one.

    Each is handed to the producer without waiting for its ack, so a batch costs
    one round trip, not one per message; the acks are awaited together. With
    tracing on, a message keyed by a case whose record is being handled is
    produced inside that record's span, so its headers continue the case's trace.

    Tracing off, the messages go straight to the broker's aiokafka producer, in
    record batches built here (`_send_batched`): FastStream's publish path
    (command objects, middlewares) costs several times the send itself, and with
    nothing to trace only its Prometheus count is wanted, which is kept here.
    The records are the same: value, key, and the headers FastStream writes
    (`content-type`, `correlation_id`, the message's).
    """
    producer = None if _traced(broker) else _raw_producer(broker)
    if producer is None:
        await _publish_traced(broker, messages)
        return
    counts: dict[str, int] = {}
    for message in messages:
        counts[message.topic] = counts.get(message.topic, 0) + 1
    pending = await _send_batched(producer, messages)
    try:
        await asyncio.gather(*pending)
    except BaseException:
        _count_published(broker, counts, PublishingStatus.error)
        raise
    _count_published(broker, counts, PublishingStatus.success)


async def _send_batched(producer: AIOKafkaProducer, messages: Sequence[Outgoing]) -> list[Any]:
    """Hand `messages` to the producer in record batches of our own, one chain per partition.

    What `producer.send` does per message (waiting on metadata, estimating the
    size, choosing the partition, a future per record) costs more than the
    record itself; here each partition's records go into batches directly and
    the producer gets whole batches (`send_batch`). The records are the same,
    in the same partitions (the producer's own `KeyPartitioner`), in the same
    order within each partition. A message without a key, whose partition is
    chosen at random among the available ones, every message of a producer with
    another partitioner, and calls of fewer than `BATCHED_FROM` messages go
    through `send` as before. Returns the futures to await for the acks.
    """
    partitioner = getattr(producer, "_partitioner", None)
    if len(messages) < BATCHED_FROM:
        partitioner = None
    pending: list[Any] = []
    chains: dict[tuple[str, int], list[Any]] = {}
    partitions: dict[str, list[int]] = {}
    for message in messages:
        headers = _headers(message)
        if message.key is None or not isinstance(partitioner, KeyPartitioner):
            pending.append(
                await producer.send(message.topic, message.value, key=message.key, headers=headers)
            )
            continue
        known = partitions.get(message.topic)
        if known is None:
            # As the producer lists them for its partitioner.
            known = partitions[message.topic] = list(await producer.partitions_for(message.topic))
        partition = partitioner(message.key, known, known)
        chain = chains.setdefault((message.topic, partition), [])
        if chain and _appended(chain[-1], message, headers):
            continue
        batch = producer.create_batch()
        if not _appended(batch, message, headers):
            raise ValueError(f"a message of {len(message.value)} bytes is larger than a batch")
        chain.append(batch)
    # Every partition's first batch before any partition's second: a partition's
    # next batch waits until its previous one is on its way.
    for layer in itertools.zip_longest(*chains.values()):
        for (topic, partition), batch in zip(chains, layer, strict=True):
            if batch is not None:
                batch.close()
                pending.append(await producer.send_batch(batch, topic, partition=partition))
    return pending


def _appended(batch: Any, message: Outgoing, headers: list[tuple[str, bytes]]) -> bool:
    """Whether `message` went into `batch` (False: the batch is full)."""
    added = batch.append(timestamp=None, key=message.key, value=message.value, headers=headers)
    return added is not None


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
                    headers=_text_headers(message),
                    correlation_id=message.correlation_id,
                    no_confirm=True,
                )
            )
        finally:
            if token is not None:
                otel_context.detach(token)
    await asyncio.gather(*pending)


def _text_headers(message: Outgoing) -> dict[str, str]:
    """The headers for FastStream's publish, which takes text: a sent value that is not
    UTF-8 is written with its bytes escaped."""
    if not message.sent:
        return dict(message.headers)
    headers = {name: value.decode(errors="backslashreplace") for name, value in message.sent}
    headers.update(message.headers)
    return headers


def _headers(message: Outgoing) -> list[tuple[str, bytes]]:
    """The record headers FastStream writes: content type, correlation id, the message's own.

    Before them, the sender's headers of a quarantined record (`Outgoing.sent`), as
    they were sent, but those the bus writes itself.
    """
    correlation_id = message.correlation_id or _cor_id()
    extra = message.headers
    if message.sent:
        own = {"correlation_id", *extra}
        kept = [(name, value) for name, value in message.sent if name not in own]
        if "content-type" not in extra and all(name != "content-type" for name, _ in kept):
            kept.append(("content-type", b""))
        kept.append(("correlation_id", correlation_id.encode()))
        return kept + [(name, value.encode()) for name, value in extra.items()]
    # The common cases (no headers; a content type alone) without a merged dict.
    if not extra or (len(extra) == 1 and "content-type" in extra):
        return [
            ("content-type", extra.get("content-type", "").encode()),
            ("correlation_id", correlation_id.encode()),
        ]
    headers = {"content-type": "", "correlation_id": correlation_id}
    headers.update(extra)
    return [(name, value.encode()) for name, value in headers.items()]


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
