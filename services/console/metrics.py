"""The console's `GET /metrics`: Ketenbus's own gauges and every service's metrics, in one scrape.

Ketenbus's gauges (`_bus_gauges`) are read on each scrape. Each service's
metrics (FastStream's, from the `/metrics` beside its `/healthz`) are fetched
at the same time and merged family by family with prometheus_client's parser,
so a family the router and the tracker both have (with their own `app_name`)
appears once and the exposition stays valid. A service that does not answer is
`ketenbus_scrape_error{source="service:<name>"} 1`; the scrape itself answers 200.
Open without login, like `/healthz`: it carries no case ids and no personal data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httpx
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from services.console._bus_gauges import BusGauges, scrape_errors
from services.console.state import Console, console_of
from services.runtime.observability.logging import get_logger

SERVICE_TIMEOUT = 3.0
"""Seconds a service's `/metrics` may take to answer."""

log = get_logger("ketenbus.console.metrics")


class _Scrape(Collector):
    """The families of one scrape, read before; `collect` only hands them out."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def metrics_url(health_url: str) -> str:
    """A service's `/metrics`, beside its `/healthz`."""
    base = health_url.removesuffix("/healthz").rstrip("/")
    return f"{base}/metrics"


async def _service(client: httpx.AsyncClient, url: str) -> list[Metric] | None:
    try:
        response = await client.get(metrics_url(url))
        response.raise_for_status()
        return list(text_string_to_metric_families(response.text))
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("service metrics not read", url=url, error=type(exc).__name__)
        return None


def merge(parts: Iterable[list[Metric]]) -> list[Metric]:
    """Families with one name joined into one (the first's help and type win).

    A later family of another type under the same name is dropped, and so is a
    sample identical in name and labels to one already kept: both would make
    the exposition invalid.
    """
    merged: dict[str, Metric] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for families in parts:
        for family in families:
            kept = merged.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            if kept.type != family.type:
                continue
            for sample in family.samples:
                identity = (sample.name, tuple(sorted(sample.labels.items())))
                if identity not in seen:
                    seen.add(identity)
                    kept.samples.append(sample)
    return list(merged.values())


def bus_gauges(console: Console) -> BusGauges:
    """The gauges of `console`'s bus and store."""
    # The lag and dead-letter readers find the broker through the settings.
    settings = console.settings.model_copy(update={"kafka_bootstrap": console.bootstrap})
    return BusGauges(settings, console.engine, console.registry)


async def scrape(gauges: BusGauges, service_urls: dict[str, str]) -> list[Metric]:
    """Every family of one scrape: Ketenbus's gauges, the services', the scrape errors."""
    services = sorted(service_urls.items())
    async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT) as client:
        own, children = await asyncio.gather(
            gauges.collect(), asyncio.gather(*(_service(client, url) for _, url in services))
        )
    errors = own.pop()  # ketenbus_scrape_error, completed with the services below
    failed = {sample.labels["source"]: sample.value > 0 for sample in errors.samples}
    for (name, _), families in zip(services, children, strict=True):
        failed[f"service:{name}"] = families is None
    return merge([own, *(families or [] for families in children), [scrape_errors(failed)]])


async def metrics(request: Request) -> Response:
    console = console_of(request)
    gauges: BusGauges | None = getattr(request.app.state, "bus_gauges", None)
    if gauges is None:
        gauges = request.app.state.bus_gauges = bus_gauges(console)
    body = generate_latest(_Scrape(await scrape(gauges, console.service_urls)))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


routes: list[BaseRoute] = [Route("/metrics", metrics, methods=["GET"])]
