"""Metrics and traces of a bus process: Prometheus per service, OpenTelemetry when asked for.

Metrics: every broker `make_broker` builds carries FastStream's Kafka
Prometheus middleware with its own `CollectorRegistry` (`app_name` = the
service), served by the service's health server as `GET /metrics`.

Traces: off unless `KETENBUS_OTEL_EXPORTER` is `console` or `otlp`. The entry
point (`service_main`, `ketenbus emit`) calls `setup_tracing`, which installs a
tracer provider for the process; `make_broker` then adds FastStream's
`KafkaTelemetryMiddleware` (the trace context travels in the Kafka headers)
and `_case_spans.CaseSpans`. The bus consumes in batches, which FastStream
traces as one new trace per batch; `CaseSpans` opens one span per record as a
child of the record's own context, with the case id as `ketenbus.case_id`, and
`publish_all` produces a case's messages under its span, so one case's trace
runs unbroken from emit through the router to the tracker and the escalation
service. Tracing off: no provider, no middleware, nothing to pay.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from services.runtime.config.settings import Settings
from services.runtime.observability._case_spans import CASE_ID, CaseSpans, case_context, case_id_of

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from opentelemetry.sdk.trace import TracerProvider

__all__ = [
    "CASE_ID",
    "broker_middlewares",
    "case_context",
    "case_id_of",
    "emit_span",
    "install_tracer_provider",
    "metrics_endpoint",
    "metrics_registry",
    "setup_tracing",
]

TRACER_NAME = "ketenbus"

_PROPAGATOR = TraceContextTextMapPropagator()
_registries: weakref.WeakKeyDictionary[KafkaBroker, CollectorRegistry] = weakref.WeakKeyDictionary()
_provider: TracerProvider | None = None


def broker_middlewares(service: str) -> tuple[list[Any], CollectorRegistry]:
    """The middlewares of a service's broker, and the registry its `/metrics` serves."""
    registry = CollectorRegistry(auto_describe=True)
    middlewares: list[Any] = [KafkaPrometheusMiddleware(registry=registry, app_name=service)]
    provider = _provider
    if provider is not None:
        from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

        # FastStream's span is the outer one; the per-record spans open inside it.
        middlewares += [
            KafkaTelemetryMiddleware(tracer_provider=provider),
            CaseSpans(provider.get_tracer(TRACER_NAME), service),
        ]
    return middlewares, registry


def remember_registry(broker: KafkaBroker, registry: CollectorRegistry) -> None:
    _registries[broker] = registry


def metrics_registry(broker: KafkaBroker) -> CollectorRegistry | None:
    """The Prometheus registry of a broker `make_broker` built (None for any other)."""
    return _registries.get(broker)


def metrics_endpoint(registry: CollectorRegistry | None) -> Any:
    """A Starlette endpoint serving `registry` in the Prometheus text format."""

    async def metrics(_: Request) -> Response:
        body = generate_latest(registry) if registry is not None else b""
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics


def setup_tracing(settings: Settings, service: str) -> TracerProvider | None:
    """Install the tracer provider `settings` ask for (None: tracing off); shut it down at exit."""
    if settings.otel_exporter == "none":
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    resource = Resource.create({SERVICE_NAME: f"{settings.otel_service_name}-{service}"})
    provider = TracerProvider(resource=resource)
    processor: SpanProcessor
    if settings.otel_exporter == "console":
        processor = SimpleSpanProcessor(ConsoleSpanExporter())
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint))
    provider.add_span_processor(processor)
    install_tracer_provider(provider)
    return provider


def install_tracer_provider(provider: TracerProvider | None) -> None:
    """Trace the brokers built from now on with `provider` (None: tracing off)."""
    global _provider  # noqa: PLW0603 - one provider per process, as OpenTelemetry's own global
    _provider = provider


@contextmanager
def emit_span(name: str, topic: str, key: bytes | None) -> Iterator[list[tuple[str, bytes]]]:
    """A producer span around a raw aiokafka send; yields the headers that carry it.

    Tracing off: no span, and no headers to add.
    """
    provider = _provider
    if provider is None:
        yield []
        return
    attributes: dict[str, str] = {"messaging.system": "kafka", "messaging.destination.name": topic}
    if (case_id := case_id_of(key)) is not None:
        attributes[CASE_ID] = case_id
    tracer = provider.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"{topic} {name}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        yield [(field, value.encode()) for field, value in carrier.items()]
