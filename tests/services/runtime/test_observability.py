"""Traces and metrics on the real broker: one case's trace from emit through router, tracker
and escalation service.

An in-memory span exporter stands in for OTLP; the event is produced the way
`ketenbus emit` produces it (a plain producer, inside `emit_span`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.casefile.queries import case_view
from services.escalation.service import EscalationService
from services.router.app import create_router
from services.runtime.config.settings import Settings
from services.runtime.observability.metrics import (
    CASE_ID,
    broker_middlewares,
    emit_span,
    install_tracer_provider,
    setup_tracing,
)
from services.runtime.process.service import ServiceHealth, health_app
from services.runtime.store.engine import migrated_engine
from services.tracker.app import create_tracker
from tests._testutil import raw_event, start_group_at_end

pytestmark = pytest.mark.broker


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the brokers built in the test, into memory; off again after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install_tracer_provider(provider)
    yield exporter
    install_tracer_provider(None)
    provider.shutdown()


@dataclass
class Bus:
    router: KafkaBroker
    tracker: KafkaBroker
    escalation: EscalationService
    store: AsyncEngine


@pytest.fixture
async def bus(
    kafka: str,
    settings: Settings,
    signed_registry: AgencyRegistry,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> AsyncIterator[Bus]:
    """A router, a tracker and an escalation service in groups of their own, tracing on.

    The router's and the escalation service's groups start at the current ends: they
    handle only this test's events.
    """
    store = await migrated_engine(f"sqlite+aiosqlite:///{tmp_path / 'ketenbus.db'}")
    escalations = await migrated_engine(f"sqlite+aiosqlite:///{tmp_path / 'escalation.db'}")
    router_group, escalation_group = f"router-{uuid.uuid4()}", f"escalation-{uuid.uuid4()}"
    outboxes = [topics.outbox(agency.code) for agency in signed_registry.agencies]
    await start_group_at_end(kafka, router_group, outboxes)
    await start_group_at_end(kafka, escalation_group, [topics.CASES])
    router = create_router(settings, signed_registry, kafka, store, group_id=router_group)
    tracker = create_tracker(
        settings, signed_registry, store, kafka, group_id=f"tracker-{uuid.uuid4()}"
    )
    escalation = EscalationService(
        settings, signed_registry, escalations, kafka, group_id=escalation_group
    )
    await asyncio.gather(router.start(), tracker.start(), escalation.start())
    yield Bus(router, tracker, escalation, store)
    await asyncio.gather(router.stop(), tracker.stop(), escalation.stop())
    await store.dispose()
    await escalations.dispose()


async def _emit(kafka: str, registry: AgencyRegistry, keys: AgencyKeys, case_id: uuid.UUID) -> None:
    agency = registry.agency("belastingdienst")
    assert agency is not None
    value = keys.sign(
        raw_event(agency.oin, "case-opened", case_id, {"category": "schulden", "summary": "Schuld"})
    )
    topic, key = topics.outbox("belastingdienst"), str(case_id).encode()
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        with emit_span("emit", topic, key) as headers:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def _spans_until(
    exporter: InMemorySpanExporter, done: set[str], case_id: uuid.UUID
) -> list[ReadableSpan]:
    """The finished spans, once every span named in `done` has ended for the case (30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        finished = list(exporter.get_finished_spans())
        ended = {s.name for s in finished if (s.attributes or {}).get(CASE_ID) == str(case_id)}
        if done <= ended:
            return finished
        await asyncio.sleep(0.2)
    raise AssertionError(f"not every one of {sorted(done)} ended for case {case_id} within 30 s")


async def test_one_trace_with_the_case_id_runs_from_emit_through_router_tracker_and_escalation(
    kafka: str,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    spans: InMemorySpanExporter,
    bus: Bus,
) -> None:
    case_id = uuid.uuid4()
    outbox = topics.outbox("belastingdienst")
    hops = {
        f"{outbox} emit",
        f"router {outbox}",
        f"tracker {topics.CASES}",
        f"escalation {topics.CASES}",
    }

    await _emit(kafka, signed_registry, agency_keys["belastingdienst"], case_id)

    finished = await _spans_until(spans, hops, case_id)
    emitted = next(s for s in finished if s.name == f"{outbox} emit")
    assert emitted.context is not None
    trace_id = emitted.context.trace_id
    in_trace = [s for s in finished if s.context is not None and s.context.trace_id == trace_id]
    assert hops <= {s.name for s in in_trace if (s.attributes or {}).get(CASE_ID) == str(case_id)}
    # The router's produce to the case log is in the same trace: the context crossed Kafka.
    assert f"{topics.CASES} publish" in {s.name for s in in_trace}
    assert await case_view(bus.store, case_id) is not None


async def test_a_services_metrics_endpoint_answers_with_faststream_metrics_after_messages(
    kafka: str,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    spans: InMemorySpanExporter,
    bus: Bus,
) -> None:
    case_id = uuid.uuid4()
    await _emit(kafka, signed_registry, agency_keys["belastingdienst"], case_id)
    await _spans_until(spans, {f"tracker {topics.CASES}"}, case_id)
    app = health_app(ServiceHealth("router", bus.router))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'faststream_received_messages_total{app_name="router"' in response.text
    assert 'faststream_published_messages_total{app_name="router"' in response.text


def test_tracing_is_off_by_default_and_a_broker_then_gets_only_the_metrics_middleware() -> None:
    assert "none" == Settings().otel_exporter
    assert setup_tracing(Settings(), "router") is None

    middlewares, _ = broker_middlewares("router")

    assert [KafkaPrometheusMiddleware] == [type(m) for m in middlewares]
