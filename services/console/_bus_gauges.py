"""Ketenbus's own gauges, read from the bus and the store at scrape time.

Each source is read on its own, bounded by `SOURCE_TIMEOUT`; one that fails or
takes too long is left out of the scrape and reported as
`ketenbus_scrape_error{source="..."} 1`, so a broker or database outage shows
as a metric, not as a failed scrape. Labels carry group, topic, partition,
reason code and level only: never a case id or anything about a person.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.registry import AgencyRegistry
from services.dead_letters import counts, parse_dead_letter, read_topic
from services.runtime.config.settings import Settings
from services.runtime.kafka.lag import bus_groups, group_lags
from services.runtime.observability.logging import get_logger
from services.runtime.store.tables import case_timeline, cases, escalations

SOURCE_TIMEOUT = 5.0
"""Seconds one source may take per scrape."""

KAFKA_STEP = SOURCE_TIMEOUT / 2
"""Seconds a Kafka source may take to connect, and then to read: it closes its own client
in time, where cancelling it from outside could leave one open."""

OPEN = ("raised", "acknowledged")
"""The statuses of an escalation nobody has resolved (withdrawn: its case closed)."""

log = get_logger("ketenbus.console.metrics")

Reader = Callable[[], Awaitable[list[Metric]]]


class BusGauges:
    """Reads the gauges; `settings.kafka_bootstrap` must name the bus's broker."""

    def __init__(self, settings: Settings, engine: AsyncEngine, registry: AgencyRegistry) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry

    async def collect(self) -> list[Metric]:
        """Every source's families, and `ketenbus_scrape_error` per source."""
        sources: dict[str, Reader] = {
            "lag": self.lag,
            "dead_letters": self.dead_letters,
            "escalations": self.open_escalations,
            "handoffs": self.oldest_pending_handoff,
        }
        results = await asyncio.gather(*(_bounded(name, read) for name, read in sources.items()))
        families: list[Metric] = []
        failed: dict[str, bool] = {}
        for name, result in zip(sources, results, strict=True):
            failed[name] = result is None
            families += result or []
        return [*families, scrape_errors(failed)]

    async def lag(self) -> list[Metric]:
        family = GaugeMetricFamily(
            "ketenbus_consumer_lag",
            "Records on a partition that a consumer group has not committed yet "
            "(log end from the fetch high-watermark).",
            labels=["group", "topic", "partition"],
        )
        for group in await group_lags(self.settings, bus_groups(self.registry), timeout=KAFKA_STEP):
            for partition in group.partitions:
                labels = [group.group, partition.topic, str(partition.partition)]
                family.add_metric(labels, partition.lag)
        return [family]

    async def dead_letters(self) -> list[Metric]:
        family = GaugeMetricFamily(
            "ketenbus_dead_letters",
            "Dead letters on ketenbus.dlq, by the reason code the bus gave.",
            labels=["reason"],
        )
        records = await read_topic(self.settings, topics.DLQ, timeout=KAFKA_STEP)
        for reason, count in counts(parse_dead_letter(record) for record in records):
            family.add_metric([reason], count)
        return [family]

    async def open_escalations(self) -> list[Metric]:
        family = GaugeMetricFamily(
            "ketenbus_open_escalations",
            "Escalations raised or acknowledged and not yet resolved, by the level alerted last.",
            labels=["level"],
        )
        query = (
            select(escalations.c.level, func.count().label("open"))
            .where(escalations.c.status.in_(OPEN))
            .group_by(escalations.c.level)
            .order_by(escalations.c.level)
        )
        async with self.engine.connect() as connection:
            for row in (await connection.execute(query)).all():
                family.add_metric([str(row.level)], row.open)
        return [family]

    async def oldest_pending_handoff(self) -> list[Metric]:
        """The age of the oldest handoff still pending on an open case (0: none pending).

        A handoff's age counts from its request: the earliest timeline entry of
        the case with that handoff id.
        """
        requested = (
            select(func.min(case_timeline.c.time))
            .select_from(
                cases.join(
                    case_timeline,
                    and_(
                        case_timeline.c.case_id == cases.c.case_id,
                        case_timeline.c.handoff_id == cases.c.pending_handoff_id,
                    ),
                )
            )
            .where(cases.c.status == "open", cases.c.pending_handoff_id.is_not(None))
        )
        async with self.engine.connect() as connection:
            oldest = (await connection.execute(requested)).scalar_one_or_none()
        age = 0.0
        if oldest is not None:
            stamp = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            age = max(0.0, (datetime.now(UTC) - stamp).total_seconds())
        family = GaugeMetricFamily(
            "ketenbus_oldest_pending_handoff_age_seconds",
            "Seconds since the oldest handoff still pending on an open case was requested "
            "(0 when none is pending).",
        )
        family.add_metric([], round(age, 3))
        return [family]


def scrape_errors(failed: dict[str, bool]) -> Metric:
    """`ketenbus_scrape_error` per source: 1 when it could not be read on this scrape."""
    family = GaugeMetricFamily(
        "ketenbus_scrape_error",
        "1 when a source could not be read on this scrape (its metrics are missing), else 0.",
        labels=["source"],
    )
    for source, error in sorted(failed.items()):
        family.add_metric([source], 1.0 if error else 0.0)
    return family


async def _bounded(name: str, read: Reader) -> list[Metric] | None:
    try:
        # A backstop: the Kafka sources bound themselves, the store's queries need it.
        return await asyncio.wait_for(read(), SOURCE_TIMEOUT + 1.0)
    except Exception as exc:  # noqa: BLE001 - any failure is one source's scrape error
        log.warning("metrics source not read", source=name, error=type(exc).__name__)
        return None
