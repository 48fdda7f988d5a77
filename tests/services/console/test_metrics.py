"""The console's `/metrics`: Ketenbus's gauges from the bus and the store, and each service's.

The store is a migrated SQLite file with cases recorded by the tracker's own
ledger and escalation rows as the escalation service writes them; the
services are real HTTP servers with their own Prometheus registries.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts.registry import AgencyRegistry
from services.console._bus_gauges import BusGauges
from services.console.metrics import _Scrape, metrics_url, scrape
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import free_port
from services.runtime.process.http import http_server
from services.runtime.store.engine import migrated_engine
from services.runtime.store.tables import escalations
from services.tracker.ledger import apply_batch
from tests._testutil import EventFactory
from tests.services.console.conftest import ConsoleHarness


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await migrated_engine(f"sqlite+aiosqlite:///{tmp_path / 'ketenbus.db'}")
    yield engine
    await engine.dispose()


def _escalation(level: int, status: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "escalation_id": uuid.uuid4(),
        "case_id": uuid.uuid4(),
        "trigger": "idle",
        "cause": "idle",
        "level": level,
        "team_agency": "gm0363",
        "team": "regionaal-escalatieteam",
        "status": status,
        "raised_at": now,
        "alerted_at": now,
        "acknowledge_by": now + timedelta(hours=8),
        "raises": 1,
        "last_raised_id": uuid.uuid4(),
    }


@asynccontextmanager
async def _service(registry: CollectorRegistry) -> AsyncIterator[str]:
    """A service's health server serving `registry` as `/metrics`; yields its /healthz URL."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain")

    port = free_port()
    server = http_server(Starlette(routes=[Route("/metrics", metrics)]), "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    # uvicorn sets a flag, not an event, once it listens: poll it, bounded.
    while not server.started and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}/healthz"
    server.should_exit = True
    await serving


@pytest.fixture
async def services() -> AsyncIterator[dict[str, str]]:
    """Two services whose registries both have `faststream_received_messages`."""
    urls: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        for name, count in (("router", 3), ("tracker", 2)):
            registry = CollectorRegistry()
            counter = Counter(
                "faststream_received_messages", "Received.", ["app_name"], registry=registry
            )
            counter.labels(name).inc(count)
            urls[name] = await stack.enter_async_context(_service(registry))
        urls["escalation"] = f"http://127.0.0.1:{free_port()}/healthz"  # nothing listens there
        yield urls


def _families(families: list[Metric]) -> dict[str, Metric]:
    """The exposition of `families`, parsed back (it must be valid), by family name."""
    text = generate_latest(_Scrape(families)).decode()
    parsed = list(text_string_to_metric_families(text))
    names = [family.name for family in parsed]
    assert len(names) == len(set(names)), "a family appears twice"
    return {family.name: family for family in parsed}


def _values(family: Metric, label: str) -> dict[str, float]:
    return {sample.labels[label]: sample.value for sample in family.samples}


def test_a_services_metrics_are_beside_its_healthz() -> None:
    assert metrics_url("http://127.0.0.1:9001/healthz") == "http://127.0.0.1:9001/metrics"


@pytest.mark.broker
async def test_one_scrape_has_the_bus_gauges_and_every_services_metrics_in_one_valid_exposition(
    kafka: str,
    settings: Settings,
    registry: AgencyRegistry,
    store: AsyncEngine,
    services: dict[str, str],
) -> None:
    make = EventFactory(registry)
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    opened = make.opened(case_id)
    requested = make.requested(case_id, handoff_id)
    await apply_batch(store, registry, [opened, requested])
    async with store.begin() as connection:
        await connection.execute(
            insert(escalations),
            [
                _escalation(1, "raised"),
                _escalation(1, "acknowledged"),
                _escalation(2, "raised"),
                _escalation(3, "resolved"),
            ],
        )
    gauges = BusGauges(settings.model_copy(update={"kafka_bootstrap": kafka}), store, registry)

    families = _families(await scrape(gauges, services))

    assert {"1": 2.0, "2": 1.0} == _values(families["ketenbus_open_escalations"], "level")
    [age] = families["ketenbus_oldest_pending_handoff_age_seconds"].samples
    expected = (datetime.now(UTC) - requested.time).total_seconds()
    assert expected == pytest.approx(age.value, abs=60)
    lag_groups = {s.labels["group"] for s in families["ketenbus_consumer_lag"].samples}
    assert {"ketenbus-router", "ketenbus-tracker", "ketenbus-escalation"} == lag_groups
    assert "ketenbus_dead_letters" in families
    received = families["faststream_received_messages"]
    assert {"router": 3.0, "tracker": 2.0} == {
        s.labels["app_name"]: s.value for s in received.samples if s.name.endswith("_total")
    }
    assert {
        "lag": 0.0,
        "dead_letters": 0.0,
        "escalations": 0.0,
        "handoffs": 0.0,
        "service:router": 0.0,
        "service:tracker": 0.0,
        "service:escalation": 1.0,
    } == _values(families["ketenbus_scrape_error"], "source")
    for family in families.values():
        if family.name.startswith("ketenbus_"):
            assert family.documentation, family.name
            assert all("case" not in label for s in family.samples for label in s.labels)


async def test_a_source_that_cannot_be_read_is_a_scrape_error_and_the_rest_still_answer(
    settings: Settings, registry: AgencyRegistry, store: AsyncEngine
) -> None:
    nowhere = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    started = time.monotonic()

    families = _families(await scrape(BusGauges(nowhere, store, registry), {}))

    assert time.monotonic() - started < 15
    errors = _values(families["ketenbus_scrape_error"], "source")
    assert {"lag": 1.0, "dead_letters": 1.0, "escalations": 0.0, "handoffs": 0.0} == errors
    assert "ketenbus_consumer_lag" not in families
    [age] = families["ketenbus_oldest_pending_handoff_age_seconds"].samples
    assert age.value == 0.0


@pytest.mark.broker
async def test_the_console_serves_metrics_without_login_in_the_prometheus_text_format(
    console: ConsoleHarness,
) -> None:
    response = await console.client().get("/metrics")

    assert 200 == response.status_code
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert {
        "ketenbus_consumer_lag",
        "ketenbus_dead_letters",
        "ketenbus_open_escalations",
        "ketenbus_oldest_pending_handoff_age_seconds",
        "ketenbus_scrape_error",
    } <= families


def test_the_prometheus_config_scrapes_the_console_and_each_service_on_its_compose_port() -> None:
    repo = Path(__file__).resolve().parents[3]
    config = yaml.safe_load((repo / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    compose = yaml.safe_load((repo / "docker-compose.yml").read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }

    expected = {"console:" + compose["services"]["console"]["environment"]["KETENBUS_CONSOLE_PORT"]}
    for name in ("router", "tracker", "escalation"):
        expected.add(f"{name}:{compose['services'][name]['environment']['KETENBUS_HEALTH_PORT']}")
    assert expected == targets
    assert all("/metrics" == job["metrics_path"] for job in config["scrape_configs"])
